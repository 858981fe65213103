"""The GPU check: the numbers a CUDA machine owes this project, in one run (`make gpu-check`, <= 8 minutes).

Measured with random weights (speed and memory do not depend on training) and written to `bench/gpu.json`
and `bench/gpu.md`:
- `paper` preset text -> tri-planes at batch 1 (MiniLM encoding + one generator pass), median ms, fp32 and
  bf16 (`ET3D(precision=...)`): the paper's ~8 ms claim;
- assets per second at batch 64 (64 prompts encoded, one batched generator pass), fp32 and bf16;
- prompt -> mesh at grid 128 (the random net has no surface: the real decoder is queried at every point and
  a sphere's density meshed, as in bench/bench_generate.py);
- one `paper` training step (G and D steps, batch 32, 256 px, lazy R1 / density at their intervals), median
  seconds and peak memory, fp32 and bf16 (`--optim.precision`);
- one full-size MVDream UNet step (random weights, CFG batch of one 4-view sample at 256 px) in fp16, and the
  seconds per sample with DDIM 50 and DPM-Solver++ 20 (bench/bench_mvdream.py).

    python bench/gpu_check.py --device cuda              # what `make gpu-check` runs
    python bench/gpu_check.py --device cpu --tiny        # seconds: the code path, on the `tiny` preset

`--tiny` swaps in the `tiny` preset, small batches, a 32 grid and the tiny MVDream UNet, so the whole script
is tested on a CPU (tests/test_gpu_check.py); its numbers mean nothing.
"""

from __future__ import annotations

import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks, also when imported

from bench_generate import SphereOverDecoder, _random_checkpoint  # noqa: E402
from bench_mvdream import run_benchmark as mvdream_benchmark  # noqa: E402

from pipeline.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from pipeline.cameras import orbit_cameras  # noqa: E402
from pipeline.prompts import prompt_id  # noqa: E402
from pipeline.shards import SHARD_PATTERN, ShardSample, make_sample_meta, sample_key, write_shard  # noqa: E402
from student.generate.api import ET3D  # noqa: E402
from student.mesh.config import MeshConfig  # noqa: E402
from student.mesh.extract import mesh_from_field  # noqa: E402
from student.train.plan import make_plan  # noqa: E402
from student.train.trainer import Trainer  # noqa: E402

BENCH = Path(__file__).resolve().parent
PROMPT = "a red cube"
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class CheckSizes:
    """What is measured how often; `tiny` keeps the code path and shrinks everything."""

    preset: str
    batch: int  # assets per batched generator pass
    repeats: int  # timed repetitions of each latency
    train_steps: int  # timed training steps (after one warm-up)
    grid: int  # meshing grid


FULL = CheckSizes(preset="paper", batch=64, repeats=50, train_steps=8, grid=128)
TINY = CheckSizes(preset="tiny", batch=4, repeats=3, train_steps=2, grid=32)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _peak_memory_gb(device: torch.device) -> float:
    """Peak allocated GPU memory since the last reset, or the process's peak resident memory on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def generation(ckpt: Path, sizes: CheckSizes, device: torch.device) -> dict:
    """Latency at batch 1 and throughput at batch `sizes.batch` per precision, and prompt -> mesh."""
    out: dict = {}
    prompts = [f"{PROMPT} number {i}" for i in range(sizes.batch)]
    for precision in PRECISIONS:
        model = ET3D.from_pretrained(
            ckpt, device=str(device), precision=precision, mesh_config=MeshConfig(grid=sizes.grid)
        )
        single = _median_ms(lambda m=model: m.synthesize(m.encode([PROMPT]), [PROMPT], [0]), sizes.repeats, device)
        G = model.generator
        z = G.sample_z(sizes.batch, torch.Generator(device).manual_seed(0))  # (N, z_dim)

        def batched(m=model, G=G, z=z, precision=precision):
            from student.precision import autocast

            with torch.inference_mode(), autocast(precision, device):
                w = G.latent_w(m.encode(prompts).to(device), z)  # (N, w_dim)
                return m.synthesis(w)  # (N, 3, C, R, R)

        batch_ms = _median_ms(batched, max(sizes.repeats // 5, 2), device)
        out[precision] = {
            "text_to_triplanes_ms": round(single, 3),
            f"assets_per_s_batch_{sizes.batch}": round(sizes.batch / (batch_ms / 1e3), 1),
        }
    model = ET3D.from_pretrained(ckpt, device=str(device), mesh_config=MeshConfig(grid=sizes.grid))
    level = model.mesh_config.level

    def prompt_to_mesh():
        gen = model.synthesize(model.encode([PROMPT]), [PROMPT], [0])[0]
        return mesh_from_field(SphereOverDecoder(gen.field, level), model.mesh_config)

    mesh = prompt_to_mesh()
    out["prompt_to_mesh_ms"] = round(_median_ms(prompt_to_mesh, max(sizes.repeats // 5, 2), device), 3)
    out["mesh_faces"] = mesh.num_faces
    return out


def synthetic_shards(directory: Path, preset: str, samples: int) -> Path:
    """`samples` samples of random views at the preset's output resolution: training speed is data-blind."""
    from student.presets import get_preset

    cfg = get_preset(preset)
    res, views = cfg.generator.superres.output_resolution, cfg.generator.camera.num_views
    cams = orbit_cameras(views, 15.0, resolution=res)
    rng = np.random.default_rng(0)
    items = []
    for i in range(samples):
        prompt = f"{PROMPT} number {i}"
        emb = rng.standard_normal(384).astype(np.float32)
        meta = make_sample_meta(
            prompt, 0, teacher="synthetic", teacher_config_hash="gpu-check", text_encoder="minilm", text_dim=384,
            num_views=views, resolution=res,
        )  # fmt: skip
        items.append(
            ShardSample(
                key=sample_key(prompt_id(prompt), 0),
                prompt=prompt,
                seed=0,
                views=rng.integers(0, 256, (views, res, res, 3), dtype=np.uint8),
                cameras=cams.c2w.numpy(),
                fovy=cams.fovy_deg.numpy(),
                emb=emb / np.linalg.norm(emb),
                meta=meta,
            )  # fmt: skip
        )
    write_shard(directory / SHARD_PATTERN.format(index=0), items)
    return directory


def train_step(shards: Path, sizes: CheckSizes, device: torch.device, runs: Path) -> dict:
    """Median seconds of `Trainer.step` and peak memory, per precision."""
    out = {}
    for precision in PRECISIONS:
        overrides = [f"--optim.precision={precision}", "--data.num_workers=0"]
        plan = make_plan(data=shards, out=runs, preset=sizes.preset, overrides=overrides, resume=False)
        _reset_peak(device)
        trainer = Trainer(plan, device=device, progress_bar=False)
        batches = iter(trainer.stream)
        batch = next(batches)
        times = []
        for step in range(sizes.train_steps + 1):  # step 0 (R1 and density due) doubles as the warm-up
            _sync(device)
            t0 = time.perf_counter()
            trainer.step(batch, step)
            _sync(device)
            times.append(time.perf_counter() - t0)
        out[precision] = {
            "step_s_median": round(statistics.median(times[1:]), 4),
            "batch_size": plan.config.optim.batch_size,
            "peak_memory_gb": round(_peak_memory_gb(device), 2),
        }
        del trainer
    return out


def mvdream_step(sizes: CheckSizes, device: torch.device) -> dict:
    record = mvdream_benchmark(device=str(device), quick=sizes is TINY, repeats=max(sizes.train_steps, 2))
    keep = ("dtype", "n_params", "inputs", "step_s_median", "samplers", "dpm_speedup_vs_ddim")
    out = {k: record[k] for k in keep}
    if "peak_gpu_memory_gb" in record:
        out["peak_gpu_memory_gb"] = record["peak_gpu_memory_gb"]
    return out


def run_check(device: str = "cuda", tiny: bool = False) -> dict:
    """Every measurement of the module docstring; returns the JSON-ready record."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but CUDA is not available; use --device cpu --tiny to check the script")
    sizes = TINY if tiny else FULL
    started = time.perf_counter()
    record: dict = {"what": "ET3D GPU check (random weights)", "preset": sizes.preset, "tiny": tiny}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        tmp = Path(tmp)
        ckpt = _random_checkpoint(sizes.preset, tmp / "random")
        record["generation"] = generation(ckpt, sizes, dev)
        batch = make_plan(
            data=synthetic_shards(tmp / "probe", sizes.preset, 1),
            out=tmp / "runs",
            preset=sizes.preset,
            overrides=[],
            resume=False,
        ).config.optim.batch_size
        shards = synthetic_shards(tmp / "shards", sizes.preset, batch)
        record["train_step"] = train_step(shards, sizes, dev, tmp / "runs")
    record["mvdream_unet"] = mvdream_step(sizes, dev)
    record["machine"] = {
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    record["total_s"] = round(time.perf_counter() - started, 1)
    return record


def markdown(record: dict) -> str:
    """The record as the table bench/gpu.md holds."""
    gen, train, mv = record["generation"], record["train_step"], record["mvdream_unet"]
    batch_key = next(k for k in gen["fp32"] if k.startswith("assets_per_s"))
    rows = [
        ("text -> tri-planes, batch 1, ms", gen["fp32"]["text_to_triplanes_ms"], gen["bf16"]["text_to_triplanes_ms"]),
        (f"assets/s, batch {batch_key.rsplit('_', 1)[-1]}", gen["fp32"][batch_key], gen["bf16"][batch_key]),
        (
            f"train step, batch {train['fp32']['batch_size']}, s",
            train["fp32"]["step_s_median"],
            train["bf16"]["step_s_median"],
        ),
        ("train step peak memory, GB", train["fp32"]["peak_memory_gb"], train["bf16"]["peak_memory_gb"]),
    ]
    m = record["machine"]
    lines = [
        f"# GPU check: `{record['preset']}` preset{' (tiny: code path only, numbers meaningless)' if record['tiny'] else ''}",
        "",
        f"{m['gpu'] or m['device']}, torch {m['torch']} (CUDA {m['cuda']}), {m['date']}; random weights; "
        f"{record['total_s']} s in all. Written by `make gpu-check` (bench/gpu_check.py).",
        "",
        "| measurement | fp32 | bf16 |",
        "|---|---|---|",
        *(f"| {name} | {a} | {b} |" for name, a, b in rows),
        "",
        f"- prompt -> mesh (grid 128 in full runs), fp32: {gen['prompt_to_mesh_ms']} ms",
        f"- MVDream UNet step ({mv['dtype']}, {mv['inputs']['x'][0]} latents of {mv['inputs']['x'][2]}^2, "
        f"{mv['n_params'] / 1e6:.0f} M parameters): {mv['step_s_median']} s"
        + (f", peak {mv['peak_gpu_memory_gb']} GB" if "peak_gpu_memory_gb" in mv else ""),
        *(
            f"- MVDream s per 4-view sample, {name} {s['steps']} steps: {s['s_per_sample']}"
            for name, s in mv["samplers"].items()
        ),
        "",
    ]
    return "\n".join(lines)


def main(
    device: str = typer.Option("cuda", help="cuda (the check) or cpu (with --tiny, to test the script)."),
    tiny: bool = typer.Option(False, "--tiny", help="tiny preset and sizes: seconds on a CPU, numbers meaningless."),
    out_dir: Path = typer.Option(BENCH, help="Where gpu.json and gpu.md go."),
) -> None:
    """Measure the GPU numbers (module docstring) and write gpu.json and gpu.md."""
    try:
        record = run_check(device, tiny)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    atomic_write_json(out_dir / "gpu.json", record)
    atomic_write_text(out_dir / "gpu.md", markdown(record))
    typer.echo(markdown(record))
    typer.echo(f"wrote {out_dir / 'gpu.json'} and {out_dir / 'gpu.md'} in {record['total_s']} s")


if __name__ == "__main__":
    typer.run(main)
