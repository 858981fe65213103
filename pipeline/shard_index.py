"""The index of one shard: what the trainer needs to know about it, without opening the tar.

``shard-NNNNNN.index.json`` sits beside ``shard-NNNNNN.tar``, written atomically after the tar (by
`pipeline.shards.write_shard`, and by the dump driver for shards its workers encoded). It holds:

| field                    | content                                                                  |
|--------------------------|--------------------------------------------------------------------------|
| ``index_version``        | 1                                                                        |
| ``shard_bytes``          | size of the tar it describes; another size means the index is stale       |
| ``num_samples``, ``keys`` | the samples, in file order                                               |
| ``crc32``                | per sample, CRC-32 of its members (`pipeline.shards.sample_checksum`)     |
| ``teacher``, ``teacher_config_hash``, ``text_encoder``, ``text_dim``, ``num_views``, ``resolution`` | as every sample's json |
| ``mixed_fields``         | the shared fields its samples disagree on (a reader refuses the shard)    |
| ``schema_minor``         | the lowest schema minor version of its samples                            |
| ``prompts``              | prompt -> its pooled embedding, base64 of little-endian float32 (exact)   |
| ``cameras``              | ``elevation_deg``, ``radius``, ``fovy_deg``: [min, max] over its views    |
| ``background``           | median RGB in [0, 1] of the per-view background colours                  |

So learning a dataset costs one small JSON file per shard, whatever the size of the views
(docs/design.md, the stage contract). `pipeline/dataset.py` combines the indexes of a directory.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write_json

INDEX_VERSION = 1
INDEX_SUFFIX = ".index.json"
# Fields every sample of a shard shares (a shard that mixes them is refused).
SHARED_FIELDS = ("teacher", "teacher_config_hash", "text_encoder", "text_dim", "num_views", "resolution")


class ShardIndexError(ValueError):
    """An index that is missing a field, unreadable or stale; the message names the file and the fix."""


def index_path(shard: Path | str) -> Path:
    """``shard-000000.tar`` -> ``shard-000000.index.json`` beside it."""
    shard = Path(shard)
    return shard.with_name(shard.stem + INDEX_SUFFIX)


def estimate_background(views: np.ndarray) -> np.ndarray:
    """(V, H, W, 3) uint8 -> (V, 3) float32 in [0, 1]: the per-channel median of each view's outer pixel ring.

    The teachers frame the object in the middle of the view, so the border is background; the median
    ignores the few border pixels an object may touch.
    """
    assert views.ndim == 4 and views.shape[-1] == 3, f"views must be (V, H, W, 3), got {views.shape}"
    ring = np.concatenate([views[:, 0], views[:, -1], views[:, 1:-1, 0], views[:, 1:-1, -1]], axis=1)  # (V, P, 3)
    return (np.median(ring, axis=1) / 255.0).astype(np.float32)


def camera_stats(cameras: np.ndarray, fovy: np.ndarray) -> dict[str, list[float]]:
    """cameras (..., 4, 4) cam-to-world (world z up), fovy (...) degrees -> [min, max] of elevation, radius, fovy."""
    position = cameras[..., :3, 3].reshape(-1, 3).astype(np.float64)  # (N, 3)
    radius = np.linalg.norm(position, axis=1)
    elevation = np.degrees(np.arcsin(np.clip(position[:, 2] / np.maximum(radius, 1e-12), -1.0, 1.0)))
    f = fovy.reshape(-1).astype(np.float64)
    return {
        name: [round(float(v.min()), 4), round(float(v.max()), 4)]
        for name, v in (("elevation_deg", elevation), ("radius", radius), ("fovy_deg", f))
    }


def merge_camera_stats(stats: Sequence[dict[str, list[float]]]) -> dict[str, list[float]]:
    """The [min, max] ranges covering every one of `stats`."""
    return {
        name: [min(s[name][0] for s in stats), max(s[name][1] for s in stats)]
        for name in ("elevation_deg", "radius", "fovy_deg")
    }


def encode_embedding(emb: np.ndarray) -> str:
    return base64.b64encode(np.asarray(emb, dtype="<f4").tobytes()).decode("ascii")


def decode_embedding(text: str, dim: int) -> np.ndarray:
    emb = np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)
    if emb.shape != (dim,):
        raise ValueError(f"embedding of {emb.shape[0]} dims, expected {dim}")
    return emb


def shard_index(
    *,
    keys: Sequence[str],
    prompts: Sequence[str],
    emb: Sequence[np.ndarray],
    cameras: Sequence[np.ndarray],
    fovy: Sequence[np.ndarray],
    background: Sequence[np.ndarray],
    metas: Sequence[dict],
    checksums: Sequence[int],
    shard_bytes: int,
) -> dict:
    """The index of a shard from its samples' fields (one entry per sample in every sequence)."""
    if not keys:
        raise ValueError("a shard index needs at least one sample")
    first = metas[0]
    mixed = sorted({name for meta in metas for name in SHARED_FIELDS if meta.get(name) != first.get(name)})
    table: dict[str, str] = {}
    for prompt, e in zip(prompts, emb, strict=True):
        table.setdefault(prompt, encode_embedding(e))
    bg = np.concatenate([np.asarray(b, np.float32).reshape(-1, 3) for b in background])  # (N*V, 3)
    return {
        "index_version": INDEX_VERSION,
        "shard_bytes": int(shard_bytes),
        "num_samples": len(keys),
        "keys": list(keys),
        "crc32": [int(c) for c in checksums],
        **{name: first.get(name) for name in SHARED_FIELDS},
        "mixed_fields": mixed,  # shared fields its samples disagree on; readers refuse such a shard
        "schema_minor": min(int(m.get("schema_minor", 0)) for m in metas),
        "prompts": dict(sorted(table.items())),
        "cameras": camera_stats(np.stack(cameras), np.stack(fovy)),
        "background": [round(float(c), 4) for c in np.median(bg, axis=0)],
    }


def write_index(path: Path | str, index: dict) -> Path:
    return atomic_write_json(Path(path), index)


def read_index(shard: Path | str) -> dict | None:
    """The index of `shard`, None when it has none; ShardIndexError when it is unreadable or stale."""
    shard, path = Path(shard), index_path(shard)
    if not path.is_file():
        return None
    fix = f"rebuild it with `et3d-check {shard.parent} --index`"
    try:
        index = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardIndexError(f"{path.name}: not JSON ({e}); {fix}") from e
    required = ("index_version", "shard_bytes", "num_samples", "keys", "crc32", "prompts", "cameras", "background")
    missing = [f for f in (*required, *SHARED_FIELDS) if not isinstance(index, dict) or f not in index]
    if missing:
        raise ShardIndexError(f"{path.name}: lacks {', '.join(missing)}; {fix}")
    if index["index_version"] != INDEX_VERSION:
        raise ShardIndexError(f"{path.name}: index_version {index['index_version']} (expected {INDEX_VERSION})")
    size = shard.stat().st_size
    if size != index["shard_bytes"]:
        raise ShardIndexError(
            f"{path.name} is stale: {shard.name} is {size} bytes, the index describes {index['shard_bytes']}; {fix}"
        )
    return index
