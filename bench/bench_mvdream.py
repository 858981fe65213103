"""Cost of one MVDream denoising step: the full-size multi-view UNet on this machine.

One step is one UNet forward on the classifier-free-guidance batch of one 4-view sample:
batch 8 = 4 views x (uncond, cond), 32x32 latent (256 px), context 8x77x1024, no_grad, random
weights (the published sizes, `SD21_4VIEW_UNET` in ``teacher_dump/mvdream/original_config.py``). Reports the median over timed
forwards after one warm-up, the process's peak memory, and the cost of one 4-view sample for each
sampler the dump offers: DDIM at 50 steps (the reference) and DPM-Solver++ at 20, as steps x the UNet
step plus the sampler's own update loop, timed on latents of that shape (text encoder and VAE decode
excluded: one call each per sample, whatever the sampler).

Examples::

    .venv/bin/python bench/bench_mvdream.py                 # CPU fp32 -> bench/mvdream.json (minutes, ~6 GB)
    .venv/bin/python bench/bench_mvdream.py --quick         # tiny UNet smoke run, prints only
    .venv/bin/python bench/bench_mvdream.py --device cuda   # fp16 on a GPU
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import typer

from pipeline.atomic import atomic_write_json
from pipeline.cameras import mvdream_camera_matrices
from teacher_dump.mvdream.config import MultiViewUNetConfig
from teacher_dump.mvdream.original_config import MVDREAM_DDIM, SD21_4VIEW_UNET
from teacher_dump.mvdream.unet import MultiViewUNet

TINY_CONFIG = Path(__file__).resolve().parents[1] / "tests" / "golden" / "tiny_unet.json"
DEFAULT_OUT = Path(__file__).resolve().parent / "mvdream.json"
NUM_VIEWS = 4
STEPS_PER_SAMPLE = 50  # MVDream's default DDIM step count (docs/mvdream.md §Sampler)
SAMPLERS = {"ddim": 50, "dpm++": 20}  # the dump's samplers (--teacher-opt scheduler=...) at their step counts


def _machine(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        info["cpu_model"] = models[0] if models else platform.processor()
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        info["ram_gb"] = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e9, 1)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sampler_loop_s(name: str, steps: int, shape: tuple[int, ...], device: torch.device) -> float:
    """Seconds of one sample's sampler updates alone (no UNet): `steps` scheduler steps on latents of `shape`."""
    from teacher_dump.mvdream.pipeline import make_scheduler

    scheduler = make_scheduler(name, dict(MVDREAM_DDIM))
    scheduler.set_timesteps(steps, device=device)
    rng = torch.Generator("cpu").manual_seed(0)
    x = torch.randn(shape, generator=rng).to(device)
    eps = torch.randn(shape, generator=rng).to(device)  # a stand-in prediction: the update's cost is data-blind
    kwargs = {"eta": 0.0} if name == "ddim" else {}
    _sync(device)
    t0 = time.perf_counter()
    for t in scheduler.timesteps:
        x = scheduler.step(eps, t, x, **kwargs).prev_sample
    _sync(device)
    return time.perf_counter() - t0


def run_benchmark(device: str = "cpu", quick: bool = False, repeats: int = 3, config_path: Path | None = None) -> dict:
    """Time the UNet forward of one denoising step; returns the JSON-ready record.

    quick: the golden tiny UNet on an 8x8 latent (seconds), to check the code path.
    On cuda the UNet runs in float16, on cpu in float32.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = torch.device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    if config_path is not None:
        config = MultiViewUNetConfig.from_json(config_path)
    else:  # the published sd-v2.1-base-4view sizes, or the golden tiny UNet
        config = MultiViewUNetConfig.from_json(TINY_CONFIG) if quick else SD21_4VIEW_UNET
    side = 8 if quick else 32  # latent side: 256 px / VAE factor 8
    batch = 2 * NUM_VIEWS

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(0)  # random weights: only their cost matters
    unet = MultiViewUNet(config).to(dev, dtype).eval().requires_grad_(False)
    rng = torch.Generator("cpu").manual_seed(0)
    x = torch.randn(batch, config.in_channels, side, side, generator=rng).to(dev, dtype)
    timesteps = torch.full((batch,), 981.0, device=dev)
    context = torch.randn(batch, 77, config.context_dim, generator=rng).to(dev, dtype)
    camera = torch.from_numpy(mvdream_camera_matrices(NUM_VIEWS, 15.0)).reshape(NUM_VIEWS, 16)
    camera = torch.cat([camera, camera]).to(dev, dtype)  # (8, 16): same cameras for both CFG halves

    wall, cpu = [], []
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first forward is the warm-up
            _sync(dev)
            t0, c0 = time.perf_counter(), time.process_time()
            unet(x, timesteps, context, camera, NUM_VIEWS)
            _sync(dev)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)

    median = statistics.median(wall[1:])
    latent_shape = (NUM_VIEWS, config.in_channels, side, side)
    samplers = {}
    for name, steps in SAMPLERS.items():
        loop_s = sampler_loop_s(name, steps, latent_shape, dev)
        samplers[name] = {
            "steps": steps,
            "sampler_loop_s": round(loop_s, 4),
            "s_per_sample": round(steps * median + loop_s, 3 if quick else 1),
        }
    record = {
        "what": "MVDream UNet forward per denoising step (CFG batch of one 4-view sample), random weights",
        "quick": quick,
        "device": str(dev),
        "dtype": str(dtype).removeprefix("torch."),
        "config": config.to_dict(),
        "n_params": sum(p.numel() for p in unet.parameters()),
        "inputs": {"x": list(x.shape), "context": list(context.shape), "camera": list(camera.shape)},
        "warmup_s": round(wall[0], 3),
        "step_s": [round(t, 3) for t in wall[1:]],
        "step_s_median": round(median, 3),
        "cpu_s_per_step_median": round(statistics.median(cpu[1:]), 3),
        # ru_maxrss is in KiB on Linux: the whole process, weights included.
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 2),
        "steps_per_sample": STEPS_PER_SAMPLE,
        "projected_s_per_sample": round(STEPS_PER_SAMPLE * median, 1),
        "projected_note": "UNet only; the text encoder and the VAE decode run once per sample",
        # Per sampler: steps x the UNet step + the sampler's own updates (text encoder and VAE excluded).
        "samplers": samplers,
        "dpm_speedup_vs_ddim": round(samplers["ddim"]["s_per_sample"] / samplers["dpm++"]["s_per_sample"], 2),
        "machine": _machine(dev),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - py310 target
    }
    if dev.type == "cuda":
        record["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated(dev) / 1e9, 2)
    return record


def main(
    device: str = typer.Option("cpu", help="cpu (float32) or cuda (float16)"),
    quick: bool = typer.Option(False, "--quick", help="tiny UNet smoke run; writes only with --out"),
    repeats: int = typer.Option(3, help="timed forwards after the warm-up"),
    out: Path | None = typer.Option(None, help=f"result JSON (default for a full run: {DEFAULT_OUT})"),
) -> None:
    """Seconds per MVDream denoising step and projected seconds per 4-view sample."""
    record = run_benchmark(device=device, quick=quick, repeats=repeats)
    json.dump(record, sys.stdout, indent=1)
    print()
    target = out or (None if quick else DEFAULT_OUT)
    if target is not None:
        print(f"wrote {atomic_write_json(target, record)}", file=sys.stderr)


if __name__ == "__main__":
    typer.run(main)
