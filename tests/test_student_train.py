"""The trainer on the tiny preset: finite steps, NaN detection, exact resume, the run directory."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
import torch
from support.student_data import (
    ONEHOT_DIM,
    PROMPTS,
    make_procedural_shards,
    onehot_embedding,
    tiny_plan,
)

from pipeline.dataset import describe_dataset
from student.model.generator import TriplaneGenerator
from student.presets import tiny
from student.run_layout import TRAIN_META, find_latest_checkpoint, load_training_prompts, run_checkpoints
from student.train.batch_stream import BatchStream, rank_shards
from student.train.interrupt import GracefulStop
from student.train.plan import make_plan
from student.train.state import Progress, save_checkpoint
from student.train.stats import read_stats
from student.train.trainer import NonFiniteLossError, Trainer, select_views

pytestmark = pytest.mark.usefixtures("one_thread")  # `one_thread` and `shards` are in tests/conftest.py


def first_batch(trainer: Trainer):
    return next(iter(trainer.stream))


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_one_step_runs_a_finite_g_d_r1_and_density_step_and_moves_every_network(shards, tmp_path):
    trainer = Trainer(tiny_plan(shards, tmp_path / "run"))
    before_g, before_d, before_ema = params(trainer.G), params(trainer.D), params(trainer.G_ema)
    values = trainer.step(first_batch(trainer), step=0)  # step 0: R1 and density regularisation are due
    assert set(values) >= {"loss/G", "loss/D", "loss/r1", "loss/density", "loss/mismatch", "D/real", "D/fake"}
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values()), values
    assert values["loss/r1"] > 0 and values["loss/density"] > 0
    for before, module in ((before_g, trainer.G), (before_d, trainer.D), (before_ema, trainer.G_ema)):
        after = module.state_dict()
        moved = sum(not torch.equal(before[k], after[k]) for k in before)
        assert moved > 0.9 * len(before), f"{type(module).__name__}: only {moved} of {len(before)} tensors changed"


def test_select_views_picks_distinct_views_with_their_cameras(shards, tmp_path):
    batch = next(iter(BatchStream(sorted(shards.glob("*.tar")), 4, seed=0, num_workers=0)))  # every view decoded
    images, c2w, fovy, background = select_views(batch, 3, torch.Generator().manual_seed(0))
    assert background.shape == (4, 3, 3)
    assert images.shape == (4, 3, 3, 16, 16) and c2w.shape == (4, 3, 4, 4) and fovy.shape == (4, 3)
    for b in range(4):
        index = [int((batch.cameras[b] - c2w[b, k]).abs().sum(dim=(1, 2)).argmin()) for k in range(3)]
        assert len(set(index)) == 3
        for k, i in enumerate(index):
            torch.testing.assert_close(images[b, k], batch.images()[b, i])


def test_a_nan_stops_training_naming_the_step_and_the_last_good_checkpoint(shards, tmp_path):
    plan = tiny_plan(shards, tmp_path / "run", steps=2, checkpoint_every=2, preview_every=0)
    Trainer(plan).train()
    last = run_checkpoints(tmp_path / "run")[-1][1]
    trainer = Trainer(tiny_plan(shards, tmp_path / "run", resume_from=last, steps=4, preview_every=0))
    with torch.no_grad():
        trainer.G.decoder.out.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=rf"loss/G = nan at step 2; last good checkpoint: {last}"):
        trainer.train()
    assert [s for s, _ in run_checkpoints(tmp_path / "run")] == [2], "no checkpoint of the broken state"


def test_interrupted_then_resumed_training_matches_uninterrupted_training(shards, tmp_path):
    # 16 samples / batch 4 = 4 batches per epoch: 6 steps cross an epoch boundary; R1 and density reg every 2.
    straight = Trainer(tiny_plan(shards, tmp_path / "a", steps=6, checkpoint_every=0, preview_every=0))
    straight.train()
    first = Trainer(tiny_plan(shards, tmp_path / "b", steps=3, checkpoint_every=0, preview_every=0))
    first.train()
    ((_, checkpoint),) = run_checkpoints(tmp_path / "b")
    resumed = Trainer(
        tiny_plan(shards, tmp_path / "b", resume_from=checkpoint, steps=6, checkpoint_every=0, preview_every=0)
    )
    assert resumed.progress.step == 3 and resumed.progress.data.batch == 3
    resumed.train()
    assert resumed.progress.step == 6 and resumed.progress.nimg == straight.progress.nimg
    for name in ("G", "D", "G_ema"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resuming"
    for opt in ("opt_g", "opt_d"):
        a, b = getattr(straight, opt).state_dict()["state"], getattr(resumed, opt).state_dict()["state"]
        assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)


def test_optimiser_overrides_given_on_resume_are_used_not_overwritten_by_the_checkpoint(shards, tmp_path):
    Trainer(tiny_plan(shards, tmp_path / "00000-tiny", steps=2, checkpoint_every=0, preview_every=0)).train()
    ((_, checkpoint),) = run_checkpoints(tmp_path / "00000-tiny")
    base = tiny().optim
    same = Trainer(tiny_plan(shards, tmp_path / "00000-tiny", resume_from=checkpoint))
    args = {"data": shards, "out": tmp_path, "preset": "tiny", "resume": checkpoint}
    lower = [f"--optim.lr_g={base.lr_g / 10}", f"--optim.lr_d={base.lr_d / 4}", "--data.num_workers=0"]
    plan = make_plan(**args, overrides=lower)
    assert plan.config.optim.lr_g == base.lr_g / 10 and plan.resume_from == checkpoint
    changed = Trainer(plan)
    for opt, lr in ((changed.opt_g, base.lr_g / 10), (changed.opt_d, base.lr_d / 4)):
        assert [g["lr"] for g in opt.param_groups] == [lr]
    for name in ("opt_g", "opt_d"):  # the moments and step counts still come from the checkpoint
        a, b = getattr(same, name).state_dict()["state"], getattr(changed, name).state_dict()["state"]
        assert all(float(b[i]["step"]) == 2 and torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)
    # Same weights, moments, batch and random draws: one step moves G by exactly a tenth, D by a quarter.
    batch = first_batch(same)
    before_g, before_d = params(same.G), params(same.D)
    same.step(batch, 2)
    changed.step(batch, 2)
    for module, before, scale in (("G", before_g, 0.1), ("D", before_d, 0.25)):
        for k, v in before.items():
            if v.is_floating_point():
                full = getattr(same, module).state_dict()[k] - v
                # float32 rounding of the new weights: at most about an ulp of the weight's magnitude
                roundoff = 2.5e-7 * float(v.abs().max())
                torch.testing.assert_close(
                    getattr(changed, module).state_dict()[k] - v, full * scale, rtol=1e-3, atol=roundoff,
                    msg=lambda m, name=f"{module}.{k}": f"{name}: {m}",
                )  # fmt: skip
    betas = make_plan(**args, overrides=["--optim.betas=0.5,0.9", "--data.num_workers=0"])
    assert [g["betas"] for g in Trainer(betas).opt_g.param_groups] == [(0.5, 0.9)]


def test_training_writes_stats_previews_and_a_loadable_checkpoint_and_the_loss_moves(shards, tmp_path):
    run = tmp_path / "00000-tiny"
    trainer = Trainer(tiny_plan(shards, run, steps=12, checkpoint_every=8, preview_every=6))
    trainer.train()
    assert (run / "config.json").is_file()
    assert sorted(p.name for p in (run / "previews").glob("*.png")) == [
        "step-00000006.png", "step-00000012.png",
    ]  # fmt: skip
    assert [s for s, _ in run_checkpoints(run)] == [8, 12]
    latest = find_latest_checkpoint(tmp_path)
    assert latest == run / "checkpoints" / "step-00000012"
    G = TriplaneGenerator.from_pretrained(latest)
    assert all(torch.equal(v, trainer.G_ema.state_dict()[k]) for k, v in G.state_dict().items())
    # The checkpoint records what it was trained on, for generation's out-of-reach warning.
    recorded = load_training_prompts(latest)
    assert recorded.prompts == trainer.plan.dataset.prompts
    assert torch.allclose(recorded.embeddings, trainer.plan.dataset.embeddings.float(), atol=1e-3)
    records = [r for r in read_stats(run / "stats.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in records] == list(range(1, 13))
    # D separates real from fake within a few steps: the losses move away from their starting point.
    gap = [r["D/real"] - r["D/fake"] for r in records]
    assert sum(gap[-4:]) / 4 > 0.05 + sum(gap[:2]) / 2, gap
    assert read_stats(run / "stats.jsonl")[-1]["kind"] == "end"


def test_a_checkpoint_of_another_schema_version_is_refused_by_name(shards, tmp_path):
    trainer = Trainer(tiny_plan(shards, tmp_path / "run"))
    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000003"
    modules = {name: getattr(trainer, name) for name in ("G", "G_ema", "D", "opt_g", "opt_d")}
    save_checkpoint(checkpoint, **modules, progress=Progress(step=3, nimg=12), run_config=trainer.cfg)
    resumed = Trainer(tiny_plan(shards, tmp_path / "run", resume_from=checkpoint))
    assert (resumed.progress.step, resumed.progress.nimg) == (3, 12)  # the untouched checkpoint loads
    meta = json.loads((checkpoint / TRAIN_META).read_text())
    (checkpoint / TRAIN_META).write_text(json.dumps({**meta, "schema_version": 2}))
    with pytest.raises(
        ValueError, match=rf"^{re.escape(str(checkpoint))}: training state schema 2, this code reads 1$"
    ):
        Trainer(tiny_plan(shards, tmp_path / "run", resume_from=checkpoint))


def test_ranks_read_disjoint_shards_and_too_few_shards_are_refused(shards, tmp_path):
    paths = sorted(shards.glob("*.tar"))
    assert len(paths) == 4
    assert [rank_shards(paths, r, 3) for r in range(3)] == [[paths[0], paths[3]], [paths[1]], [paths[2]]]
    with pytest.raises(ValueError, match="^4 shard\\(s\\) cannot feed 5 data-parallel workers; dump at least 5$"):
        Trainer(tiny_plan(shards, tmp_path / "run"), rank=0, world=5)


def test_shards_smaller_than_one_batch_raise_instead_of_looping(shards):
    paths = sorted(shards.glob("*.tar"))  # 16 samples
    stream = iter(BatchStream(paths, 16, seed=0, num_workers=0))
    assert [len(next(stream).keys) for _ in range(2)] == [16, 16]  # one full batch per epoch is enough
    with pytest.raises(ValueError, match="^4 shard\\(s\\) hold fewer than one batch of 17 samples$"):
        next(iter(BatchStream(paths, 17, seed=0, num_workers=0)))


def test_sigterm_becomes_a_stop_request_and_handlers_are_restored():
    previous = signal.getsignal(signal.SIGTERM)
    with GracefulStop() as stop:
        assert stop.requested is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is previous


def test_support_shards_are_what_the_trainer_reads(tmp_path):
    directory = make_procedural_shards(tmp_path / "shards", seeds=1, per_shard=2)
    info = describe_dataset(directory)
    assert info.num_samples == len(PROMPTS)
    assert info.prompts == sorted(PROMPTS)
    assert (info.text_encoder, info.text_dim, info.num_views, info.resolution) == ("onehot-test", ONEHOT_DIM, 4, 16)
    assert abs(info.radius - 2.7) < 1e-4
    torch.testing.assert_close(info.embeddings[0], torch.from_numpy(onehot_embedding(info.prompts[0])))


ALLOCATION_FAULTS = """
import resource, torch
from student.train.allocator import keep_freed_memory

def faults_in_late_steps():  # fresh pages touched by steps 5-8 of allocating 88 MiB of 'activations' and freeing them
    counts = []
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a, b = torch.empty(12 * 2**20).fill_(1.0), torch.empty(8 * 2**20).fill_(1.0)  # 48 MiB, 32 MiB
        c = a[: 2 * 2**20] + b[: 2 * 2**20]  # 8 MiB
        del a, b, c
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return sum(counts[4:])

default = faults_in_late_steps()
applied = keep_freed_memory()
print(default, applied, faults_in_late_steps())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_trainer_keeps_freed_memory_so_repeated_steps_fault_in_no_fresh_pages():
    out = subprocess.run(
        [sys.executable, "-c", ALLOCATION_FAULTS], capture_output=True, text=True, check=True, env=os.environ
    ).stdout.split()
    default, applied, kept = int(out[0]), out[1] == "True", int(out[2])
    assert applied
    assert default > 4 * 16_000, default  # glibc unmapped the blocks on free and zeroed fresh pages every step
    assert kept < 100, kept  # the freed blocks are reused: no fresh pages once the heap has grown
