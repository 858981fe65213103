"""Small synthetic schema-v1 shards for the pipeline tests: random views, identity-rotation cameras, a random stand-in embedding."""

from __future__ import annotations

import numpy as np

from pipeline.prompts import prompt_id
from pipeline.shards import Manifest, ShardSample, make_sample_meta, sample_key, write_shard

PROMPTS = ["a red cube", "a blue sphere", "a green torus"]


def make_sample(prompt: str, seed: int, v: int = 2, res: int = 8, dim: int = 6) -> ShardSample:
    rng = np.random.default_rng(seed * 31 + len(prompt))
    cams = np.tile(np.eye(4, dtype=np.float32), (v, 1, 1))
    cams[:, :3, 3] = rng.normal(size=(v, 3)).astype(np.float32)
    meta = make_sample_meta(
        prompt,
        seed,
        teacher="unit",
        teacher_config_hash="abc",
        text_encoder="unit",
        text_dim=dim,
        num_views=v,
        resolution=res,
    )
    return ShardSample(
        key=sample_key(prompt_id(prompt), seed),
        prompt=prompt,
        seed=seed,
        views=rng.integers(0, 256, size=(v, res, res, 3), dtype=np.uint8),
        cameras=cams,
        fovy=np.full(v, 40.0, np.float32),
        emb=rng.normal(size=dim).astype(np.float32),
        meta=meta,
    )


def write_dataset(d, shards=3, per_shard=4):
    d.mkdir(exist_ok=True)
    manifest = Manifest(d)
    samples = [make_sample(PROMPTS[i % 3], i // 3) for i in range(shards * per_shard)]
    for s in range(shards):
        chunk = samples[s * per_shard : (s + 1) * per_shard]
        write_shard(d / f"shard-{s:06d}.tar", chunk)
        manifest.record(f"shard-{s:06d}.tar", [c.key for c in chunk])
    return samples
