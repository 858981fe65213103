"""What a shard directory holds, read without decoding any image: prompts, embeddings, encoder, cameras."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.shard_reader import ShardFormatError, iter_tar_groups


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
    radius: float  # camera distance of the first sample's views
    fovy_deg: float


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def scan_shards(shards: Sequence[Path]) -> DatasetInfo:
    """Read every sample's text, metadata and embedding (not its views); mixed encoders or sizes raise."""
    if not shards:
        raise ValueError("no shards to scan")
    embeddings: dict[str, np.ndarray] = {}
    first: dict | None = None
    radius = fovy = 0.0
    count = 0
    for path in shards:
        for key, group in iter_tar_groups(path):
            meta = json.loads(group["json"])
            if first is None:
                first = meta
                radius = float(np.linalg.norm(_npy(group["cameras.npy"])[0, :3, 3]))
                fovy = float(_npy(group["fovy.npy"])[0])
            for field in ("text_encoder", "text_dim", "num_views", "resolution"):
                if meta[field] != first[field]:
                    raise ShardFormatError(
                        f"{Path(path).name}: {key} has {field}={meta[field]!r}, others {first[field]!r}"
                    )
            embeddings.setdefault(group["txt"].decode("utf-8"), _npy(group["emb.npy"]))
            count += 1
    if first is None:
        raise ValueError(f"the {len(shards)} shard(s) hold no samples")
    prompts = sorted(embeddings)
    return DatasetInfo(
        num_samples=count,
        prompts=prompts,
        embeddings=torch.from_numpy(np.stack([embeddings[p] for p in prompts])),
        text_encoder=first["text_encoder"],
        text_dim=int(first["text_dim"]),
        teacher=first["teacher"],
        num_views=int(first["num_views"]),
        resolution=int(first["resolution"]),
        radius=radius,
        fovy_deg=fovy,
    )
