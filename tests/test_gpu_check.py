"""bench/gpu_check.py (`make gpu-check`) on the CPU with --tiny: every measurement present, files written."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_run_writes_every_number_to_json_and_markdown(gpu_check, tmp_path):
    gpu_check.main(device="cpu", tiny=True, out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu.json", "gpu.md"]  # no temp files left
    record = json.loads((tmp_path / "gpu.json").read_text())
    assert record["preset"] == "tiny" and record["tiny"] and record["machine"]["device"] == "cpu"
    gen, train, mv = record["generation"], record["train_step"], record["mvdream_unet"]
    for precision in ("fp32", "bf16"):
        assert gen[precision]["text_to_triplanes_ms"] > 0 and gen[precision]["assets_per_s_batch_4"] > 0
        assert train[precision]["step_s_median"] > 0 and train[precision]["peak_memory_gb"] > 0.05
        assert train[precision]["batch_size"] == 4  # the tiny preset's batch
    assert gen["prompt_to_mesh_ms"] > 0 and gen["mesh_faces"] > 100  # the sphere over the real decoder
    assert mv["inputs"]["x"] == [8, 4, 8, 8] and mv["step_s_median"] > 0
    assert set(mv["samplers"]) == {"ddim", "dpm++"} and mv["dpm_speedup_vs_ddim"] > 1.5
    md = (tmp_path / "gpu.md").read_text()
    assert "| text -> tri-planes, batch 1, ms | " in md and "| train step peak memory, GB |" in md
    assert f"| {gen['fp32']['text_to_triplanes_ms']} | {gen['bf16']['text_to_triplanes_ms']} |" in md
    assert "- MVDream s per 4-view sample, dpm++ 20 steps: " in md and "ddim 50 steps" in md


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused_in_one_line(gpu_check):
    with pytest.raises(ValueError, match="--device cuda but CUDA is not available; use --device cpu --tiny"):
        gpu_check.run_check("cuda")
