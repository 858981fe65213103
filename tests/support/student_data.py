"""Test data for the student tests: small procedural shards with a one-hot stand-in text embedding.

The views come from the real procedural teacher (tests may import teacher_dump; the student may not). The
embedding is colour one-hot + shape one-hot, so tests need no text-encoder load.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from pipeline.dataset import describe_dataset
from pipeline.procedural import COLOURS, SHAPES, parse_prompt
from pipeline.prompts import prompt_id
from pipeline.shards import SHARD_PATTERN, ShardSample, make_sample_meta, sample_key, write_shard
from student.presets import tiny
from student.train.plan import TrainPlan, resolve_against_data
from teacher_dump.teachers.procedural import ProceduralTeacher

ONEHOT_DIM = 16
PROMPTS = ("a red cube", "a blue sphere", "a green cone", "a yellow torus")


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from a second thread, and on a loaded 2-core machine OpenMP threads waiting
    for each other at every parallel region stretch a millisecond op into seconds."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def onehot_embedding(prompt: str) -> np.ndarray:
    spec = parse_prompt(prompt)
    emb = np.zeros(ONEHOT_DIM, dtype=np.float32)
    emb[list(COLOURS).index(spec.colour)] = 1
    emb[len(COLOURS) + SHAPES.index(spec.shape)] = 1
    return emb


def make_procedural_shards(
    directory: Path,
    prompts=PROMPTS,
    seeds: int = 4,
    per_shard: int = 4,
    resolution: int = 16,
    *,
    teacher_name: str = "procedural",
    text_encoder: str = "onehot-test",
    background: tuple[int, int, int] | None = None,
) -> Path:
    """len(prompts) * seeds samples of 4 views, `per_shard` samples per tar (labelled as `teacher_name`'s);
    `background` repaints the teacher's pure white background in that uint8 colour."""
    directory.mkdir(parents=True, exist_ok=True)
    teacher = ProceduralTeacher(resolution=resolution, supersample=1)
    pairs = [(p, s) for s in range(seeds) for p in prompts]
    out = teacher.generate([p for p, _ in pairs], [s for _, s in pairs])
    if background is not None:
        white = (out.views == 255).all(axis=-1, keepdims=True)  # (N, V, H, W, 1)
        out = dataclasses.replace(out, views=np.where(white, np.array(background, np.uint8), out.views))
    samples = [
        ShardSample(
            key=sample_key(prompt_id(p), s),
            prompt=p,
            seed=s,
            views=out.views[i],
            cameras=out.cameras[i],
            fovy=out.fovy[i],
            emb=onehot_embedding(p),
            meta=make_sample_meta(
                p,
                s,
                teacher=teacher_name,
                teacher_config_hash="test",
                text_encoder=text_encoder,
                text_dim=ONEHOT_DIM,
                num_views=out.views.shape[1],
                resolution=resolution,
            ),
        )  # fmt: skip
        for i, (p, s) in enumerate(pairs)
    ]
    for index in range(0, len(samples), per_shard):
        write_shard(directory / SHARD_PATTERN.format(index=index // per_shard), samples[index : index + per_shard])
    return directory


def tiny_plan(shards_dir: Path, run_dir: Path, resume_from: Path | None = None, **schedule) -> TrainPlan:
    """A plan for the tiny preset on test shards, loader in-process (no worker processes)."""
    cfg = tiny()
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, num_workers=0),
        schedule=dataclasses.replace(cfg.schedule, **schedule),
    )
    shards = sorted(shards_dir.glob("*.tar"))
    info = describe_dataset(shards_dir, shards)
    return TrainPlan(resolve_against_data(cfg, info), shards, info, run_dir, resume_from, 1)
