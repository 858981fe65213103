"""Atomic writes: a failure leaves the previous artefact and no temp file; success replaces it whole, with the\nmodes the umask asks for (private while written)."""

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.atomic import TMP_PREFIX, atomic_dir, atomic_path, atomic_write_bytes, atomic_write_json, current_umask


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


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o000], ids=oct)
def test_temps_are_private_and_finished_artefacts_follow_the_umask(tmp_path, mask):
    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    with umask(mask):
        assert current_umask() == mask
        assert mode(atomic_write_bytes(tmp_path / "a.bin", b"x")) == file_mode
        assert mode(atomic_write_json(tmp_path / "a.json", {})) == file_mode
        with atomic_path(tmp_path / "b.png") as tmp:
            assert mode(tmp) == 0o600  # private while written, whatever the umask
            tmp.write_bytes(b"png")  # writers that reopen the file by name keep its mode
            assert mode(tmp) == 0o600
        assert mode(tmp_path / "b.png") == file_mode
        with atomic_dir(tmp_path / "step-00000001") as tmp:
            assert mode(tmp) == 0o700
            (tmp / "config.json").write_text("{}")
            (tmp / "sub").mkdir()
            atomic_write_bytes(tmp / "sub" / "w.safetensors", b"w")
        done = tmp_path / "step-00000001"
        assert mode(done) == dir_mode and mode(done / "sub") == dir_mode
        assert mode(done / "config.json") == file_mode and mode(done / "sub" / "w.safetensors") == file_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.json", "b.png", "step-00000001"]


def test_every_artefact_writer_leaves_files_the_umask_allows(tmp_path):
    """Shards, dataset.json, checkpoints and their folders, meshes and images under umask 027: 0640 / 0750."""
    import dataclasses

    import numpy as np
    import torch
    from support.student_data import make_procedural_shards

    from pipeline.shards import write_dataset_info
    from student.generate.preview import save_gif, save_image
    from student.mesh.export import save_mesh
    from student.mesh.mesh import Mesh
    from student.model.discriminator import Discriminator
    from student.model.generator import TriplaneGenerator
    from student.presets import tiny
    from student.run_layout import RunDir
    from student.train.state import Progress, save_checkpoint

    with umask(0o027):
        shards = make_procedural_shards(tmp_path / "shards", prompts=("a red cube",), seeds=1, per_shard=1)
        write_dataset_info(shards, {"teacher": "procedural"})
        cfg = tiny()
        gen = dataclasses.replace(cfg.generator, text_encoder="onehot-test", text_dim=16)
        init_rng = torch.Generator().manual_seed(0)
        G = TriplaneGenerator(gen, rng=init_rng)  # noqa: N806 - the GAN literature's name
        D = Discriminator(cfg.discriminator, 16, 16, rng=init_rng)  # noqa: N806
        opts = {"opt_g": torch.optim.Adam(G.parameters()), "opt_d": torch.optim.Adam(D.parameters())}
        run = RunDir(tmp_path / "runs" / "00000-tiny")
        save_checkpoint(run.checkpoint(1), G=G, G_ema=G, D=D, **opts, progress=Progress(1), run_config=cfg)
        G.save_pretrained(tmp_path / "exported")
        triangle = Mesh(
            np.eye(3, dtype=np.float32), np.array([[0, 1, 2]], dtype=np.int32), np.full((3, 3), 200, dtype=np.uint8)
        )
        for suffix in (".ply", ".obj", ".glb"):
            save_mesh(triangle, tmp_path / "out" / f"mesh{suffix}")
        save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "out" / "view.png")
        save_gif(np.zeros((2, 4, 4, 3), np.uint8), tmp_path / "out" / "orbit.gif")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    folders = [p for p in tmp_path.rglob("*") if p.is_dir()]
    assert {p.name for p in files} >= {
        "shard-000000.tar", "dataset.json", "model.safetensors", "config.json", "train_state.safetensors",
        "train_state.json", "train_config.json", "mesh.ply", "mesh.obj", "mesh.glb", "view.png", "orbit.gif",
    }  # fmt: skip
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in files if mode(p) != 0o640} == {}
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in folders if mode(p) != 0o750} == {}
    assert not [p for p in tmp_path.rglob(f"{TMP_PREFIX}*")]
