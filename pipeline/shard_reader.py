"""Reading schema-v1 shards: typed samples and shuffled, collated torch batches.

The loader is a plain `torch.utils.data.IterableDataset` over the tar files, deterministic in
``(seed, epoch, num_workers)``: the shard order of an epoch is a seeded permutation; with at least as
many shards as loader workers each worker reads every ``num_workers``-th shard, otherwise every
worker reads all shards and keeps every ``num_workers``-th sample; each worker shuffles through a
seeded buffer. `torch.utils.data.DataLoader` interleaves workers round-robin, so the same arguments
give the same batches in the same order, which is what makes a resumed training run reproducible.
A sample that cannot be read (a bad tar, a member that does not decode, or members whose CRC-32 differs from
the one the shard's index records) does not raise inside a loader process, where it would surface as a
DataLoader traceback: it travels as a `CorruptSample` and the batch lists it in `corrupt`, one line naming the
shard and the sample, for the trainer to stop on or skip and count.
With `views_per_sample` the loader decodes only that many of each sample's V views, picked by a generator
seeded with (seed, epoch, key): PNG decoding is most of a loader's work, and a training step uses k of V.
The files are ordinary WebDataset tars: `webdataset.WebDataset` reads them too.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
import tarfile
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.shard_index import ShardIndexError, estimate_background, read_index
from pipeline.shards import (
    BACKGROUND,
    CAMERAS,
    EMB,
    FOVY,
    META,
    REQUIRED_MEMBERS,
    TEXT,
    ShardSample,
    sample_checksum,
    view_member,
)


class ShardFormatError(ValueError):
    """A shard that is not a readable schema-v1 tar; the message names the file and the member."""


def iter_tar_groups(path: Path | str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield (key, {suffix: bytes}) for each sample of a tar, in file order. Raises ShardFormatError."""
    path = Path(path)
    key, group = None, {}
    try:
        size = path.stat().st_size
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                if "." not in base:
                    raise ShardFormatError(f"{path.name}: member {member.name!r} has no '.suffix'")
                k, suffix = base.split(".", 1)
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                if len(data) != member.size:
                    raise ShardFormatError(f"{path.name}: member {member.name!r} truncated")
                if k != key:
                    if key is not None:
                        yield key, group
                    key, group = k, {}
                if suffix in group:
                    raise ShardFormatError(f"{path.name}: member {member.name!r} appears twice")
                group[suffix] = data
            # tarfile stops quietly at the end of the data; a complete archive ends with two zero
            # blocks, so a file cut at a member boundary is caught here.
            if size - tar.offset < 2 * tarfile.BLOCKSIZE:
                raise ShardFormatError(f"{path.name}: truncated (no end-of-archive marker after {key})")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ShardFormatError(f"{path.name}: unreadable tar ({type(e).__name__}: {e})") from e
    if key is not None:
        yield key, group


def _load_npy(data: bytes) -> np.ndarray:
    # allow_pickle=False: shards may come from elsewhere and must never execute code.
    return np.load(io.BytesIO(data), allow_pickle=False)


def decode_sample(
    key: str, group: dict[str, bytes], source: str = "<shard>", views: Sequence[int] | None = None
) -> ShardSample:
    """Decode one member group into a ShardSample, raising ShardFormatError naming what is wrong.

    views: which views to decode (and the cameras, fovy and background of only those), in this order;
    None = all of them.
    """
    missing = [s for s in REQUIRED_MEMBERS if s not in group]
    if missing:
        raise ShardFormatError(f"{source}: sample {key} lacks {', '.join(missing)}")
    try:
        meta = json.loads(group[META].decode("utf-8"))
        num_views = int(meta["num_views"])
        wanted = list(range(num_views)) if views is None else list(views)
        if any(not 0 <= i < num_views for i in wanted):
            raise ShardFormatError(f"{source}: sample {key} has {num_views} views, asked for {wanted}")
        absent = [view_member(i) for i in range(num_views) if view_member(i) not in group]
        if absent:
            raise ShardFormatError(f"{source}: sample {key} lacks {', '.join(absent)}")
        images = np.stack([np.asarray(Image.open(io.BytesIO(group[view_member(i)])).convert("RGB")) for i in wanted])
        cameras, fovy = _load_npy(group[CAMERAS]), _load_npy(group[FOVY])
        # Schema 1.0 samples carry no background: estimate it from the decoded views, as the 1.1 writer does.
        background = _load_npy(group[BACKGROUND]) if BACKGROUND in group else None
        if views is not None:  # (all views: ShardSample checks the shapes against the views)
            for name, arr in (("cameras", cameras), ("fovy", fovy), ("background", background)):
                if arr is not None and arr.shape[:1] != (num_views,):
                    raise ShardFormatError(
                        f"{source}: sample {key}: {name} holds {arr.shape[0]} views, json {num_views}"
                    )
            cameras, fovy = cameras[wanted], fovy[wanted]
            background = background[wanted] if background is not None else None
        return ShardSample(
            key=key,
            prompt=group[TEXT].decode("utf-8"),
            seed=int(meta["seed"]),
            views=images,
            cameras=cameras,
            fovy=fovy,
            emb=_load_npy(group[EMB]),
            meta=meta,
            background=background if background is not None else estimate_background(images),
            view_ids=None if views is None else tuple(wanted),
        )
    except ShardFormatError:
        raise
    except (KeyError, ValueError, IndexError, OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardFormatError(f"{source}: sample {key}: {type(e).__name__}: {e}") from e


def read_shard(path: Path | str) -> Iterator[ShardSample]:
    """Decoded samples of one shard, in file order."""
    for key, group in iter_tar_groups(path):
        yield decode_sample(key, group, Path(path).name)


@dataclass(frozen=True)
class ShardBatch:
    """A collated batch.

    views:   (B, V, H, W, 3) uint8
    cameras: (B, V, 4, 4) float32
    fovy:    (B, V) float32
    emb:     (B, D) float32
    seeds:   (B,) int64
    background: (B, V, 3) float32 in [0, 1]
    corrupt: one line per sample of this batch's draw that could not be read (left out of the tensors)

    V is the views decoded per sample: all of them, or the loader's `views_per_sample`.
    """

    keys: list[str]
    prompts: list[str]
    seeds: torch.Tensor
    views: torch.Tensor
    cameras: torch.Tensor
    fovy: torch.Tensor
    emb: torch.Tensor
    background: torch.Tensor
    corrupt: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.keys)

    def images(self) -> torch.Tensor:
        """(B, V, 3, H, W) float32 in [0, 1]."""
        return self.views.permute(0, 1, 4, 2, 3).float() / 255.0

    def reordered(self, order: torch.Tensor) -> ShardBatch:
        """The same samples in `order` (B,) (a permutation of 0..B-1)."""
        pick = order.tolist()
        return dataclasses.replace(
            self,
            keys=[self.keys[i] for i in pick],
            prompts=[self.prompts[i] for i in pick],
            seeds=self.seeds[order],
            views=self.views[order],
            cameras=self.cameras[order],
            fovy=self.fovy[order],
            emb=self.emb[order],
            background=self.background[order],
        )


@dataclass(frozen=True)
class CorruptSample:
    """Stands in the stream for a sample that could not be read; `message` names its shard and key."""

    message: str


def collate_samples(items: Sequence[ShardSample | CorruptSample]) -> ShardBatch:
    samples = [s for s in items if isinstance(s, ShardSample)]
    corrupt = tuple(s.message for s in items if isinstance(s, CorruptSample))
    if not samples:  # every sample of the draw was corrupt: an empty batch that still reports them
        empty = torch.zeros(0)
        return ShardBatch([], [], empty.long(), empty.byte(), empty, empty, empty, empty, corrupt)
    shapes = {s.views.shape for s in samples}
    if len(shapes) != 1:
        raise ShardFormatError(f"samples of different view shapes in one batch: {sorted(shapes)}")
    return ShardBatch(
        corrupt=corrupt,
        keys=[s.key for s in samples],
        prompts=[s.prompt for s in samples],
        seeds=torch.tensor([s.seed for s in samples], dtype=torch.int64),
        views=torch.from_numpy(np.stack([s.views for s in samples])),
        cameras=torch.from_numpy(np.stack([s.cameras for s in samples])),
        fovy=torch.from_numpy(np.stack([s.fovy for s in samples])),
        emb=torch.from_numpy(np.stack([s.emb for s in samples])),
        background=torch.from_numpy(np.stack([s.background for s in samples])),
    )


class ShardDataset(torch.utils.data.IterableDataset):
    """Samples of a list of shards, shuffled deterministically per (seed, epoch, worker)."""

    def __init__(
        self,
        shards: Sequence[Path | str],
        *,
        shuffle: bool = True,
        seed: int = 0,
        buffer: int = 256,
        views_per_sample: int | None = None,
        prompt_group: int = 1,
    ):
        if not shards:
            raise ValueError("no shards given")
        if prompt_group < 1:
            raise ValueError(f"prompt_group must be >= 1, got {prompt_group}")
        if views_per_sample is not None and views_per_sample < 1:
            raise ValueError(f"views_per_sample must be >= 1 or None (all), got {views_per_sample}")
        self.shards = [str(s) for s in shards]
        self.shuffle, self.seed, self.buffer, self.views_per_sample = shuffle, seed, buffer, views_per_sample
        self.prompt_group = prompt_group
        self.epoch = 0

    def _decode(self, key: str, group: dict[str, bytes], source: str) -> ShardSample:
        k = self.views_per_sample
        if k is None:
            return decode_sample(key, group, source)
        num_views = sum(1 for name in group if name.endswith(".png"))
        if k > num_views:
            raise ValueError(f"{source}: sample {key} has {num_views} views, the loader wants {k} of each")
        # Seeded by the key, not the worker or position: the same sample gets the same views whatever the split.
        picks = random.Random(f"{self.seed}:{self.epoch}:{key}:views").sample(range(num_views), k)
        return decode_sample(key, group, source, views=picks)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _read(
        self, path: str, start: int, worker: int, workers: int
    ) -> Generator[ShardSample | CorruptSample, None, int]:
        """This worker's samples of one shard, checked against the shard's index: those at positions p (counted
        from `start` across the epoch's shards) with p % workers == worker. Returns the position after it."""
        name = Path(path).name
        try:
            index = read_index(path)
        except ShardIndexError as e:
            yield CorruptSample(str(e))
            return start
        crc = dict(zip(index["keys"], index["crc32"], strict=True)) if index is not None else {}
        position = -1
        try:
            for position, (key, group) in enumerate(iter_tar_groups(path)):
                if (start + position) % workers != worker:
                    continue
                if key in crc and sample_checksum(group) != crc[key]:
                    yield CorruptSample(f"{name}: sample {key}: its bytes differ from the CRC-32 in the shard's index")
                    continue
                try:
                    yield self._decode(key, group, name)
                except ShardFormatError as e:
                    yield CorruptSample(str(e))
        except ShardFormatError as e:  # the tar itself: the rest of this shard is lost
            yield CorruptSample(f"{e} (after sample {position + 1} of the shard)")
        return start + position + 1

    def _my_stream(self) -> Iterator[ShardSample | CorruptSample]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        order = list(self.shards)
        if self.shuffle:
            random.Random(f"{self.seed}:{self.epoch}:shards").shuffle(order)
        if len(order) >= workers:
            for path in order[worker::workers]:
                yield from self._read(path, 0, 0, 1)
        else:
            position = 0  # counted across the shards: each worker takes every workers-th sample of the epoch
            for path in order:
                position = yield from self._read(path, position, worker, workers)

    def __iter__(self) -> Iterator[ShardSample | CorruptSample]:
        stream = self._shuffled()
        yield from stream if self.prompt_group == 1 else group_by_prompt(stream, self.prompt_group)

    def _shuffled(self) -> Iterator[ShardSample | CorruptSample]:
        stream = self._my_stream()
        if not self.shuffle:
            yield from stream
            return
        info = torch.utils.data.get_worker_info()
        rng = random.Random(f"{self.seed}:{self.epoch}:{info.id if info else 0}:buffer")
        buf: list[ShardSample | CorruptSample] = []
        for sample in stream:
            if len(buf) < self.buffer:
                buf.append(sample)
                continue
            i = rng.randrange(len(buf))
            yield buf[i]
            buf[i] = sample
        rng.shuffle(buf)
        yield from buf


def group_by_prompt(stream: Iterable[ShardSample | CorruptSample], size: int) -> Iterator[ShardSample | CorruptSample]:
    """Runs of `size` samples of one prompt, in the order each run fills up; a corrupt sample passes at once.

    Samples of a prompt whose run is still short at the end of the stream are dropped (fewer than `size` per
    prompt per epoch). A batch of `size` * n consecutive samples is then n prompts, `size` samples each."""
    pending: dict[str, list[ShardSample]] = {}
    for sample in stream:
        if isinstance(sample, CorruptSample):
            yield sample
            continue
        run = pending.setdefault(sample.prompt, [])
        run.append(sample)
        if len(run) == size:
            yield from pending.pop(sample.prompt)


def make_loader(
    shards: Sequence[Path | str],
    batch_size: int,
    *,
    num_workers: int = 0,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = True,
    buffer: int = 256,
    views_per_sample: int | None = None,
    prompt_group: int = 1,
) -> torch.utils.data.DataLoader:
    """A DataLoader of `ShardBatch` for one epoch (call again with epoch+1 for the next).

    With `prompt_group` g > 1 each batch is batch_size / g runs of g samples of one prompt (`group_by_prompt`);
    batch_size must then be a multiple of g.

    The trainer's endless, resumable stream over epochs is `student.train.batch_stream.BatchStream`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size % prompt_group:
        raise ValueError(f"batch_size {batch_size} is not a multiple of prompt_group {prompt_group}")
    dataset = ShardDataset(
        shards, shuffle=shuffle, seed=seed, buffer=buffer, views_per_sample=views_per_sample, prompt_group=prompt_group
    )
    dataset.set_epoch(epoch)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_samples,
        drop_last=drop_last,
        persistent_workers=False,
    )
