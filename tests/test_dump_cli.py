"""`et3d-dump` as users run it: help, dry run, exit codes, and a driver killed with SIGKILL mid-dump."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pipeline.atomic import TMP_PREFIX
from pipeline.prompts import prompt_id
from pipeline.shard_check import check_shards
from pipeline.shard_reader import read_shard
from pipeline.shards import Manifest, list_shards, sample_key
from teacher_dump.cli import app, parse_teacher_options

PROMPTS = ["a red cube", "a blue sphere", "a small green torus", "a large yellow cone", "a pink pyramid"]
REPO = Path(__file__).resolve().parents[1]


def _corpus(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_help_lists_every_flag_and_examples() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    flags = ["--prompts", "--teacher", "--samples", "--views", "--res", "--out", "--workers", "--shard-size"]
    flags += ["--text-encoder", "--text-encoder-path", "--teacher-opt", "--mvdream", "--overwrite", "--dry-run"]
    for flag in [*flags, "--seed-offset"]:
        assert flag in result.output
    assert "et3d-dump --prompts data/prompts/demo.txt" in result.output
    assert "procedural" in result.output and "fake" not in result.output.lower()  # the tests' stand-in stays unlisted


def test_the_test_teacher_is_built_by_name_but_never_listed() -> None:
    from teacher_dump.teachers.base import available_teachers, build_teacher

    assert available_teachers() == ["mvdream", "procedural"]
    assert build_teacher("fake", num_views=2, resolution=8).name == "fake"


def test_teacher_options_parse_json_values_or_keep_strings() -> None:
    assert parse_teacher_options(["steps=50", "scale=7.5", "path=/m=1", "flag=true"]) == (
        ("steps", 50),
        ("scale", 7.5),
        ("path", "/m=1"),
        ("flag", True),
    )


@pytest.mark.parametrize("pair", ["steps", "=5", " =5"])
def test_a_teacher_option_without_key_or_equals_is_refused_by_name(pair: str) -> None:
    with pytest.raises(typer.BadParameter, match=f"expected key=value, got {pair!r}"):
        parse_teacher_options(["steps=50", pair])


def test_bad_flag_values_exit_2_with_one_line_naming_the_value(tmp_path: Path) -> None:
    out = tmp_path / "o"
    args = ["--prompts", str(_corpus(tmp_path, PROMPTS)), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--teacher", "nope"], terminal_width=200)
    assert result.exit_code == 2
    assert result.output == "error: unknown teacher 'nope'; available: mvdream, procedural\n"
    result = CliRunner().invoke(app, [*args, "--workers", "0"], terminal_width=200)
    assert result.exit_code == 2 and result.output == "error: workers must be >= 1, got 0\n"
    result = CliRunner().invoke(app, [*args, "--teacher-opt", "steps"], terminal_width=200)
    assert result.exit_code == 2 and "Invalid value for --teacher-opt: expected key=value, got 'steps'" in result.output
    assert not out.exists()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "shards"
    args = ["--prompts", str(_corpus(tmp_path, PROMPTS)), "--out", str(out), "--samples", "3", "--shard-size", "4"]
    result = CliRunner().invoke(app, [*args, "--dry-run"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "5 prompt(s) x 3 seed(s) = 15 samples in 4 shard(s)" in result.output
    assert "all prompts accepted" in result.output
    assert not out.exists()


def test_bad_inputs_exit_2_with_the_reason(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(b"a red cube\n\xff oops\n")
    result = CliRunner().invoke(app, ["--prompts", str(corpus), "--out", str(tmp_path / "o")], terminal_width=200)
    assert result.exit_code == 2 and "line 2" in result.output
    unknown = _corpus(tmp_path, ["a red cube", "a red dragon"])
    result = CliRunner().invoke(app, ["--prompts", str(unknown), "--dry-run"], terminal_width=200)
    assert result.exit_code == 2 and "'dragon'" in result.output
    result = CliRunner().invoke(app, ["--prompts", str(unknown), "--mvdream", "/nowhere"], terminal_width=200)
    assert result.exit_code == 2 and "--teacher mvdream" in result.output
    assert not (tmp_path / "o").exists()


def _dump_cmd(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "teacher_dump.cli", "--prompts", str(corpus), "--out", str(out), "--teacher", "fake",
        "--samples", "6", "--views", "2", "--res", "8", "--shard-size", "2", "--workers", "2", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(REPO)
    return env


def test_sigkilled_driver_then_rerun_holds_every_pair_exactly_once(tmp_path: Path) -> None:
    corpus, out = _corpus(tmp_path, PROMPTS), tmp_path / "shards"
    cmd = _dump_cmd(corpus, out, "--teacher-opt", "delay_s=0.15")
    log = open(tmp_path / "first.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "manifest.jsonl").exists() and len(Manifest(out).entries()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the dump finished before it could be killed; make it slower"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    done_before = len(Manifest(out).entries())
    assert 2 <= done_before < 15
    # A shard write cut short by the kill leaves a temp file; the rerun must clear it.
    (out / f"{TMP_PREFIX}shard-000014.tar.abc123").write_bytes(b"half a tar")
    rerun = subprocess.run(_dump_cmd(corpus, out), env=_env(), capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{done_before} already finished" in rerun.stderr.replace("\n", " ")
    assert not [p.name for p in out.iterdir() if p.name.startswith(TMP_PREFIX)]
    keys = [s.key for shard in list_shards(out) for s in read_shard(shard)]
    assert sorted(keys) == sorted(sample_key(prompt_id(p), s) for p in PROMPTS for s in range(6))
    report = check_shards(out, expected_samples_per_prompt=6)
    assert report.ok and not report.warnings, report.summary()


@pytest.mark.slow
def test_a_failed_shard_makes_the_cli_exit_1_and_names_its_prompts(tmp_path: Path) -> None:
    corpus, out = _corpus(tmp_path, PROMPTS), tmp_path / "shards"
    cmd = _dump_cmd(corpus, out, "--teacher-opt", "poison=a red cube", "--max-attempts", "2")
    result = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 1
    assert "FAILED" in result.stderr and "a red cube" in result.stderr
    assert check_shards(out).ok
