"""What a shard directory holds, learned from the dump's `dataset.json` and the shards' indexes.

The trainer, the evaluation and `et3d-check --index` read a dataset here. Start-up reads one small index per
shard (`shard_index.py`), so it grows with the number of shards and prompts, never with the bytes of the
views. A shard without an index (a dump made before indexes existed, schema 1.0) is scanned once, and the
index that scan produces is written beside it atomically, with a message saying so; later starts read it.
Where the directory cannot be written, the scan result is used for this run only and the message says how
to write it (`et3d-check DIR --index` as the directory's owner).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.shard_index import (
    ShardIndexError,
    decode_embedding,
    index_path,
    merge_camera_stats,
    read_index,
    shard_index,
    write_index,
)
from pipeline.shard_reader import ShardFormatError, decode_sample, iter_tar_groups
from pipeline.shards import list_shards, read_dataset_info, sample_checksum


@dataclass(frozen=True)
class CameraDistribution:
    """Where the teacher's cameras are: elevation range (degrees), distance to the origin, vertical fov."""

    elevation_range: tuple[float, float]
    radius: float
    fovy_deg: float


@dataclass(frozen=True)
class DatasetInfo:
    num_samples: int
    prompts: list[str]  # distinct prompts, sorted
    embeddings: torch.Tensor  # (len(prompts), D) pooled text embedding of each prompt
    text_encoder: str
    text_dim: int
    teacher: str
    num_views: int
    resolution: int
    cameras: CameraDistribution
    background: tuple[float, float, float]  # median RGB in [0, 1] of the views' backgrounds
    shard_samples: tuple[int, ...]  # samples per shard, in the order of the shards given
    text_encoder_path: str | None = None  # where the dump loaded the encoder from (dataset.json), None = default

    @property
    def radius(self) -> float:
        return self.cameras.radius

    @property
    def fovy_deg(self) -> float:
        return self.cameras.fovy_deg


def index_by_scan(shard: Path) -> dict:
    """Build the index of `shard` by reading all of it (only for shards written without one)."""
    names = ("keys", "prompts", "emb", "cameras", "fovy", "background", "metas", "checksums")
    fields: dict[str, list] = {n: [] for n in names}
    for key, group in iter_tar_groups(shard):
        sample = decode_sample(key, group, shard.name)
        bg = sample.background  # decoding estimates it for a 1.0 sample
        for name, value in (
            ("keys", key), ("prompts", sample.prompt), ("emb", sample.emb), ("cameras", sample.cameras),
            ("fovy", sample.fovy), ("background", bg), ("metas", sample.meta), ("checksums", sample_checksum(group)),
        ):  # fmt: skip
            fields[name].append(value)
    if not fields["keys"]:
        raise ShardFormatError(f"{shard.name}: holds no samples")
    return shard_index(**fields, shard_bytes=shard.stat().st_size)


def load_indexes(
    shards: Sequence[Path], *, rebuild: bool = False, say: Callable[[str], None] | None = None
) -> list[dict]:
    """The index of each shard; a missing one (or every one, with `rebuild`) is built by a scan and written."""
    say = say or (lambda line: print(line, file=sys.stderr))
    indexes: list[dict | None] = [None if rebuild else read_index(s) for s in shards]
    todo = [i for i, index in enumerate(indexes) if index is None]
    if todo:
        say(
            f"{len(todo)} of {len(shards)} shard(s) have no index (written before schema 1.1, or --index asked): "
            "reading them once to build it; later starts read the index only"
        )
        unwritable = []
        for i in tqdm(todo, desc="index", unit="shard", disable=len(todo) < 2, file=sys.stderr):
            indexes[i] = index_by_scan(shards[i])
            try:
                write_index(index_path(shards[i]), indexes[i])
            except OSError:
                unwritable.append(shards[i].name)
        if unwritable:
            say(
                f"could not write the index of {len(unwritable)} shard(s) (e.g. {unwritable[0]}): "
                f"this run uses the scan; run `et3d-check {shards[0].parent} --index` as the directory's owner"
            )
    return indexes  # type: ignore[return-value]


def _camera_distribution(declared: dict | None, measured: dict[str, list[float]]) -> CameraDistribution:
    """The teacher's declared distribution (dataset.json) where the dump recorded one, else the measured one."""
    if declared:
        lo, hi = declared["elevation_range"]
        return CameraDistribution((float(lo), float(hi)), float(declared["radius"]), float(declared["fovy_deg"]))
    elevation, radius, fovy = measured["elevation_deg"], measured["radius"], measured["fovy_deg"]
    return CameraDistribution(
        (float(elevation[0]), float(elevation[1])), (radius[0] + radius[1]) / 2, (fovy[0] + fovy[1]) / 2
    )


def describe_dataset(
    directory: Path | str, shards: Sequence[Path] | None = None, *, say: Callable[[str], None] | None = None
) -> DatasetInfo:
    """The dataset of `directory` (or of `shards`, a subset of it): indexes combined with `dataset.json`.

    Raises ShardFormatError (or ShardIndexError, a ValueError) naming the shard whose index disagrees.
    """
    directory = Path(directory)
    shards = list(shards) if shards is not None else list_shards(directory)
    if not shards:
        raise FileNotFoundError(f"no shards (*.tar) in {directory}")
    indexes = load_indexes(shards, say=say)
    try:
        dump = read_dataset_info(directory)
    except ValueError as e:
        raise ShardIndexError(str(e)) from e
    first = indexes[0]
    for shard, index in zip(shards, indexes, strict=True):
        if index.get("mixed_fields"):
            raise ShardFormatError(f"{shard.name}: its samples disagree on {', '.join(index['mixed_fields'])}")
        for name in ("teacher", "text_encoder", "text_dim", "num_views", "resolution"):
            if index[name] != first[name]:
                raise ShardFormatError(f"{shard.name} has {name}={index[name]!r}, {shards[0].name} {first[name]!r}")
            if dump is not None and name in dump and dump[name] != index[name]:
                raise ShardFormatError(f"{shard.name} has {name}={index[name]!r}, dataset.json says {dump[name]!r}")
    table: dict[str, np.ndarray] = {}
    for shard, index in zip(shards, indexes, strict=True):
        for prompt, text in index["prompts"].items():
            if prompt not in table:
                try:
                    table[prompt] = decode_embedding(text, int(first["text_dim"]))
                except ValueError as e:
                    raise ShardIndexError(f"{index_path(shard).name}: prompt {prompt!r}: {e}") from e
    prompts = sorted(table)
    background = np.median(np.array([index["background"] for index in indexes], np.float64), axis=0)
    return DatasetInfo(
        num_samples=sum(int(index["num_samples"]) for index in indexes),
        prompts=prompts,
        embeddings=torch.from_numpy(np.stack([table[p] for p in prompts])),
        text_encoder=first["text_encoder"],
        text_dim=int(first["text_dim"]),
        teacher=first["teacher"],
        num_views=int(first["num_views"]),
        resolution=int(first["resolution"]),
        cameras=_camera_distribution(
            (dump or {}).get("cameras"), merge_camera_stats([index["cameras"] for index in indexes])
        ),
        background=tuple(round(float(c), 4) for c in background),
        shard_samples=tuple(int(index["num_samples"]) for index in indexes),
        text_encoder_path=(dump or {}).get("text_encoder_path"),
    )


def dataset_summary(info: DatasetInfo) -> str:
    """One line per fact, for `et3d-check --index` and `et3d-train --dry-run`."""
    c = info.cameras
    return json.dumps(
        {
            "samples": info.num_samples,
            "shards": len(info.shard_samples),
            "prompts": len(info.prompts),
            "teacher": info.teacher,
            "text_encoder": f"{info.text_encoder} ({info.text_dim}-d)",
            "views": f"{info.num_views} at {info.resolution}px",
            "cameras": {"elevation_deg": list(c.elevation_range), "radius": c.radius, "fovy_deg": c.fovy_deg},
            "background": list(info.background),
        },
        indent=1,
    )
