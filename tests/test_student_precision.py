"""Mixed precision: bf16 tracks fp32 on the tiny preset, fp16's loss scales survive an exact resume."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from support.student_data import tiny_plan

from student.precision import autocast, check_precision
from student.run_layout import TRAIN_META, run_checkpoints
from student.train.plan import TrainPlan
from student.train.state import read_run_config
from student.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # `one_thread` and `shards` are in tests/conftest.py


def with_precision(plan: TrainPlan, precision: str) -> TrainPlan:
    cfg = plan.config
    return dataclasses.replace(
        plan, config=dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, precision=precision))
    )


def run_steps(trainer: Trainer, steps: int) -> list[dict[str, float]]:
    batches = iter(trainer.stream)
    return [trainer.step(next(batches), s) for s in range(steps)]


def test_bf16_training_stays_finite_and_within_tolerance_of_fp32(shards, tmp_path):
    steps = 6  # R1 and the density regulariser are due every 2 steps on `tiny`
    fp32 = Trainer(tiny_plan(shards, tmp_path / "fp32"))
    bf16 = Trainer(with_precision(tiny_plan(shards, tmp_path / "bf16"), "bf16"))
    start = {k: v.clone() for k, v in fp32.G.state_dict().items()}
    a, b = run_steps(fp32, steps), run_steps(bf16, steps)
    assert all(torch.isfinite(torch.tensor(list(v.values()))).all() for v in b), b
    assert {k for v in b for k in v} >= {"loss/r1", "loss/density"}
    # Same data, z and initial weights: bf16 follows the fp32 trajectory, but is not secretly fp32.
    diffs = [abs(x[k] - y[k]) for x, y in zip(a, b, strict=True) for k in ("loss/G", "loss/D")]
    assert max(diffs) < 0.1, diffs  # measured 0.041 over these 6 steps
    assert max(diffs) > 1e-4, "bf16 gave fp32's losses exactly: autocast is not active"
    moved = sum((fp32.G.state_dict()[k] - start[k]).norm() ** 2 for k in start) ** 0.5
    apart = sum((fp32.G.state_dict()[k] - bf16.G.state_dict()[k]).norm() ** 2 for k in start) ** 0.5
    assert apart < 0.5 * moved, (float(apart), float(moved))  # measured 0.39: Adam amplifies tiny gradients
    assert all(p.dtype == torch.float32 for p in bf16.G.parameters()), "master weights stay fp32"


def test_fp16_resumes_exactly_with_its_loss_scales_saved_as_json(shards, tmp_path):
    def plan(run, **kw):
        return with_precision(tiny_plan(shards, tmp_path / run, checkpoint_every=0, preview_every=0, **kw), "fp16")

    straight = Trainer(plan("a", steps=5))
    straight.train()
    first = Trainer(plan("b", steps=3))
    first.train()
    ((_, checkpoint),) = run_checkpoints(tmp_path / "b")
    meta = json.loads((checkpoint / TRAIN_META).read_text())
    assert meta["precision"] == "fp16" and read_run_config(checkpoint)["optim"]["precision"] == "fp16"
    # The first steps overflow at the initial scale 2^16 and back off (G at step 2 on these shards, D at 0):
    # the saved scale is below it.
    assert meta["loss_scaling"]["G"]["scale"] < 65536.0 and meta["loss_scaling"]["D"]["scale"] < 65536.0
    assert meta["loss_scaling"] == first.scaling.state_dict()
    resumed = Trainer(plan("b", resume_from=checkpoint, steps=5))
    assert resumed.scaling.state_dict() == first.scaling.state_dict()
    resumed.train()
    assert resumed.scaling.state_dict() == straight.scaling.state_dict()
    for name in ("G", "D", "G_ema"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resuming"


def test_autocast_lowers_matmuls_only_when_asked_and_bad_names_are_refused():
    x = torch.ones(2, 3)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        with autocast(precision, "cpu"):
            assert (x @ x.T).dtype == dtype
    with pytest.raises(ValueError, match="optim.precision must be one of fp32, bf16, fp16, got 'half'"):
        check_precision("half", "optim.precision")


def test_a_bad_training_precision_is_refused_by_the_plan(shards, tmp_path):
    from student.train.plan import make_plan

    with pytest.raises(ValueError, match="--optim.precision must be one of fp32, bf16, fp16, got 'fp8'"):
        make_plan(data=shards, out=tmp_path, preset="tiny", overrides=["--optim.precision=fp8"])
    plan = make_plan(data=shards, out=tmp_path, preset="tiny", overrides=["--optim.precision=bf16"])
    assert plan.config.optim.precision == "bf16"
