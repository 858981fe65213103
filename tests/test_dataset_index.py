"""The dataset description: per-shard indexes written with the shards, read instead of the tars, built once
for a dump made before them; the loader decodes only the views a step uses; backgrounds are recorded."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from support.shard_data import PROMPTS, make_sample, write_dataset
from typer.testing import CliRunner

import pipeline.dataset as dataset_module
from pipeline.check_cli import app as check_app
from pipeline.dataset import describe_dataset
from pipeline.shard_check import check_shards
from pipeline.shard_index import INDEX_SUFFIX, ShardIndexError, estimate_background, index_path, read_index
from pipeline.shard_reader import decode_sample, iter_tar_groups, make_loader, read_shard
from pipeline.shards import BACKGROUND, list_shards, write_dataset_info, write_shard


def _no_tar_reads(monkeypatch):
    def refuse(path):
        raise AssertionError(f"start-up opened {path}")

    monkeypatch.setattr(dataset_module, "iter_tar_groups", refuse)


def test_the_dataset_is_learned_from_the_indexes_without_opening_a_tar(tmp_path, monkeypatch):
    samples = write_dataset(tmp_path / "s", shards=3, per_shard=4)
    assert sorted(p.name for p in (tmp_path / "s").glob(f"*{INDEX_SUFFIX}")) == [
        f"shard-{i:06d}.index.json" for i in range(3)
    ]
    _no_tar_reads(monkeypatch)
    info = describe_dataset(tmp_path / "s")
    assert info.num_samples == 12 and info.shard_samples == (4, 4, 4)
    assert info.prompts == sorted(PROMPTS)
    assert (info.text_encoder, info.text_dim, info.num_views, info.resolution, info.teacher) == (
        "unit",
        6,
        2,
        8,
        "unit",
    )
    first = {s.prompt: s.emb for s in reversed(samples)}  # each prompt's embedding, as its first sample stores it
    for prompt, emb in zip(info.prompts, info.embeddings, strict=True):
        assert torch.equal(emb, torch.from_numpy(first[prompt]))  # bit-exact through the index
    # No dataset.json: the camera distribution is measured over every view of every shard.
    position = np.concatenate([s.cameras[:, :3, 3] for s in samples]).astype(np.float64)
    radius = np.linalg.norm(position, axis=1)
    elevation = np.degrees(np.arcsin(position[:, 2] / radius))
    assert info.cameras.elevation_range == pytest.approx((elevation.min(), elevation.max()), abs=1e-3)
    assert info.cameras.radius == pytest.approx((radius.min() + radius.max()) / 2, abs=1e-3)
    assert info.cameras.fovy_deg == pytest.approx(40.0)


def test_the_dumps_declared_camera_distribution_wins_and_a_disagreeing_dataset_json_is_named(tmp_path):
    write_dataset(tmp_path / "s", shards=2, per_shard=3)
    cameras = {"elevation_range": [5.0, 25.0], "radius": 2.5, "fovy_deg": 35.0}
    write_dataset_info(tmp_path / "s", {"teacher": "unit", "text_encoder": "unit", "text_dim": 6, "cameras": cameras})
    info = describe_dataset(tmp_path / "s")
    assert (info.cameras.elevation_range, info.cameras.radius, info.cameras.fovy_deg) == ((5.0, 25.0), 2.5, 35.0)
    write_dataset_info(tmp_path / "s", {"text_encoder": "minilm"})
    with pytest.raises(ValueError, match="^shard-000000.tar has text_encoder='unit', dataset.json says 'minilm'$"):
        describe_dataset(tmp_path / "s")


def test_a_dump_without_indexes_is_scanned_once_and_its_indexes_written(tmp_path, monkeypatch):
    write_dataset(tmp_path / "s", shards=3, per_shard=4)
    expected = describe_dataset(tmp_path / "s")
    for path in (tmp_path / "s").glob(f"*{INDEX_SUFFIX}"):
        path.unlink()
    said: list[str] = []
    rebuilt = describe_dataset(tmp_path / "s", say=said.append)
    assert said == [
        "3 of 3 shard(s) have no index (written before schema 1.1, or --index asked): "
        "reading them once to build it; later starts read the index only"
    ]
    assert all(index_path(p).is_file() for p in list_shards(tmp_path / "s"))
    assert rebuilt == dataclasses.replace(expected, embeddings=rebuilt.embeddings)
    assert torch.equal(rebuilt.embeddings, expected.embeddings)
    _no_tar_reads(monkeypatch)
    said.clear()
    describe_dataset(tmp_path / "s", say=said.append)  # the second start reads the indexes only
    assert said == []


def test_a_stale_index_is_refused_with_the_fix(tmp_path):
    write_dataset(tmp_path / "s", shards=2, per_shard=3)
    shard = tmp_path / "s" / "shard-000001.tar"
    write_shard(tmp_path / "other.tar", [make_sample("a red cube", 40)])
    shard.write_bytes((tmp_path / "other.tar").read_bytes())  # replaced by hand, index left behind
    with pytest.raises(ShardIndexError, match=r"^shard-000001.index.json is stale: shard-000001.tar is \d+ bytes"):
        describe_dataset(tmp_path / "s")
    report = check_shards(tmp_path / "s")
    assert any("shard-000001.index.json is stale" in e and "--index" in e for e in report.errors), report.errors
    result = CliRunner().invoke(check_app, [str(tmp_path / "s"), "--index"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["samples"] == 4
    assert read_index(shard)["keys"] == [make_sample("a red cube", 40).key]


def test_backgrounds_are_estimated_recorded_and_read_for_grey_views(tmp_path):
    base = make_sample("a red cube", 0, v=3, res=16)
    views = np.full((3, 16, 16, 3), (128, 128, 128), np.uint8)
    views[:, 4:12, 4:12] = (200, 10, 10)  # the object
    views[1, 0, :3] = 0  # an object touching the border moves no median
    sample = dataclasses.replace(base, views=views)
    grey = 128 / 255
    np.testing.assert_allclose(estimate_background(views), np.full((3, 3), grey, np.float32), atol=1e-7)
    path = write_shard(tmp_path / "shard-000000.tar", [sample])
    (back,) = read_shard(path)
    np.testing.assert_allclose(back.background, np.full((3, 3), grey, np.float32), atol=1e-7)
    assert read_index(path)["background"] == [round(grey, 4)] * 3
    assert describe_dataset(tmp_path).background == (round(grey, 4),) * 3
    # A schema 1.0 sample has no background member: the reader estimates the same colour from the views.
    ((key, group),) = iter_tar_groups(path)
    del group[BACKGROUND]
    old = decode_sample(key, group, path.name)
    np.testing.assert_array_equal(old.background, back.background)


def test_the_loader_decodes_only_the_views_a_step_uses(tmp_path, monkeypatch):
    import pipeline.shard_reader as reader

    samples = {s.key: s for s in write_dataset(tmp_path / "s", shards=2, per_shard=6)}
    shards = list_shards(tmp_path / "s")
    decoded: list[int] = []
    real_open = reader.Image.open
    monkeypatch.setattr(reader.Image, "open", lambda data: decoded.append(1) or real_open(data))
    batches = list(make_loader(shards, 4, views_per_sample=1, seed=3, drop_last=False))
    assert len(decoded) == 12  # one PNG per sample, not both
    picked = set()
    for batch in batches:
        assert batch.views.shape[1:] == (1, 8, 8, 3) and batch.cameras.shape[1:] == (1, 4, 4)
        assert batch.fovy.shape[1:] == (1,) and batch.background.shape[1:] == (1, 3)
        for b, key in enumerate(batch.keys):
            full = samples[key]
            (i,) = [v for v in range(2) if np.array_equal(full.views[v], batch.views[b, 0].numpy())]
            np.testing.assert_array_equal(full.cameras[i], batch.cameras[b, 0].numpy())
            picked.add(i)
    assert picked == {0, 1}  # both views get used across samples

    def views_by_key(**kw):
        loader = make_loader(shards, 4, views_per_sample=1, seed=3, drop_last=False, **kw)
        return {k: v for b in loader for k, v in zip(b.keys, b.views, strict=True)}

    one, two = views_by_key(), views_by_key(num_workers=2)
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)  # whatever the workers
    with pytest.raises(ValueError, match="has 2 views, the loader wants 3 of each"):
        next(iter(make_loader(shards, 4, views_per_sample=3)))
