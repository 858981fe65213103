"""`et3d-train` end to end on the tiny preset: dry run, errors, a short run that resumes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from student.run_layout import run_checkpoints
from student.train.cli import app
from student.train.stats import read_stats

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # `one_thread` and `shards` are in tests/conftest.py
SHARD_SEEDS = 2


def test_dry_run_prints_the_resolved_plan_and_creates_nothing(shards, tmp_path):
    result = runner.invoke(
        app, ["--data", str(shards), "--preset", "tiny", "--out", str(tmp_path), "--steps", "5", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert f"run dir:      {tmp_path / '00000-tiny'} (new)" in result.output
    assert "resume from:  nothing (fresh start)" in result.output
    assert "text encoder: onehot-test (16-d)" in result.output
    assert '"steps": 5' in result.output
    assert list(tmp_path.iterdir()) == []


def test_unknown_keys_and_missing_data_exit_with_a_message(shards, tmp_path):
    result = runner.invoke(app, ["--data", str(shards), "--preset", "tiny", "--optim.lr_gg=1"])
    assert result.exit_code == 2 and "did you mean --optim.lr_g" in result.output
    result = runner.invoke(app, ["--data", str(tmp_path / "none"), "--preset", "tiny"])
    assert result.exit_code == 2 and "shard directory not found" in result.output
    result = runner.invoke(app, ["--data", str(shards), "--preset", "huge"])
    assert result.exit_code == 2 and "unknown preset 'huge'" in result.output


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "--generator.text_encoder=clip",
            "generator.text_encoder='clip' but the shards were encoded with 'onehot-test'",
        ),
        ("--generator.text_dim=384", "generator.text_dim=384 but the shards were encoded with 16"),
        ("--generator.camera.resolution=32", "generator.camera.resolution=32 but the shards hold 16px views"),
    ],
    ids=["text-encoder", "text-dim", "resolution"],
)
def test_an_override_that_contradicts_the_shards_exits_2_naming_both_values(shards, tmp_path, override, message):
    result = runner.invoke(app, ["--data", str(shards), "--preset", "tiny", "--out", str(tmp_path), override])
    assert result.exit_code == 2
    assert result.output == f"error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_missing_data_flag_or_resume_folder_exits_2(shards, tmp_path):
    result = runner.invoke(app, ["--preset", "tiny", "--out", str(tmp_path)])
    assert result.exit_code == 2 and result.output == "error: --data is required (a shard directory)\n"
    nowhere = tmp_path / "runs" / "00000-tiny" / "checkpoints" / "step-00000009"
    result = runner.invoke(app, ["--data", str(shards), "--preset", "tiny", "--resume-from", str(nowhere)])
    assert result.exit_code == 2
    assert result.output == f"error: {nowhere} is not a training checkpoint directory (no such folder)\n"
    a_file = tmp_path / "model.safetensors"
    a_file.write_bytes(b"")
    result = runner.invoke(app, ["--data", str(shards), "--preset", "tiny", "--resume-from", str(a_file)])
    assert (
        result.exit_code == 2 and result.output == f"error: {a_file} is not a training checkpoint directory (a file)\n"
    )
    assert list(tmp_path.iterdir()) == [a_file]


def test_list_keys_shows_every_override_with_its_value():
    result = runner.invoke(app, ["--preset", "cpu", "--list-keys"])
    assert result.exit_code == 0
    assert "--optim.lr_g=0.0025" in result.output and "--generator.camera.elevation_range=0.0,30.0" in result.output


def test_a_run_resumes_by_default_in_its_own_directory(shards, tmp_path):
    args = ["--data", str(shards), "--preset", "tiny", "--out", str(tmp_path), "--data.num_workers=0"]
    first = runner.invoke(app, [*args, "--steps", "2"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, [*args, "--steps", "3"])
    assert second.exit_code == 0, second.output
    assert "resume from " + str(tmp_path / "00000-tiny" / "checkpoints" / "step-00000002") in second.output
    assert [p.name for p in tmp_path.iterdir()] == ["00000-tiny"]
    assert [s for s, _ in run_checkpoints(tmp_path / "00000-tiny")] == [2, 3]
    steps = [r["step"] for r in read_stats(tmp_path / "00000-tiny" / "stats.jsonl") if r["kind"] == "train"]
    assert steps == [1, 2, 3]
    fresh = runner.invoke(app, [*args, "--steps", "1", "--no-resume"])
    assert fresh.exit_code == 0 and (tmp_path / "00001-tiny").is_dir()
