"""MVDream's views as they are, end to end: a tiny random-weight MVDream dump (the real teacher path: Ray
driver, worker, shards, indexes, dataset.json) trains the `tiny` student for a few steps on the background
and camera distribution the dump recorded."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from rich.console import Console

from pipeline.dataset import describe_dataset
from student.run_layout import run_checkpoints
from student.train.plan import make_plan
from student.train.trainer import Trainer
from teacher_dump.dump import DumpConfig, run_dump
from teacher_dump.mvdream.parity import assemble_tiny_folder


def test_a_tiny_mvdream_dump_trains_the_tiny_student(tmp_path: Path, golden_dir: Path) -> None:
    folder = assemble_tiny_folder(golden_dir, tmp_path / "tiny")
    corpus = tmp_path / "prompts.txt"
    corpus.write_text("a cute owl\na red car\n")
    options = (("path", str(folder)), ("num_inference_steps", 2), ("device", "cpu"), ("elevation", (5.0, 25.0)))
    config = DumpConfig(
        prompts=corpus, out=tmp_path / "shards", teacher="mvdream", teacher_options=options, samples=2, views=4,
        resolution=64, workers=1, shard_size=2, batch_size=2,
    )  # fmt: skip
    assert run_dump(config, Console(file=open("/dev/null", "w")), show_progress=False).ok  # noqa: SIM115
    dataset = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert dataset["cameras"] == {"elevation_range": [5.0, 25.0], "radius": 2.7, "fovy_deg": 40.0}
    info = describe_dataset(tmp_path / "shards")
    assert info.teacher == "mvdream" and info.num_samples == 4 and info.shard_samples == (2, 2)
    assert all(0.0 <= c <= 1.0 for c in info.background)

    overrides = [
        "--generator.render.background=shards", "--optim.batch_size=2", "--data.num_workers=0",
        "--schedule.steps=2", "--schedule.checkpoint_every=2", "--schedule.preview_every=0",
        "--schedule.eval_every=0", "--eval.heldout_file=data/prompts/heldout.txt",
    ]  # fmt: skip
    plan = make_plan(data=tmp_path / "shards", out=tmp_path / "runs", preset="tiny", overrides=overrides, resume=False)
    camera, render = plan.config.generator.camera, plan.config.generator.render
    assert (camera.elevation_range, camera.radius, camera.fovy_deg) == ((5.0, 25.0), 2.7, 40.0)
    assert render.background_rgb == info.background
    trainer = Trainer(plan, progress_bar=False)
    assert trainer.train().step == 2
    records = [json.loads(line) for line in (plan.run_dir / "stats.jsonl").read_text().splitlines()]
    losses = [v for r in records if r["kind"] == "train" for k, v in r.items() if k.startswith("loss/")]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert records[-1]["heldout"].endswith("these shards come from teacher 'mvdream'")
    ((step, checkpoint),) = run_checkpoints(plan.run_dir)
    saved = json.loads((checkpoint / "config.json").read_text())
    assert step == 2 and saved["generator"]["render"]["background_rgb"] == list(info.background)
