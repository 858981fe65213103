"""Shard schema v1: bit-exact round trip, loader with 0 and 2 workers, validator names every fault."""

import dataclasses
import io
import tarfile

import numpy as np
import pytest
import torch
from support.shard_data import PROMPTS, make_sample, write_dataset

from pipeline.prompts import prompt_id
from pipeline.shard_check import check_shards
from pipeline.shard_reader import ShardFormatError, make_loader, read_shard
from pipeline.shards import (
    Manifest,
    ShardSample,
    encode_shard,
    list_shards,
    sample_key,
    write_shard,
)


def test_round_trip_is_bit_exact_and_deterministic(tmp_path):
    samples = [make_sample(p, s) for p in PROMPTS for s in range(2)]
    path = write_shard(tmp_path / "shard-000000.tar", samples)
    back = list(read_shard(path))
    assert [b.key for b in back] == [s.key for s in samples]
    for a, b in zip(samples, back, strict=True):
        assert a.prompt == b.prompt and a.seed == b.seed and a.meta == b.meta
        for name in ("views", "cameras", "fovy", "emb"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert encode_shard(samples) == path.read_bytes()  # same samples, same bytes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_webdataset_reads_our_shards(tmp_path):
    import webdataset as wds

    write_dataset(tmp_path / "s", shards=1, per_shard=3)
    ds = wds.WebDataset(str(tmp_path / "s" / "shard-000000.tar"), shardshuffle=False)
    first = next(iter(ds))
    assert {"txt", "json", "0.png", "1.png", "cameras.npy", "fovy.npy", "emb.npy"} <= set(first)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("shards", [1, 3])
def test_loader_yields_every_sample_once(tmp_path, workers, shards):
    samples = write_dataset(tmp_path / "s", shards=shards, per_shard=12 // shards)
    loader = make_loader(list_shards(tmp_path / "s"), batch_size=3, num_workers=workers, seed=1, drop_last=False)
    keys = []
    for batch in loader:
        assert batch.views.shape[1:] == (2, 8, 8, 3) and batch.views.dtype == torch.uint8
        assert batch.images().shape[2] == 3 and float(batch.images().max()) <= 1.0
        assert batch.emb.shape[1] == 6 and batch.cameras.shape[2:] == (4, 4)
        keys += batch.keys
    assert sorted(keys) == sorted(s.key for s in samples)


def test_loader_order_depends_on_seed_and_epoch_only(tmp_path):
    write_dataset(tmp_path / "s", shards=3, per_shard=8)
    shards = list_shards(tmp_path / "s")
    order = lambda **kw: [k for b in make_loader(shards, 4, buffer=8, **kw) for k in b.keys]  # noqa: E731
    assert order(seed=5, epoch=0, num_workers=2) == order(seed=5, epoch=0, num_workers=2)
    assert order(seed=5, epoch=0) != order(seed=5, epoch=1)
    assert order(seed=5, epoch=0) != order(seed=6, epoch=0)


def test_check_passes_on_a_good_dump(tmp_path):
    write_dataset(tmp_path / "s")
    report = check_shards(tmp_path / "s", expected_samples_per_prompt=4)
    assert report.ok, report.summary()
    assert report.num_samples == 12 and report.num_shards == 3


def test_truncated_tar_is_named(tmp_path):
    write_dataset(tmp_path / "s")
    path = tmp_path / "s" / "shard-000001.tar"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    report = check_shards(tmp_path / "s")
    assert not report.ok
    assert report.bad_shards == ["shard-000001.tar"]
    assert any("shard-000001.tar" in e and "truncated" in e for e in report.errors), report.errors
    with pytest.raises(ShardFormatError, match="shard-000001.tar"):
        list(read_shard(path))


def _rewrite_member(path, name, data):
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]
    with tarfile.open(path, "w") as tar:
        for m, payload in members:
            if m.name == name:
                payload = data
                m.size = len(data)
            tar.addfile(m, io.BytesIO(payload))


def test_wrong_field_is_named(tmp_path):
    samples = write_dataset(tmp_path / "s")
    key = samples[5].key  # in shard 1
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 3), np.float32))  # cameras must be (V, 4, 4)
    _rewrite_member(tmp_path / "s" / "shard-000001.tar", f"{key}.cameras.npy", buf.getvalue())
    report = check_shards(tmp_path / "s")
    assert report.bad_shards == ["shard-000001.tar"]
    assert any(key in e and "cameras" in e for e in report.errors), report.errors


def test_emb_dim_mismatch_is_named(tmp_path):
    samples = write_dataset(tmp_path / "s")
    key = samples[0].key
    buf = io.BytesIO()
    np.save(buf, np.zeros(7, np.float32))
    _rewrite_member(tmp_path / "s" / "shard-000000.tar", f"{key}.emb.npy", buf.getvalue())
    report = check_shards(tmp_path / "s")
    assert any(key in e and "emb has 7 dims" in e for e in report.errors), report.errors


def test_duplicates_across_shards_found(tmp_path):
    samples = write_dataset(tmp_path / "s")
    write_shard(tmp_path / "s" / "shard-000009.tar", [samples[0]])
    report = check_shards(tmp_path / "s")
    assert any(f"duplicate key {samples[0].key}" in e and "shard-000009.tar" in e for e in report.errors)
    assert report.warnings == ["uneven samples per prompt: [4, 5]", "shards not in the manifest: shard-000009.tar"]


def _nan_emb(s):
    emb = s.emb.copy()
    emb[2] = np.nan
    return dataclasses.replace(s, emb=emb)


def _scaled_cameras(s):
    cams = s.cameras.copy()
    cams[:, :3, :3] *= 1.1  # |R R^T - I| = 1.21 - 1
    return dataclasses.replace(s, cameras=cams)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_scaled_cameras, "cameras are not rigid cam-to-world matrices (|R R^T - I| = 2.10e-01)"),
        (_nan_emb, "emb holds NaN or inf"),
        (
            lambda s: dataclasses.replace(s, meta={**s.meta, "prompt_id": prompt_id("a blue sphere")}),
            f"prompt_id {prompt_id('a blue sphere')} does not match its prompt 'a green torus'",
        ),
        (lambda s: dataclasses.replace(s, meta={**s.meta, "seed": 7}), "key does not match prompt_id and seed 7"),
        (lambda s: dataclasses.replace(s, meta={**s.meta, "schema_version": 2}), "schema_version 2 (expected 1)"),
        (lambda s: dataclasses.replace(s, meta={**s.meta, "resolution": 9}), "views are 8 px, json says 9"),
    ],
    ids=["not-rigid", "nan-emb", "prompt-id", "seed", "schema", "resolution"],
)
def test_schema_faults_are_named_with_shard_and_key(tmp_path, mutate, message):
    samples = write_dataset(tmp_path / "s")
    chunk = samples[4:8]  # shard 1
    chunk[1] = mutate(chunk[1])
    write_shard(tmp_path / "s" / "shard-000001.tar", chunk)
    report = check_shards(tmp_path / "s")
    assert report.errors == [f"shard-000001.tar:{chunk[1].key}: {message}"]
    assert report.bad_shards == ["shard-000001.tar"] and report.num_samples == 12


def test_a_view_count_that_disagrees_with_the_cameras_is_named(tmp_path):
    # json claims 1 view: the reader takes 0.png alone, and the sample's 2 cameras no longer fit it.
    samples = write_dataset(tmp_path / "s")
    chunk = samples[4:8]
    chunk[1] = dataclasses.replace(chunk[1], meta={**chunk[1].meta, "num_views": 1})
    write_shard(tmp_path / "s" / "shard-000001.tar", chunk)
    report = check_shards(tmp_path / "s")
    assert (
        f"shard-000001.tar: sample {chunk[1].key}: ValueError: {chunk[1].key}: cameras must be float32 (1, 4, 4), got float32 (2, 4, 4)"
        in report.errors
    )
    assert report.bad_shards == ["shard-000001.tar"]


def test_json_missing_fields_are_listed(tmp_path):
    samples = write_dataset(tmp_path / "s")
    meta = {k: v for k, v in samples[0].meta.items() if k not in ("teacher", "teacher_config_hash")}
    write_shard(tmp_path / "s" / "shard-000000.tar", [dataclasses.replace(samples[0], meta=meta), *samples[1:4]])
    report = check_shards(tmp_path / "s")
    assert report.errors == [f"shard-000000.tar:{samples[0].key}: json lacks teacher, teacher_config_hash"]


def test_mixed_text_encoders_are_an_error_naming_both(tmp_path):
    samples = write_dataset(tmp_path / "s")
    other = dataclasses.replace(samples[11], meta={**samples[11].meta, "text_encoder": "clip"})
    write_shard(tmp_path / "s" / "shard-000002.tar", [*samples[8:11], other])
    report = check_shards(tmp_path / "s")
    assert len(report.errors) == 1, report.errors
    error = report.errors[0]
    assert error.startswith("mixed text encoders or view shapes across samples: ")
    assert "('unit', 6, (2, 8, 8, 3)): 11" in error and "('clip', 6, (2, 8, 8, 3)): 1" in error


def test_a_manifest_shard_that_does_not_exist_is_named(tmp_path):
    write_dataset(tmp_path / "s")
    (tmp_path / "s" / "shard-000002.tar").unlink()
    report = check_shards(tmp_path / "s")
    assert report.errors == ["manifest lists shard-000002.tar, which does not exist"]
    assert report.num_shards == 2 and report.num_samples == 8


def test_manifest_keys_differing_from_the_tar_are_named(tmp_path):
    samples = write_dataset(tmp_path / "s")
    Manifest(tmp_path / "s").record("shard-000001.tar", [s.key for s in samples[4:7]])  # one key short
    report = check_shards(tmp_path / "s")
    assert report.errors == ["manifest keys of shard-000001.tar differ from the shard's"]


def test_shards_without_a_manifest_pass_with_a_warning(tmp_path):
    write_dataset(tmp_path / "s")
    (tmp_path / "s" / "manifest.jsonl").unlink()
    report = check_shards(tmp_path / "s")
    assert report.ok, report.summary()
    assert report.warnings == ["no manifest.jsonl (shards not written by the dump?)"]


def test_a_missing_or_empty_directory_is_an_error(tmp_path):
    missing = check_shards(tmp_path / "nowhere")
    assert missing.errors == [f"not a directory: {tmp_path / 'nowhere'}"]
    (tmp_path / "empty").mkdir()
    empty = check_shards(tmp_path / "empty")
    assert empty.errors == [f"no .tar shards in {tmp_path / 'empty'}"] and empty.num_shards == 0


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"shard": "shard-000001.tar", "keys": [', "is not JSON"),
        ('{"keys": []}', "lacks 'shard' or 'keys'"),
        ('{"shard": "shard-000001.tar"}', "lacks 'shard' or 'keys'"),
        ('["shard", "keys"]', "lacks 'shard' or 'keys'"),
    ],
    ids=["not-json", "no-shard", "no-keys", "not-an-object"],
)
def test_a_corrupt_manifest_line_is_named(tmp_path, line, problem):
    write_dataset(tmp_path / "s")
    manifest = Manifest(tmp_path / "s")
    lines = manifest.path.read_text().splitlines()
    lines[1] = line
    manifest.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 2 " + problem.replace("(", r"\(")) as info:
        manifest.entries()
    assert str(manifest.path) in str(info.value)
    report = check_shards(tmp_path / "s")
    assert report.errors == [str(info.value)]


def test_check_cli_exit_codes(tmp_path):
    from typer.testing import CliRunner

    from pipeline.check_cli import app

    write_dataset(tmp_path / "s")
    ok = CliRunner().invoke(app, [str(tmp_path / "s"), "--samples-per-prompt", "4"])
    assert ok.exit_code == 0 and "OK" in ok.output
    bad = CliRunner().invoke(app, [str(tmp_path / "s"), "--samples-per-prompt", "5"])
    assert bad.exit_code == 1 and "expected 5" in bad.output


def test_bad_samples_are_rejected_at_write():
    s = make_sample("a red cube", 0)
    with pytest.raises(ValueError, match="duplicate sample keys"):
        encode_shard([s, s])
    with pytest.raises(ValueError, match="seed"):
        sample_key("abc", 1_000_000)
    with pytest.raises(ValueError, match="cameras"):
        ShardSample(s.key, s.prompt, 0, s.views, s.cameras[:1], s.fovy, s.emb, s.meta)
