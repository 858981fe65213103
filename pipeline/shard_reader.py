"""Reading schema-v1 shards: typed samples and shuffled, collated torch batches.

The loader is a plain `torch.utils.data.IterableDataset` over the tar files, deterministic in
``(seed, epoch, num_workers)``: the shard order of an epoch is a seeded permutation; with at least as
many shards as loader workers each worker reads every ``num_workers``-th shard, otherwise every
worker reads all shards and keeps every ``num_workers``-th sample; each worker shuffles through a
seeded buffer. `torch.utils.data.DataLoader` interleaves workers round-robin, so the same arguments
give the same batches in the same order, which is what makes a resumed training run reproducible.
The files are ordinary WebDataset tars: `webdataset.WebDataset` reads them too.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.shards import ShardSample

_REQUIRED = ("txt", "json", "cameras.npy", "fovy.npy", "emb.npy")


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


def decode_sample(key: str, group: dict[str, bytes], source: str = "<shard>") -> ShardSample:
    """Decode one member group into a ShardSample, raising ShardFormatError naming what is wrong."""
    missing = [s for s in _REQUIRED if s not in group]
    if missing:
        raise ShardFormatError(f"{source}: sample {key} lacks {', '.join(missing)}")
    try:
        meta = json.loads(group["json"].decode("utf-8"))
        num_views = int(meta["num_views"])
        view_names = [f"{i}.png" for i in range(num_views)]
        absent = [n for n in view_names if n not in group]
        if absent:
            raise ShardFormatError(f"{source}: sample {key} lacks {', '.join(absent)}")
        views = np.stack([np.asarray(Image.open(io.BytesIO(group[n])).convert("RGB")) for n in view_names])
        return ShardSample(
            key=key,
            prompt=group["txt"].decode("utf-8"),
            seed=int(meta["seed"]),
            views=views,
            cameras=_load_npy(group["cameras.npy"]),
            fovy=_load_npy(group["fovy.npy"]),
            emb=_load_npy(group["emb.npy"]),
            meta=meta,
        )
    except ShardFormatError:
        raise
    except (KeyError, ValueError, OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
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
    """

    keys: list[str]
    prompts: list[str]
    seeds: torch.Tensor
    views: torch.Tensor
    cameras: torch.Tensor
    fovy: torch.Tensor
    emb: torch.Tensor

    def __len__(self) -> int:
        return len(self.keys)

    def images(self) -> torch.Tensor:
        """(B, V, 3, H, W) float32 in [0, 1]."""
        return self.views.permute(0, 1, 4, 2, 3).float() / 255.0


def collate_samples(samples: Sequence[ShardSample]) -> ShardBatch:
    shapes = {s.views.shape for s in samples}
    if len(shapes) != 1:
        raise ShardFormatError(f"samples of different view shapes in one batch: {sorted(shapes)}")
    return ShardBatch(
        keys=[s.key for s in samples],
        prompts=[s.prompt for s in samples],
        seeds=torch.tensor([s.seed for s in samples], dtype=torch.int64),
        views=torch.from_numpy(np.stack([s.views for s in samples])),
        cameras=torch.from_numpy(np.stack([s.cameras for s in samples])),
        fovy=torch.from_numpy(np.stack([s.fovy for s in samples])),
        emb=torch.from_numpy(np.stack([s.emb for s in samples])),
    )


class ShardDataset(torch.utils.data.IterableDataset):
    """Samples of a list of shards, shuffled deterministically per (seed, epoch, worker)."""

    def __init__(self, shards: Sequence[Path | str], *, shuffle: bool = True, seed: int = 0, buffer: int = 256):
        if not shards:
            raise ValueError("no shards given")
        self.shards = [str(s) for s in shards]
        self.shuffle, self.seed, self.buffer = shuffle, seed, buffer
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _my_stream(self) -> Iterator[ShardSample]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        order = list(self.shards)
        if self.shuffle:
            random.Random(f"{self.seed}:{self.epoch}:shards").shuffle(order)
        if len(order) >= workers:
            for path in order[worker::workers]:
                yield from read_shard(path)
        else:
            index = 0
            for path in order:
                for key, group in iter_tar_groups(path):
                    if index % workers == worker:
                        yield decode_sample(key, group, Path(path).name)
                    index += 1

    def __iter__(self) -> Iterator[ShardSample]:
        stream = self._my_stream()
        if not self.shuffle:
            yield from stream
            return
        info = torch.utils.data.get_worker_info()
        rng = random.Random(f"{self.seed}:{self.epoch}:{info.id if info else 0}:buffer")
        buf: list[ShardSample] = []
        for sample in stream:
            if len(buf) < self.buffer:
                buf.append(sample)
                continue
            i = rng.randrange(len(buf))
            yield buf[i]
            buf[i] = sample
        rng.shuffle(buf)
        yield from buf


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
) -> torch.utils.data.DataLoader:
    """A DataLoader of `ShardBatch` for one epoch (call again with epoch+1 for the next)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dataset = ShardDataset(shards, shuffle=shuffle, seed=seed, buffer=buffer)
    dataset.set_epoch(epoch)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_samples,
        drop_last=drop_last,
        persistent_workers=False,
    )


def iter_batches(
    shards: Sequence[Path | str], batch_size: int, *, num_workers: int = 0, seed: int = 0, start_epoch: int = 0, **kw
) -> Iterator[tuple[int, ShardBatch]]:
    """Endless (epoch, batch) stream: epoch after epoch, each reshuffled by (seed, epoch)."""
    epoch = start_epoch
    while True:
        produced = 0
        for batch in make_loader(shards, batch_size, num_workers=num_workers, seed=seed, epoch=epoch, **kw):
            produced += 1
            yield epoch, batch
        if produced == 0:
            raise ValueError(f"an epoch over {len(shards)} shard(s) produced no batch of {batch_size}")
        epoch += 1
