"""The shard plan and the worker, without Ray: deterministic, exactly-once, decodable shards."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipeline.prompts import prompt_id
from pipeline.shard_reader import read_shard
from pipeline.shards import sample_key, write_shard_bytes
from teacher_dump.plan import plan_digest, plan_shards
from teacher_dump.worker import DumpWorker, ShardTask

PROMPTS = [f"a {c} {s}" for c in ("red", "blue", "green") for s in ("cube", "sphere", "cone")]


def test_plan_holds_every_pair_exactly_once_in_full_shards() -> None:
    plans = plan_shards(PROMPTS, samples_per_prompt=5, shard_size=7, seed_offset=10)
    keys = [k for p in plans for k in p.keys]
    assert len(keys) == len(set(keys)) == 9 * 5
    assert set(keys) == {sample_key(prompt_id(p), s) for p in PROMPTS for s in range(10, 15)}
    assert [len(p) for p in plans] == [7] * 6 + [3]
    assert [p.name for p in plans] == [f"shard-{i:06d}.tar" for i in range(7)]
    # Seed-major order: the first shards already cover many prompts.
    assert len(set(plans[0].prompts)) == 7 and set(plans[0].seeds) == {10}


def test_plan_is_deterministic_and_ignores_corpus_order() -> None:
    a = plan_shards(PROMPTS, 3, 4)
    b = plan_shards(list(reversed(PROMPTS)), 3, 4)
    assert a == b and plan_digest(a) == plan_digest(b)
    assert plan_digest(plan_shards(PROMPTS, 3, 5)) != plan_digest(a)
    assert plan_digest(plan_shards(PROMPTS[:-1], 3, 4)) != plan_digest(a)


def test_plan_rejects_bad_sizes_and_seeds_beyond_the_key_format() -> None:
    with pytest.raises(ValueError, match="shard_size >= 1"):
        plan_shards(PROMPTS, 2, 0)
    with pytest.raises(ValueError, match="999999"):
        plan_shards(PROMPTS, 2, 4, seed_offset=999_999)


def test_worker_makes_a_valid_shard(tmp_path: Path) -> None:
    worker = DumpWorker("fake", {"num_views": 2, "resolution": 8})
    plan = plan_shards(PROMPTS[:2], 3, 8)[0]
    emb = np.arange(len(plan) * 5, dtype=np.float32).reshape(len(plan), 5)
    task = ShardTask(plan.name, plan.keys, plan.prompts, plan.seeds, emb, "test-encoder", batch_size=4)
    result = worker.run_shard(task)
    assert result.keys == plan.keys and result.teacher_s >= 0
    samples = list(read_shard(write_shard_bytes(tmp_path / plan.name, result.data)))
    assert [s.key for s in samples] == list(plan.keys)
    assert Counter(s.prompt for s in samples) == Counter(plan.prompts)
    for i, s in enumerate(samples):
        np.testing.assert_array_equal(s.emb, emb[i])
        assert s.views.shape == (2, 8, 8, 3)
        assert s.meta["teacher"] == "fake" and s.meta["text_encoder"] == "test-encoder" and s.meta["text_dim"] == 5
        assert s.meta["teacher_config_hash"] == worker.teacher.config_hash()
    # Same task, same bytes: shards are reproducible.
    assert worker.run_shard(task).data == result.data
