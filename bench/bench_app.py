"""Benchmark of the web app's wait: text to the mesh shown in the viewer, in process (no HTTP, no browser).

`student.app.session.Session.generate` is what a click on Generate runs: text encoding, one forward pass,
meshing at grid 128, and the GLB the viewer loads (+ the OBJ and PLY downloads); the turntable GIF comes
after the mesh is shown and is timed separately. Medians of repeated requests (seeds 1, 2, ...) after one
warm-up request, with vertex colours (the default) and with --faces 5000 + a 512 px texture.

Without a trained checkpoint a random generator of the preset is timed; its density is a thin fog, so it is
meshed at the fog's 90th percentile (as `bench_generate.py`'s cold process), which gives a few thousand faces.

    python bench/bench_app.py --out /tmp/app.json
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.atomic import atomic_write_json  # noqa: E402
from student.app.session import Session  # noqa: E402
from student.generate.api import ET3D  # noqa: E402
from student.mesh.config import MeshConfig  # noqa: E402
from student.mesh.marching_cubes import sample_density_grid  # noqa: E402
from student.run_layout import find_latest_checkpoint  # noqa: E402

TARGETS = {"app_text_to_shown_mesh_ms": 1000.0}
PROMPT = "a red cube"
STAGES = ("encode", "forward", "mesh", "export", "turntable", "to_shown_mesh")


def _random_checkpoint(preset: str, directory: Path) -> Path:
    from student.model.generator import TriplaneGenerator
    from student.presets import get_preset

    cfg = replace(get_preset(preset).generator, text_encoder="minilm", text_dim=384)
    return TriplaneGenerator(cfg, rng=torch.Generator().manual_seed(0)).save_pretrained(directory)


def _fog_level(ckpt: Path) -> float:
    model = ET3D.from_pretrained(ckpt)
    level = model.mesh_config.level
    coarse = sample_density_grid(model(PROMPT).field, MeshConfig(grid=32, sigma_level=level, coarse_stride=1))
    return float(torch.quantile(torch.from_numpy(coarse[1:-1, 1:-1, 1:-1]).flatten(), 0.9))


def _medians(session: Session, repeats: int, **options) -> tuple[dict, int]:
    session.generate(PROMPT, seed=0, **options)  # warm-up: lazy imports and first-call allocations
    runs = [session.generate(PROMPT, seed=1 + i, **options) for i in range(repeats)]
    medians = {k: 1e3 * statistics.median(getattr(r.timings, k) for r in runs) for k in STAGES}
    return {k: round(v, 2) for k, v in medians.items()}, int(statistics.median(r.faces for r in runs))


def main(
    ckpt: Path | None = typer.Option(None, help="Checkpoint folder [default: newest of make train, else random]."),
    preset: str = typer.Option("cpu", help="Preset of the random generator when there is no checkpoint."),
    repeats: int = typer.Option(10, min=1, help="Timed requests per setting."),
    out: Path = typer.Option(REPO / "bench" / "app.json", help="Where to write the JSON."),
) -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        folder = ckpt or find_latest_checkpoint()
        trained = folder is not None
        folder = folder or _random_checkpoint(preset, Path(tmp) / "random")
        level = None if trained else _fog_level(folder)
        session = Session.load(folder, Path(tmp) / "files", mesh_config=MeshConfig(grid=128, sigma_level=level))
        if session.model is None:
            raise SystemExit(session.load_error)
        plain, faces = _medians(session, repeats)
        textured, textured_faces = _medians(session, max(repeats // 2, 1), max_faces=5000, texture=512)
    results = {"app_text_to_shown_mesh_ms": plain["to_shown_mesh"]}
    report = {
        "results": results,
        "vertex_colours_ms": plain,
        "faces_5000_texture_512_ms": textured,
        "targets": TARGETS,
        "meets_targets": {k: results[k] <= t for k, t in TARGETS.items()},
        "setup": {
            "checkpoint": str(ckpt) if ckpt else ("newest of make train" if trained else f"random-init {preset}"),
            "trained": trained,
            "sigma_level": "default" if level is None else round(level, 4),
            "grid": 128,
            "faces": faces,
            "textured_faces": textured_faces,
            "repeats": repeats,
            "torch_threads": torch.get_num_threads(),
            "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    }
    typer.echo(f"{atomic_write_json(out, report)}: {results} meets {report['meets_targets']}")
    typer.echo(f"  vertex colours: {plain}\n  --faces 5000 --texture 512: {textured}")


if __name__ == "__main__":
    typer.run(main)
