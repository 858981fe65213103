"""What the trainer hands to Ray Train workers: absolute paths, and after a restart the newest checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from support.student_data import make_procedural_shards, tiny_plan

from student.run_layout import MODEL_CONFIG, MODEL_WEIGHTS, RunDir
from student.train.distributed import absolute_plan, restart_plan


def test_every_path_of_the_plan_becomes_absolute_against_the_drivers_directory(tmp_path, monkeypatch):
    shards = make_procedural_shards(tmp_path / "shards", seeds=1, per_shard=2)
    monkeypatch.chdir(tmp_path)
    plan = tiny_plan(Path("shards"), Path("runs/00000-tiny"), resume_from=Path("runs/00000-tiny/checkpoints/x"))
    plan = dataclasses.replace(
        plan,
        shards=[Path("shards") / p.name for p in sorted(shards.glob("*.tar"))],
        config=dataclasses.replace(plan.config, eval=dataclasses.replace(plan.config.eval, heldout_file="h.txt")),
    )
    absolute = absolute_plan(plan)
    assert absolute.shards == sorted(shards.glob("*.tar")) and all(p.is_absolute() for p in absolute.shards)
    assert absolute.run_dir == tmp_path / "runs" / "00000-tiny"
    assert absolute.resume_from == tmp_path / "runs" / "00000-tiny" / "checkpoints" / "x"
    assert absolute.config.eval.heldout_file == str(tmp_path / "h.txt")
    none = dataclasses.replace(
        plan, config=dataclasses.replace(plan.config, eval=dataclasses.replace(plan.config.eval, heldout_file=""))
    )
    assert absolute_plan(none).config.eval.heldout_file == ""  # "" means no held-out set, not the cwd


def test_a_restarted_worker_group_resumes_from_the_newest_complete_checkpoint(tmp_path):
    shards = make_procedural_shards(tmp_path / "shards", seeds=1, per_shard=2)
    run = tmp_path / "runs" / "00000-tiny"
    plan = tiny_plan(shards, run)
    assert restart_plan(plan) == plan  # nothing written yet: start as planned
    layout = RunDir(run)
    for step in (4, 8):
        folder = layout.checkpoint(step)
        folder.mkdir(parents=True)
        (folder / MODEL_CONFIG).write_text("{}")
        (folder / MODEL_WEIGHTS).write_bytes(b"")
    layout.checkpoint(12).mkdir()  # an incomplete one (no weights) does not count
    assert restart_plan(plan).resume_from == layout.checkpoint(8)
    resumed = dataclasses.replace(plan, resume_from=layout.checkpoint(8))
    assert restart_plan(resumed) == resumed
