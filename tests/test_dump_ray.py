"""The Ray dump end to end, in one shared Ray session: shards, resume, failures, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.prompts import CorpusError
from pipeline.shard_check import check_shards
from pipeline.shard_reader import read_shard
from pipeline.shards import Manifest, list_shards
from teacher_dump.dump import DumpConfig, DumpError, run_dump
from teacher_dump.plan import plan_shards
from teacher_dump.teachers.base import build_teacher

PROMPTS = ["a red cube", "a blue sphere", "a small green torus", "a large yellow cone", "a pink pyramid"]


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    import ray  # a required dependency: a broken install fails here, loudly

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _corpus(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _quiet() -> Console:
    return Console(file=open("/dev/null", "w"), width=200)  # noqa: SIM115 - closed with the process


def test_two_worker_dump_passes_check_and_a_rerun_skips_it(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "shards"
    config = DumpConfig(
        prompts=_corpus(tmp_path, PROMPTS), out=out, teacher="procedural", samples=3, views=2, resolution=16,
        workers=2, shard_size=4, batch_size=3,
    )  # fmt: skip
    report = run_dump(config, _quiet(), show_progress=False)
    assert report.ok and report.written_shards == 4 and report.samples_written == 15
    assert len(report.workers) == 2  # both actors took shards
    check = check_shards(out, expected_samples_per_prompt=3)
    assert check.ok, check.summary()
    assert check.num_samples == 15 and not check.warnings
    sample = next(read_shard(list_shards(out)[0]))
    assert sample.views.shape == (2, 16, 16, 3) and sample.emb.shape == (384,)
    assert sample.meta["teacher"] == "procedural" and sample.meta["text_encoder"] == "minilm"
    before = {p.name: p.read_bytes() for p in list_shards(out)}
    with monkeypatch.context() as m:  # a finished dump of a CPU teacher is checked without Ray or actors
        m.setattr("teacher_dump.dump._start_ray", lambda *a: pytest.fail("a finished dump started Ray"))
        again = run_dump(config, _quiet(), show_progress=False)
    assert again.ok and (again.written_shards, again.skipped_shards) == (0, 4)
    assert {p.name: p.read_bytes() for p in list_shards(out)} == before
    redo = run_dump(DumpConfig(**{**config.__dict__, "overwrite": True}), _quiet(), show_progress=False)
    assert redo.written_shards == 4
    assert {p.name: p.read_bytes() for p in list_shards(out)} == before  # deterministic bytes


def test_a_poisoned_prompt_is_retried_reported_and_the_rest_written(tmp_path: Path) -> None:
    out = tmp_path / "shards"
    config = DumpConfig(
        prompts=_corpus(tmp_path, PROMPTS), out=out, teacher="fake", samples=2, views=2, resolution=8,
        workers=2, shard_size=2, teacher_options=(("poison", "a blue sphere"),), max_attempts=2,
    )  # fmt: skip
    plans = plan_shards(PROMPTS, 2, 2)
    poisoned = {p.name for p in plans if "a blue sphere" in p.prompts}
    report = run_dump(config, _quiet(), show_progress=False)
    assert not report.ok
    failed = {f.name: f for f in report.failed}
    assert set(failed) == poisoned
    for f in failed.values():
        assert "a blue sphere" in f.prompts and f.attempts == 2 and "poisoned" in f.error
    written = Manifest(out).finished()
    assert set(written) == {p.name for p in plans} - poisoned
    assert report.written_shards == len(written)
    keys = [k for ks in written.values() for k in ks]
    assert len(keys) == len(set(keys)) == sum(len(p) for p in plans if p.name not in poisoned)
    assert check_shards(out).ok


def test_a_dead_actor_is_replaced_and_its_shard_retried(tmp_path: Path) -> None:
    out = tmp_path / "shards"
    marker = tmp_path / "crashed-once"
    options = (("poison", "a pink pyramid"), ("crash", "exit"), ("poison_marker", str(marker)))
    config = DumpConfig(
        prompts=_corpus(tmp_path, PROMPTS), out=out, teacher="fake", samples=2, views=2, resolution=8,
        workers=2, shard_size=3, teacher_options=options,
    )  # fmt: skip
    report = run_dump(config, _quiet(), show_progress=False)
    assert marker.exists()  # the worker process did die once
    assert report.ok and report.samples_written == 10
    assert check_shards(out, expected_samples_per_prompt=2).ok


def test_a_corpus_with_bad_lines_is_rejected_before_anything_is_written(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(b"a red cube\n\xff\xfe broken\na blue\x07 cone\n# fine comment\n")
    out = tmp_path / "shards"
    with pytest.raises(CorpusError) as info:
        run_dump(DumpConfig(prompts=corpus, out=out, teacher="fake"), _quiet(), show_progress=False)
    assert [b.line for b in info.value.bad_lines] == [2, 3]
    assert "line 2" in str(info.value) and "line 3" in str(info.value)
    assert not out.exists()


def test_out_of_vocabulary_prompts_are_named_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "shards"
    corpus = _corpus(tmp_path, ["a red cube", "a purple elephant", "a tiny blue cone"])
    with pytest.raises(DumpError) as info:
        run_dump(DumpConfig(prompts=corpus, out=out, teacher="procedural"), _quiet(), show_progress=False)
    assert "'elephant'" in str(info.value) and "'tiny'" in str(info.value)
    assert not out.exists()


def test_a_rerun_with_other_options_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "shards"
    corpus = _corpus(tmp_path, PROMPTS[:2])
    base = {"prompts": corpus, "out": out, "teacher": "fake", "views": 2, "resolution": 8, "workers": 1}
    assert run_dump(DumpConfig(**base, samples=1), _quiet(), show_progress=False).ok
    with pytest.raises(DumpError, match="plan_digest"):
        run_dump(DumpConfig(**base, samples=2), _quiet(), show_progress=False)
    with pytest.raises(DumpError, match="rejected its options"):
        run_dump(DumpConfig(**base, teacher_options=(("colour", 3),)), _quiet(), show_progress=False)


def test_a_rerun_with_another_teacher_config_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "shards"
    base = {"prompts": _corpus(tmp_path, PROMPTS[:2]), "out": out, "teacher": "fake", "views": 2, "workers": 1}
    assert run_dump(DumpConfig(**base, resolution=8), _quiet(), show_progress=False).ok
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"dataset.json", "manifest.jsonl", "shard-000000.tar"} <= set(before)
    old_hash = json.loads(before["dataset.json"])["teacher_config_hash"]
    new_hash = build_teacher("fake", num_views=2, resolution=16).config_hash()
    assert old_hash == build_teacher("fake", num_views=2, resolution=8).config_hash() != new_hash
    # Same prompts and samples, so the same plan: only the teacher's config (and its hash) differs.
    with pytest.raises(DumpError) as info:
        run_dump(DumpConfig(**base, resolution=16), _quiet(), show_progress=False)
    message = str(info.value)
    assert f"teacher_config_hash: {old_hash!r} -> {new_hash!r}" in message and "plan_digest" not in message
    assert str(out) in message and "--overwrite" in message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_the_mvdream_teacher_dumps_the_same_schema_on_a_cpu_cluster(tmp_path: Path) -> None:
    from teacher_dump.mvdream.parity import assemble_tiny_folder

    golden = Path(__file__).resolve().parent / "golden"
    folder = assemble_tiny_folder(golden, tmp_path / "tiny")
    out = tmp_path / "shards"
    options = (("path", str(folder)), ("num_inference_steps", 2), ("device", "cpu"))
    config = DumpConfig(
        prompts=_corpus(tmp_path, ["a cute owl", "a red car"]), out=out, teacher="mvdream",
        teacher_options=options, samples=2, views=4, resolution=64, workers=1, shard_size=2, batch_size=2,
    )  # fmt: skip
    report = run_dump(config, _quiet(), show_progress=False)
    assert report.ok and report.samples_written == 4 and report.written_shards == 2
    check = check_shards(out, expected_samples_per_prompt=2)
    assert check.ok, check.summary()
    samples = [s for shard in list_shards(out) for s in read_shard(shard)]
    assert {s.meta["teacher"] for s in samples} == {"mvdream"}
    assert samples[0].views.shape == (4, 64, 64, 3) and samples[0].cameras.shape == (4, 4, 4)
    assert samples[0].views.astype(float).std() > 1.0  # a decoded image, not a constant
