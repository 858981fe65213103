"""Atomic writes: a failure leaves the previous artefact and no temp file; success replaces it whole."""

import json

import pytest

from pipeline.atomic import TMP_PREFIX, atomic_dir, atomic_path, atomic_write_bytes, atomic_write_json


class CrashError(Exception):
    pass


def test_write_bytes_and_json_replace_the_target_and_leave_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"  # the parent is created
    assert atomic_write_json(target, {"b": 1, "a": [2]}) == target
    assert json.loads(target.read_text()) == {"a": [2], "b": 1}
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_a_writer_that_crashes_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "preview.png"
    target.write_bytes(b"old")
    with pytest.raises(CrashError), atomic_path(target) as tmp:
        assert tmp.suffix == ".png" and tmp.name.startswith(TMP_PREFIX)  # writers that pick the format by suffix
        tmp.write_bytes(b"half")
        raise CrashError
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["preview.png"]


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "step-00000010"
    with atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "model.safetensors").write_bytes(b"v1")
    with pytest.raises(CrashError), atomic_dir(target) as tmp:
        (tmp / "config.json").write_text('{"v": 2}')
        raise CrashError
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    assert (target / "config.json").read_text() == "{}"
    with atomic_dir(target) as tmp:
        (tmp / "model.safetensors").write_bytes(b"v2")
    assert [p.name for p in target.iterdir()] == ["model.safetensors"]  # replaced, not merged
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000010"]
