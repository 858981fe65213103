"""The "mvdream" teacher: registry, TeacherOutput contract, per-seed determinism across batches,
per-seed camera ranges, config hash, constructor errors, and no heavy imports until built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.cameras import DEFAULT_FOVY_DEG, DEFAULT_RADIUS
from teacher_dump.mvdream.parity import assemble_tiny_folder
from teacher_dump.teachers.base import available_teachers, build_teacher

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SETTINGS = {"resolution": 64, "num_inference_steps": 2, "device": "cpu"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return assemble_tiny_folder(GOLDEN, tmp_path_factory.mktemp("teacher") / "tiny")


@pytest.fixture(scope="module")
def teacher(folder):
    return build_teacher(
        "mvdream", path=folder, elevation=(0.0, 30.0), azimuth_start=(0.0, 360.0), batch_size=2, **SETTINGS
    )


def test_registered_and_asks_for_a_gpu(teacher):
    assert "mvdream" in available_teachers()
    assert teacher.name == "mvdream" and type(teacher).uses_gpu is True


def test_generate_follows_the_teacher_contract(teacher):
    out = teacher.generate(["a cute owl", "a red car", "a cute owl"], [1, 2, 1])
    assert out.views.shape == (3, 4, 64, 64, 3) and out.views.dtype == np.uint8
    assert out.cameras.shape == (3, 4, 4, 4) and out.cameras.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.cameras[..., :3, 3], axis=-1), DEFAULT_RADIUS, rtol=1e-6)
    assert (out.fovy == DEFAULT_FOVY_DEG).all()
    # (owl, 1) was sampled in the batch [owl 1, car 2] and again alone: the same sample.
    assert np.abs(out.views[0].astype(int) - out.views[2]).max() <= 1
    assert (out.cameras[0] == out.cameras[2]).all()
    assert np.abs(out.views[0].astype(int) - out.views[1]).mean() > 1.0
    elevations = np.degrees(np.arcsin(out.cameras[:, 0, 2, 3] / DEFAULT_RADIUS))  # z = r sin(elevation)
    assert ((elevations >= 0) & (elevations < 30)).all() and abs(elevations[0] - elevations[1]) > 1e-3


def test_config_names_every_output_changing_setting(teacher, folder):
    cfg = teacher.config()
    assert cfg["model"] == "tiny" and len(cfg["weights_fingerprint"]) == 12
    assert cfg["elevation"] == (0.0, 30.0) and cfg["dtype"] == "float32" and cfg["guidance_scale"] == 7.5
    other = build_teacher(
        "mvdream", path=folder, elevation=(0.0, 30.0), azimuth_start=(0.0, 360.0), guidance_scale=5.0, **SETTINGS
    )
    assert other.config_hash() != teacher.config_hash()
    # DDIM, the reference, is not named (dumps from before the option keep their hash); DPM-Solver++ is.
    assert "scheduler" not in cfg
    fast = build_teacher(
        "mvdream", path=folder, elevation=(0.0, 30.0), azimuth_start=(0.0, 360.0), scheduler="dpm++", **SETTINGS
    )
    assert fast.config()["scheduler"] == "dpm++" and fast.config_hash() != teacher.config_hash()
    views = fast.generate(["a cute owl"], [1]).views
    assert views.shape == (1, 4, 64, 64, 3) and np.array_equal(views, fast.generate(["a cute owl"], [1]).views)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"path": "nowhere/model"}, FileNotFoundError, "neither a folder nor a .ckpt/.pt/.pth/.safetensors file"),
        ({"path": "nowhere/mvdream.ckpt"}, FileNotFoundError, "MVDream checkpoint not found: nowhere/mvdream.ckpt"),
        ({"text_encoder_path": "x"}, ValueError, "['text_encoder_path'] are for a single-file checkpoint"),
        ({"elevation": (30.0, 0.0)}, ValueError, "elevation range must be (low, high) with low <= high"),
        ({"resolution": 100}, ValueError, "resolution 100 must be a positive multiple of 16"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"dtype": "float64"}, ValueError, "unsupported dtype 'float64'"),
        ({"scheduler": "pndm"}, ValueError, "unknown scheduler 'pndm'; accepted: ddim, dpm++"),
    ],
)
def test_constructor_errors(folder, kwargs, error, message):
    with pytest.raises(error) as err:
        build_teacher("mvdream", **{"path": folder, **SETTINGS, **kwargs})
    assert message in str(err.value)


def test_single_file_needs_a_text_encoder(tmp_path):
    (tmp_path / "sd-v2.1-base-4view.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="single-file checkpoint: pass text_encoder_path too"):
        build_teacher("mvdream", path=tmp_path / "sd-v2.1-base-4view.pt")


def test_mismatched_prompts_and_seeds(teacher):
    with pytest.raises(ValueError, match="got 2 prompts but 1 seeds"):
        teacher.generate(["a", "b"], [1])


def test_importing_the_teacher_loads_no_diffusers_or_transformers():
    code = "import sys, teacher_dump.teachers.mvdream; print(sorted({'diffusers', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
