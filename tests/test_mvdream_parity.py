"""MVDream parity: every golden case in tests/golden/ against the shipped modules (docs/mvdream.md §Golden data).

The golden outputs come from the two public MVDream implementations run on the same random weights and
inputs (they agreed bit for bit). Here the same weights and inputs go through the adapters of
`teacher_dump.mvdream.parity`, which call only shipped code, and the outputs are compared in fp32 on CPU:
UNet forwards to 1e-5, camera matrices to 1e-6, the 4-step tiny pipeline to 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from teacher_dump.mvdream.parity import assemble_tiny_folder, build_unet, get_camera, run_pipeline

UNET_CASES = ("cfg", "views", "frames1")  # every case of tiny_unet_io, the num_frames = 1 one included
UNET_TOL = 1e-5  # a float64 run of the same UNet is within 2.6e-6 of the golden
CAMERA_TOL = 1e-6
PIPELINE_TOL = 1e-4  # float64 floor: 2.6e-5 on the latents (up to 19.6 in magnitude), 2.0e-6 on the images
GOLDEN = Path(__file__).resolve().parent / "golden"
CAMERA_SETTINGS = json.loads((GOLDEN / "cameras.json").read_text())["settings"]


def _setting_id(s: dict) -> str:
    world = "blender" if s["blender_coord"] else "opengl"
    return f"F{s['num_frames']}-elev{s['elevation']}-azim{s['azimuth_start']}+{s['azimuth_span']}-{world}"


def test_the_golden_files_hold_the_cases_and_tolerances_checked_here(golden_dir):
    unet_meta = json.loads((golden_dir / "tiny_unet_io.json").read_text())
    assert list(unet_meta["cases"]) == list(UNET_CASES)
    assert unet_meta["atol"] == unet_meta["rtol"] == UNET_TOL
    assert json.loads((golden_dir / "cameras.json").read_text())["tolerance_atol"] == CAMERA_TOL
    assert len(CAMERA_SETTINGS) == 9 and sum(not s["blender_coord"] for s in CAMERA_SETTINGS) == 1
    pipe_meta = json.loads((golden_dir / "tiny_pipeline_io.json").read_text())
    assert pipe_meta["tolerance"] == {"atol": PIPELINE_TOL, "rtol": PIPELINE_TOL}


@pytest.fixture(scope="module")
def unet_forward(golden_dir):
    raw = json.loads((golden_dir / "tiny_unet.json").read_text())
    config = {k: v for k, v in raw.items() if not k.startswith("_")}  # MVDream/ldm names only
    return build_unet(config, load_file(golden_dir / "tiny_unet.safetensors"))  # strict: all 212 tensors


@pytest.mark.parametrize("case", UNET_CASES)
def test_unet_forward_matches_the_reference(golden_dir, unet_forward, case):
    io = load_file(golden_dir / "tiny_unet_io.safetensors")
    num_frames = json.loads((golden_dir / "tiny_unet_io.json").read_text())["cases"][case]["num_frames"]
    x, timesteps, context, camera = (io[f"{case}.{name}"].clone() for name in ("x", "timesteps", "context", "camera"))
    expected = io[f"{case}.out"]  # (N*F, 4, h, w)
    assert expected.std() > 0.5  # the golden weights give a non-trivial output, so a zero UNet fails
    got = torch.as_tensor(unet_forward(x, timesteps, context, camera, num_frames))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=UNET_TOL, rtol=UNET_TOL)


@pytest.mark.parametrize("setting", CAMERA_SETTINGS, ids=_setting_id)
def test_camera_matrices_match_the_reference(setting):
    args = (setting["elevation"], setting["azimuth_start"], setting["azimuth_span"], setting["blender_coord"])
    got = np.asarray(get_camera(setting["num_frames"], *args), dtype=np.float64).reshape(-1, 16)
    expected = np.asarray(setting["matrices_row_major"], dtype=np.float64)  # (F, 16) camera-to-world, row-major
    assert got.shape == expected.shape == tuple(setting["shape"])
    np.testing.assert_allclose(got, expected, atol=CAMERA_TOL, rtol=0)


def test_tiny_pipeline_matches_the_reference(golden_dir, tmp_path):
    call = json.loads((golden_dir / "tiny_pipeline_io.json").read_text())["call"]
    io = load_file(golden_dir / "tiny_pipeline_io.safetensors")
    folder = assemble_tiny_folder(golden_dir, tmp_path / "tiny")
    out = run_pipeline(str(folder), call, io["latents_init"].clone())  # 4 DDIM steps, guidance 5
    assert set(out) == {"latents_final", "images"}
    torch.testing.assert_close(out["latents_final"], io["latents_final"], atol=PIPELINE_TOL, rtol=PIPELINE_TOL)
    torch.testing.assert_close(out["images"], io["images"], atol=PIPELINE_TOL, rtol=PIPELINE_TOL)
    assert io["images"].std() > 0.01  # a decoded picture, not a flat one
