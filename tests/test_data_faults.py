"""Training on data that goes wrong: a flipped byte stops with one line naming the shard and sample (or is
skipped and counted with --skip-corrupt); held-out monitoring follows the shards' teacher and encoder."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile

import pytest
from support.student_data import make_procedural_shards, one_torch_thread, tiny_plan

from pipeline.dataset import describe_dataset
from pipeline.shards import write_dataset_info
from student.run_layout import run_checkpoints
from student.train.trainer import CorruptDataError, Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def flip_one_byte(shard, member_suffix: str = ".3.png") -> str:
    """Flip a byte in the middle of the first sample's member ending in `member_suffix`; returns the key."""
    data = bytearray(shard.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        member = next(m for m in tar if m.name.endswith(member_suffix))
    data[member.offset_data + member.size // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    return member.name.split(".")[0]


def with_data(plan, **data):
    return dataclasses.replace(
        plan, config=dataclasses.replace(plan.config, data=dataclasses.replace(plan.config.data, **data))
    )


def test_a_flipped_byte_passes_start_up_then_stops_training_with_one_line_keeping_the_checkpoint(tmp_path):
    shards = make_procedural_shards(tmp_path / "shards")  # 16 samples, 4 per shard
    Trainer(tiny_plan(shards, tmp_path / "run", steps=1, checkpoint_every=1, preview_every=0)).train()
    ((_, checkpoint),) = run_checkpoints(tmp_path / "run")
    # A byte of a view the step may never decode: only the index's CRC can tell.
    key = flip_one_byte(shards / "shard-000002.tar")
    assert describe_dataset(shards).num_samples == 16  # start-up reads the indexes: same size, still current
    plan = tiny_plan(shards, tmp_path / "run", resume_from=checkpoint, steps=40, checkpoint_every=0, preview_every=0)
    trainer = Trainer(plan, progress_bar=False)
    with pytest.raises(CorruptDataError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"shard-000002.tar: sample {key}: its bytes differ from the CRC-32 in the shard's index")
    assert f"last checkpoint: {checkpoint} (--skip-corrupt skips such samples)" in message
    assert run_checkpoints(tmp_path / "run") == [(1, checkpoint)] and (checkpoint / "config.json").is_file()


def test_skip_corrupt_skips_counts_and_reports(tmp_path):
    shards = make_procedural_shards(tmp_path / "shards")
    key = flip_one_byte(shards / "shard-000001.tar", ".json")  # a member that fails to decode, not only the CRC
    plan = with_data(
        tiny_plan(shards, tmp_path / "run", steps=12, checkpoint_every=0, preview_every=0), skip_corrupt=True
    )
    trainer = Trainer(plan, progress_bar=False)
    progress = trainer.train()
    assert progress.step == 12
    records = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    skipped = [r for r in records if r["kind"] == "skipped"]
    epochs = progress.data.epoch + (progress.data.batch > 0)  # epochs read, in whole or in part
    assert len(skipped) >= 1 and all(
        r["samples"] == [f"shard-000001.tar: sample {key}: its bytes differ from the CRC-32 in the shard's index"]
        for r in skipped
    )
    assert records[-1]["kind"] == "end" and records[-1]["skipped_corrupt"] == len(skipped) == trainer.skipped_corrupt
    assert len(skipped) <= epochs


def test_heldout_monitoring_is_skipped_with_a_reason_for_another_teachers_clip_shards(tmp_path):
    shards = make_procedural_shards(tmp_path / "shards", teacher_name="mvdream", text_encoder="clip")
    plan = tiny_plan(shards, tmp_path / "run", steps=1, checkpoint_every=0, preview_every=0)
    cfg = plan.config
    plan = dataclasses.replace(
        plan,
        config=dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, heldout_file="data/prompts/heldout.txt")),
    )
    Trainer(plan, progress_bar=False).train()  # before: loading CLIP without a path raised here
    end = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert end["heldout"] == (
        "held-out monitoring skipped: data/prompts/heldout.txt holds procedural prompts for the procedural oracle, "
        "these shards come from teacher 'mvdream'"
    )


def test_heldout_prompts_are_embedded_by_the_encoder_the_dump_recorded(tmp_path, monkeypatch):
    import torch

    import pipeline.text as text

    shards = make_procedural_shards(tmp_path / "shards", text_encoder="clip")
    write_dataset_info(shards, {"text_encoder": "clip", "text_encoder_path": "/models/clip-vit"})
    asked = []

    class Stub:
        def encode(self, prompts):
            return type("Out", (), {"pooled": torch.ones(len(prompts), 16)})()

    monkeypatch.setattr(text, "load_text_encoder", lambda name, path=None: asked.append((name, path)) or Stub())
    plan = tiny_plan(shards, tmp_path / "run", steps=0)
    cfg = plan.config
    plan = dataclasses.replace(
        plan,
        config=dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, heldout_file="data/prompts/heldout.txt")),
    )
    from student.train.monitor import Monitor

    monitor = Monitor(plan, Trainer(plan, progress_bar=False).G_ema)
    assert asked == [("clip", "/models/clip-vit")]
    assert monitor.heldout_note == ""
