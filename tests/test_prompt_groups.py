"""Prompt-grouped batches (`optim.prompt_group`) and the fixed-azimuth procedural dump: the two changes that let
the discriminator see a prompt's collapsed variety (docs/student.md §Variety)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from support.shard_data import make_sample
from support.student_data import tiny_plan

from pipeline.shard_reader import CorruptSample, group_by_prompt, make_loader
from student.train.plan import resolve_against_data
from student.train.trainer import Trainer, interleave_groups
from teacher_dump.teachers.procedural import ProceduralTeacher

pytestmark = pytest.mark.usefixtures("one_thread")  # `one_thread` and `shards` are in tests/conftest.py


def test_group_by_prompt_emits_whole_runs_of_one_prompt_and_drops_short_ones():
    stream = [make_sample(p, s) for s, p in enumerate(["a", "b", "a", "c", "b", "a", "b", "c", "a", "d"])]
    stream.insert(3, CorruptSample("shard-000000.tar: sample x: bad bytes"))
    out = list(group_by_prompt(stream, 2))
    kinds = [s.message if isinstance(s, CorruptSample) else s.prompt for s in out]
    # a run is emitted when it fills (a at the 2nd a, b at the 2nd b, c, then a again); the corrupt line passes
    # at once; the leftovers (the 3rd b, the one d) never fill a run and are dropped
    assert kinds == ["a", "a", "shard-000000.tar: sample x: bad bytes", "b", "b", "c", "c", "a", "a"]
    assert [s.seed for s in out[0:2]] == [0, 2] and [s.seed for s in out[7:9]] == [5, 8]  # stream order


def test_grouped_loader_batches_are_runs_of_one_prompt(shards):
    files = sorted(shards.glob("*.tar"))
    batches = list(make_loader(files, 4, prompt_group=2, seed=3))
    assert batches, "no batch"
    for batch in batches:
        assert batch.prompts[0] == batch.prompts[1] and batch.prompts[2] == batch.prompts[3], batch.prompts
        assert len(set(batch.keys)) == 4
    plain = list(make_loader(files, 4, seed=3))
    assert any(b.prompts[0] != b.prompts[1] or b.prompts[2] != b.prompts[3] for b in plain)  # not so by chance
    with pytest.raises(ValueError, match="multiple of prompt_group"):
        make_loader(files, 6, prompt_group=4)


def test_interleave_groups_puts_each_prompt_in_one_minibatch_std_group():
    prompts = ["p", "p", "p", "p", "q", "q", "q", "q"]
    order = interleave_groups(prompts, 4)
    assert order.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    laid_out = [prompts[i] for i in order]
    groups = torch.arange(8).reshape(4, 2).t()  # D's groups of 4: samples i, i + 2, i + 4, i + 6
    assert [{laid_out[i] for i in g.tolist()} for g in groups] == [{"p"}, {"q"}]
    assert interleave_groups(["p", "p", "q", "p"], 2) is None  # not runs (a sample was skipped): as drawn
    assert interleave_groups(prompts, 1) is None


def test_grouped_training_step_lays_out_prompts_for_minibatch_std(shards, tmp_path):
    plan = tiny_plan(shards, tmp_path / "run")
    cfg = plan.config  # tiny: batch 4, mbstd group 2
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, prompt_group=2))
    trainer = Trainer(dataclasses.replace(plan, config=cfg), progress_bar=False)
    batch = next(iter(trainer.stream))
    assert batch.prompts[0] == batch.prompts[1] and batch.prompts[2] == batch.prompts[3]
    laid = batch.reordered(interleave_groups(batch.prompts, 2))
    assert laid.prompts[0] == laid.prompts[2] and laid.prompts[1] == laid.prompts[3]  # groups i, i + B/2
    assert torch.equal(laid.views[2], batch.views[1]) and torch.equal(laid.emb[1], batch.emb[2])
    values = trainer.step(batch, step=1)
    assert all(math.isfinite(v) for v in values.values()), values


def test_prompt_group_must_divide_the_batch_and_match_the_minibatch_std_group(shards, tmp_path):
    plan = tiny_plan(shards, tmp_path / "run")
    for optim, match in (
        (dict(prompt_group=3), "divide optim.batch_size"),
        (dict(prompt_group=4), "must equal discriminator.mbstd_group"),
    ):
        cfg = dataclasses.replace(plan.config, optim=dataclasses.replace(plan.config.optim, **optim))
        with pytest.raises(ValueError, match=match):
            resolve_against_data(cfg, plan.dataset)
    paired = dataclasses.replace(
        plan.config,
        optim=dataclasses.replace(plan.config.optim, prompt_group=2),
        loss=dataclasses.replace(plan.config.loss, pair_diversity=1.0),
    )
    with pytest.raises(ValueError, match="cannot be combined with loss.pair_diversity"):
        resolve_against_data(paired, plan.dataset)
    resolve_against_data(dataclasses.replace(paired, loss=plan.config.loss), plan.dataset)  # grouping alone is fine


def first_view_azimuths(teacher: ProceduralTeacher, seeds: range) -> np.ndarray:
    out = teacher.generate(["a red cube"] * len(seeds), list(seeds))
    eye = out.cameras[:, 0, :3, 3]  # (N, 3) first view's camera centre
    return np.degrees(np.arctan2(eye[:, 0], -eye[:, 1])) % 360  # azimuth 0 looks from -Y, 90 from +X


def test_procedural_teacher_fixes_or_draws_the_orbit_azimuth():
    fixed = ProceduralTeacher(resolution=8, supersample=1, azimuth_min=0.0, azimuth_max=0.0)
    az = first_view_azimuths(fixed, range(6))
    assert np.allclose(np.minimum(az, 360 - az), 0, atol=1e-3), az
    assert fixed.camera_distribution()["azimuth_start_range"] == [0.0, 0.0]
    drawn = first_view_azimuths(ProceduralTeacher(resolution=8, supersample=1), range(6))
    assert np.ptp(drawn) > 90, drawn  # the default draws the whole circle
    with pytest.raises(ValueError, match="azimuth"):
        ProceduralTeacher(azimuth_min=10.0, azimuth_max=5.0)
