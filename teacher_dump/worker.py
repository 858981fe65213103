"""The dump worker: holds one teacher, turns one shard task into the encoded shard.

A plain class, so that it runs and tests without Ray; the driver wraps it in `ray.remote` (one actor
per worker). The worker encodes the tar (PNG compression is the costly part of writing, and runs in
parallel here) and returns its bytes: only the driver touches the output directory, so a dump needs
no filesystem shared with the cluster's nodes, and a killed driver leaves no writer behind.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.shards import ShardSample, encode_shard_and_index, make_sample_meta
from teacher_dump.teachers.base import Teacher, build_teacher


@dataclass(frozen=True)
class ShardTask:
    """One shard to generate. emb: (N, D) float32 pooled text embeddings, one row per pair."""

    name: str
    keys: tuple[str, ...]
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    emb: np.ndarray
    text_encoder: str
    batch_size: int


@dataclass(frozen=True)
class ShardResult:
    """The encoded shard, its index (`pipeline.shard_index`) and what it cost. worker: "host:pid" of its maker."""

    name: str
    keys: tuple[str, ...]
    data: bytes
    index: dict
    worker: str
    teacher_s: float
    encode_s: float


def describe_teacher(teacher: Teacher) -> dict:
    """The teacher's name, config, config hash (recorded in every sample's json) and camera distribution."""
    return {
        "name": teacher.name,
        "config": teacher.config(),
        "hash": teacher.config_hash(),
        "cameras": teacher.camera_distribution(),
    }


class DumpWorker:
    """One teacher, built once; `run_shard` is called for many shards."""

    def __init__(self, teacher: str, options: dict, threads: int = 1):
        # Each worker owns `threads` cores; torch's default (all cores) would oversubscribe the node.
        torch.set_num_threads(threads)
        self.teacher = build_teacher(teacher, **options)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"

    def describe(self) -> dict:
        return describe_teacher(self.teacher)

    def validate(self, prompts: list[str]) -> None:
        self.teacher.validate_prompts(prompts)

    def run_shard(self, task: ShardTask) -> ShardResult:
        if task.emb.shape[0] != len(task.prompts):
            raise ValueError(f"{task.name}: {task.emb.shape[0]} embeddings for {len(task.prompts)} prompts")
        config_hash = self.teacher.config_hash()
        samples: list[ShardSample] = []
        teacher_s = 0.0
        for start in range(0, len(task.prompts), task.batch_size):
            prompts = list(task.prompts[start : start + task.batch_size])
            seeds = list(task.seeds[start : start + task.batch_size])
            t0 = time.perf_counter()
            out = self.teacher.generate(prompts, seeds)
            teacher_s += time.perf_counter() - t0
            num_views, resolution = out.views.shape[1], out.views.shape[2]
            for i, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
                meta = make_sample_meta(
                    prompt,
                    seed,
                    teacher=self.teacher.name,
                    teacher_config_hash=config_hash,
                    text_encoder=task.text_encoder,
                    text_dim=task.emb.shape[1],
                    num_views=num_views,
                    resolution=resolution,
                )
                samples.append(
                    ShardSample(
                        key=task.keys[start + i],
                        prompt=prompt,
                        seed=seed,
                        views=out.views[i],
                        cameras=out.cameras[i],
                        fovy=out.fovy[i],
                        emb=task.emb[start + i],
                        meta=meta,
                    )
                )
        t0 = time.perf_counter()
        data, index = encode_shard_and_index(samples)
        encode_s = time.perf_counter() - t0
        return ShardResult(task.name, task.keys, data, index, self.worker_id, teacher_s, encode_s)
