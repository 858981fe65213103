"""bench/bench_mvdream.py: the quick run produces a complete record, written atomically."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_mvdream.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_mvdream", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_record(bench, tmp_path):
    record = bench.run_benchmark(quick=True, repeats=2)
    golden = load_file(str(bench.TINY_CONFIG.with_suffix(".safetensors")))
    assert record["n_params"] == sum(t.numel() for t in golden.values())  # the golden tiny UNet's weights
    assert record["inputs"] == {"x": [8, 4, 8, 8], "context": [8, 77, 32], "camera": [8, 16]}
    assert len(record["step_s"]) == 2 and record["step_s_median"] > 0
    assert abs(record["projected_s_per_sample"] - 50 * record["step_s_median"]) <= 0.1
    ddim, dpm = record["samplers"]["ddim"], record["samplers"]["dpm++"]
    assert (ddim["steps"], dpm["steps"]) == (50, 20)
    for sampler in (ddim, dpm):
        assert sampler["sampler_loop_s"] > 0
        expected = sampler["steps"] * record["step_s_median"] + sampler["sampler_loop_s"]
        # step_s_median is rounded to 1 ms and s_per_sample to 1 ms: their rounding is all that may differ
        assert abs(sampler["s_per_sample"] - expected) <= sampler["steps"] * 0.0005 + 0.0005 + 1e-9, sampler
    assert record["dpm_speedup_vs_ddim"] > 1.5  # 50 vs 20 UNet calls; the updates are cheap beside them
    assert record["peak_rss_gb"] > 0.05 and record["machine"]["torch_threads"] >= 1
    path = tmp_path / "out" / "mvdream.json"
    cmd = [sys.executable, str(BENCH), "--quick", "--repeats", "1", "--out", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    written = json.loads(path.read_text())
    assert written["n_params"] == record["n_params"] and len(written["step_s"]) == 1
    assert [p.name for p in path.parent.iterdir()] == ["mvdream.json"]  # no temp file left behind
    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        bench.run_benchmark(quick=True, repeats=0)
