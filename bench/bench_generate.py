"""Benchmark of one-pass generation: the paper's headline speed (prompt -> tri-planes) and what users wait for.

Measured, as medians of repeated runs on this machine:
- text -> tri-planes: text encoding + one generator forward pass, batch 1 (target <= 8 ms on 2 CPU cores);
- prompt -> mesh in process: the above + density grid + marching cubes + vertex colours at grid 128
  (target <= 250 ms);
- a cold `et3d-gen` process, start to exit, and its peak resident memory (targets <= 3 s, <= 1.5 GB).
Generation runs bf16 MiniLM weights (`PackedBert`) and the packed synthesis (`PackedSynthesis`); their
plain references (fp32 `BertEncoder`, `TriplaneGenerator.planes`) are timed too, as `reference_*`.

Speed does not depend on training, so without a trained checkpoint a randomly initialised generator of the
preset is saved to a temporary folder. An untrained net is a thin fog with no surface, so then the in-process
meshing runs on `SphereOverDecoder` (the real decoder queried at every point, a sphere's density returned)
and the cold process meshes at a level cut from the fog's own density; the JSON says which was used.

    python bench/bench_generate.py            # writes bench/generate.json
    python bench/bench_generate.py --device cuda --random --preset paper --out bench/generate_paper_gpu.json
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import typer

from pipeline.atomic import atomic_write_json
from student.generate.api import ET3D
from student.generate.errors import EmptyMeshError
from student.mesh.config import MeshConfig
from student.mesh.extract import mesh_from_field
from student.mesh.marching_cubes import sample_density_grid
from student.run_layout import find_latest_checkpoint

TARGETS = {"text_to_triplanes_ms": 8.0, "prompt_to_mesh_ms": 250.0, "cold_process_s": 3.0, "cold_peak_rss_mb": 1536.0}
PROMPT = "a red cube"
OUT = Path(__file__).resolve().with_name("generate.json")


class SphereOverDecoder:
    """A sphere of radius 0.6 with the cost of the real decoder: every point is queried through ``field``
    (paying grid_sample + MLP), then its density is replaced by the sphere's, twice the level at the centre."""

    def __init__(self, field, level: float, radius: float = 0.6):
        self.field, self.level, self.radius = field, level, radius

    def query(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, rgb = self.field.query(points)  # (P,), (P, 3): the decoder's cost and colours
        sigma = 2 * self.level * torch.sigmoid((self.radius - points.norm(dim=-1)) / 0.02)  # (P,)
        return sigma, rgb


def run_benchmark(
    ckpt: str | Path | None = None,
    preset: str = "cpu",
    repeats: int = 100,
    cold_runs: int = 5,
    device: str = "cpu",
    random_init: bool = False,
) -> dict:
    """Measure the three stages (see module docstring); returns the JSON-ready result."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        ckpt_dir = Path(ckpt) if ckpt else (None if random_init else find_latest_checkpoint())
        trained = ckpt_dir is not None
        if not trained:
            ckpt_dir = _random_checkpoint(preset, Path(tmp) / "random")
        model = ET3D.from_pretrained(ckpt_dir, mesh_config=MeshConfig(grid=128), device=device)
        sync = model.synchronize  # every timed call ends with its GPU work done

        encode_ms = _median_ms(lambda: (model.encode([PROMPT]), sync()), repeats)
        emb = model.encode([PROMPT])  # (1, D)
        forward_ms = _median_ms(lambda: (model.synthesize(emb, [PROMPT], [0]), sync()), repeats)
        t2p_ms = _median_ms(lambda: (model.synthesize(model.encode([PROMPT]), [PROMPT], [0]), sync()), repeats)
        # The plain paths the optimised ones are tested against: fp32 BertEncoder, TriplaneGenerator.planes.
        exact = ET3D.from_pretrained(ckpt_dir, text_precision="fp32", device=device)
        encode_fp32_ms = _median_ms(lambda: (exact.encode([PROMPT]), sync()), repeats)
        z = model.generator.sample_z(1, torch.Generator(model.device).manual_seed(0))  # (1, z_dim)
        with torch.inference_mode():
            emb_on_device = emb.to(model.device)
            forward_reference_ms = _median_ms(lambda: (model.generator.planes(emb_on_device, z=z), sync()), repeats)

        field_of, mesh_source, cold_level = _mesh_field(model, trained)
        config = model.mesh_config

        def prompt_to_mesh():
            gen = model.synthesize(model.encode([PROMPT]), [PROMPT], [0])[0]
            return mesh_from_field(field_of(gen), config)

        mesh = prompt_to_mesh()
        p2m_ms = _median_ms(prompt_to_mesh, max(repeats // 3, 3))
        cold = [_cold_run(ckpt_dir, Path(tmp), cold_level, str(model.device)) for _ in range(cold_runs)]

    results = {
        "text_to_triplanes_ms": t2p_ms,
        "text_encode_ms": encode_ms,
        "forward_ms": forward_ms,
        "reference_text_encode_fp32_ms": encode_fp32_ms,
        "reference_forward_ms": forward_reference_ms,
        "prompt_to_mesh_ms": p2m_ms,
        "cold_process_s": statistics.median(c["seconds"] for c in cold),
        "cold_peak_rss_mb": max(c["peak_rss_mb"] for c in cold),
    }
    return {
        "results": {k: round(v, 3) for k, v in results.items()},
        "targets": TARGETS,
        "meets_targets": {k: results[k] <= t for k, t in TARGETS.items()},
        "setup": {
            "device": str(model.device),
            "checkpoint": str(ckpt)
            if ckpt
            else ("newest of make train" if trained else f"random-init {preset} preset"),
            "trained": trained,
            "prompt": PROMPT,
            "text_precision": model.text_encoder.precision,
            "grid": config.grid,
            "sigma_level": round(config.level, 4),
            "mesh_source": mesh_source,
            "mesh_vertices": mesh.num_vertices,
            "mesh_faces": mesh.num_faces,
            "cold_runs": cold,
            "repeats": repeats,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            # A cold start is ~1 s slower when torch's modules are compiled from source at every import
            # (no __pycache__, e.g. installed with pip --no-compile under PYTHONDONTWRITEBYTECODE).
            "torch_bytecode_cached": (Path(torch.__file__).parent / "__pycache__").is_dir(),
            "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    }


def _random_checkpoint(preset: str, directory: Path) -> Path:
    from student.model.generator import TriplaneGenerator
    from student.presets import get_preset

    cfg = replace(get_preset(preset).generator, text_encoder="minilm", text_dim=384)
    return TriplaneGenerator(cfg, rng=torch.Generator().manual_seed(0)).save_pretrained(directory)


def _mesh_field(model: ET3D, trained: bool) -> tuple[Callable, str, float | None]:
    """(generation -> field to mesh, description, --level for the cold process or None for the default)."""
    gen = model(PROMPT, seed=0)
    if trained:
        try:
            _ = gen.mesh
            return (lambda g: g.field), "the trained generator's own density", None
        except EmptyMeshError:
            pass  # no surface for this prompt at the default level: measure on the sphere instead
    level = model.mesh_config.level
    # The cold process cannot take a synthetic field: cut the fog at its 90th percentile instead.
    coarse = sample_density_grid(gen.field, MeshConfig(grid=32, sigma_level=level, coarse_stride=1))
    cold_level = float(torch.quantile(torch.from_numpy(coarse[1:-1, 1:-1, 1:-1]).flatten(), 0.9))
    source = (
        "0.6-radius sphere density over the untrained generator's decoder (every point decoded); "
        f"cold process meshes the untrained density at its 90th percentile ({cold_level:.3g})"
    )
    return (lambda g: SphereOverDecoder(g.field, level)), source, cold_level


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-call allocations and lazy imports are not what is measured
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _cold_run(ckpt_dir: Path, tmp: Path, level: float | None, device: str = "cpu") -> dict:
    """One `et3d-gen` process: wall seconds and peak RSS from its own rusage (os.wait4)."""
    exe = Path(sys.executable).with_name("et3d-gen")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "student.generate.cli"]
    cmd += [PROMPT, "-o", str(tmp / "cold.ply"), "--ckpt", str(ckpt_dir), "--grid", "128"]
    cmd += ["--level", f"{level:.6g}"] if level is not None else []
    cmd += ["--device", device]
    with open(tmp / "cold.log", "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{(tmp / 'cold.log').read_text()}")
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}  # ru_maxrss: KiB


def main(
    ckpt: Path | None = typer.Option(None, help="Checkpoint folder [default: newest of make train, else random]."),
    preset: str = typer.Option("cpu", help="Preset of the random generator when there is no checkpoint."),
    repeats: int = typer.Option(100, min=3, help="Timed repetitions per in-process measurement."),
    cold_runs: int = typer.Option(5, min=1, help="Cold et3d-gen processes to time."),
    device: str = typer.Option("cpu", help="cpu or cuda (the paper's 8 ms is a GPU number: --random --preset paper)."),
    random_init: bool = typer.Option(
        False, "--random", help="Time a random --preset generator even if one is trained."
    ),
    out: Path = typer.Option(OUT, help="Where to write the JSON."),
) -> None:
    result = run_benchmark(ckpt, preset, repeats, cold_runs, device, random_init)
    typer.echo(f"{atomic_write_json(out, result)}: {result['results']} meets {result['meets_targets']}")


if __name__ == "__main__":
    typer.run(main)
