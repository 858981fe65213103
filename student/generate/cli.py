"""`et3d-gen`: a prompt to a coloured mesh in one forward pass (a thin layer over `student.generate.api`).

Heavy modules (torch, the generator, scikit-image, trimesh) are imported inside the command, so
``et3d-gen --help`` and argument errors answer at once.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import typer

from student.generate.errors import EmptyMeshError, GenerationError, OptionError, PromptError
from student.generate.outputs import (
    ANIMATION_SUFFIXES,
    IMAGE_SUFFIXES,
    check_mesh_output,
    check_output_path,
    numbered_paths,
    sibling_path,
)
from student.generate.prompts import check_far_prompts, validate_prompts
from student.precision import PRECISIONS

TEXT_PRECISIONS = ("auto", "fp32", "bf16")

EXAMPLES = """
Examples (the checkpoint defaults to the newest one of `make train`):

  et3d-gen "a red cube" -o cube.ply

  et3d-gen "a blue torus" -o torus.glb --seed 3 --num 4 --preview torus.png

  et3d-gen "a green cone" -o cone.obj --ckpt runs/train/00002-cpu --turntable cone.gif

  et3d-gen --interpolate "a red cube" "a blue sphere" --steps 6 -o morph.ply

  et3d-gen "a red cube" -o cube.glb --faces 5000 --texture 1024

  et3d-gen --prompts-file prompts.txt -o out/asset.glb --grid 96 --faces 2000

  et3d-gen "a red cube" -o cube.ply --device cuda --precision bf16

  et3d-gen "a scarlet box" -o box.ply --far-prompts nearest
"""

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help="Generate a coloured 3D mesh from a text prompt with one generator forward pass.", epilog=EXAMPLES)
def generate(
    prompt: str | None = typer.Argument(None, help="What to generate, e.g. 'a red cube'.", show_default=False),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Mesh file; the suffix picks the format: .ply, .glb, .obj."
    ),
    ckpt: Path | None = typer.Option(
        None, help="Checkpoint folder, or a run folder (its newest). [default: the newest under runs/train]"
    ),
    seed: int = typer.Option(0, help="Seed of z; sample i of --num uses seed + i."),
    num: int = typer.Option(1, min=1, help="Samples per prompt, written as OUT_000.ply, OUT_001.ply, ..."),
    grid: int = typer.Option(128, min=8, help="Marching-cubes cells per axis over the [-1, 1]^3 box."),
    level: float | None = typer.Option(
        None,
        help="Density level of the surface. [default: ln 2 / the renderer's stratified sample spacing, "
        "where one render sample turns half opaque]",
        show_default=False,
    ),
    faces: int | None = typer.Option(
        None, min=4, help="Decimate by quadric error to at most this many faces (e.g. 5000).", show_default=False
    ),
    texture: int | None = typer.Option(
        None,
        min=16,
        max=8192,
        help="Bake the colour into a SIZE x SIZE texture with a UV atlas: .glb embeds it, .obj writes "
        "NAME.mtl and NAME_texture.png beside it; .ply keeps vertex colours.",
        show_default=False,
    ),
    truncation: float = typer.Option(1.0, help="Truncation psi towards this prompt's mean w (1 = none)."),
    preview: Path | None = typer.Option(None, help="Also write the student's renders as a grid image (.png/.jpg)."),
    turntable: Path | None = typer.Option(None, help="Also write a turntable animation (.gif)."),
    interpolate: tuple[str, str] | None = typer.Option(
        None,
        help="Interpolate from prompt A to prompt B with one z: meshes OUT_000.. and OUT_strip.png.",
        show_default=False,
    ),
    steps: int = typer.Option(5, min=2, help="Steps of --interpolate, both ends included."),
    prompts_file: Path | None = typer.Option(
        None, help="Generate for every line of this file (blank and # lines skipped) in one process."
    ),
    text_encoder_path: str | None = typer.Option(
        None, help="Model folder for text encoders that need one (clip: the MVDream folder)."
    ),
    text_precision: str = typer.Option(
        "auto",
        help="Text-encoder weights: auto (the encoder's fastest; minilm: bf16, cosine > 0.9999 to fp32) or fp32.",
    ),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto (cuda when available)."),
    precision: str = typer.Option(
        "fp32", help="Generator forward passes: fp32 (reference), bf16 or fp16 (autocast; for GPUs)."
    ),
    far_prompts: str = typer.Option(
        "warn",
        help="A prompt far from every prompt the checkpoint was trained on (cosine < 0.65 to each; the checkpoint "
        "records them) is warned about, naming the nearest. warn: generate the prompt anyway (the student guesses); "
        "nearest: generate that nearest training prompt instead, usually the better guess for words it never saw.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved plan and exit."),
) -> None:
    try:
        if text_precision not in TEXT_PRECISIONS:
            raise OptionError(f"--text-precision must be one of {', '.join(TEXT_PRECISIONS)}, got {text_precision!r}")
        if precision not in PRECISIONS:
            raise OptionError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        check_far_prompts(far_prompts, "--far-prompts")
        plan = _plan(prompt, output, seed, num, preview, turntable, interpolate, steps, prompts_file)
        mesh_config = _mesh_config(grid, level)
        if dry_run:
            _print_plan(plan, ckpt, mesh_config, faces, texture, far_prompts)
            return
        _run(
            plan, ckpt, mesh_config, faces, texture, truncation, text_encoder_path, text_precision, device, precision,
            far_prompts,
        )  # fmt: skip
    except GenerationError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.exit_code) from None


@dataclass(frozen=True)
class _Plan:
    """What to generate and where to write it, resolved and validated before any model work."""

    prompts: list[str]  # one per prompt (or the two ends of an interpolation)
    seeds: list[int]  # one per output
    meshes: list[Path]
    previews: list[Path | None]
    turntables: list[Path | None]
    interpolation: int | None  # steps when interpolating
    strip: Path | None  # the interpolation strip image


def _plan(prompt, output, seed, num, preview, turntable, interpolate, steps, prompts_file) -> _Plan:
    sources = [
        name
        for name, given in (("PROMPT", prompt), ("--prompts-file", prompts_file), ("--interpolate", interpolate))
        if given is not None
    ]
    if len(sources) != 1:
        raise PromptError(
            f"give exactly one of PROMPT, --prompts-file or --interpolate (got {', '.join(sources) or 'none'})"
        )
    check_mesh_output(output)
    if preview is not None:
        check_output_path(preview, IMAGE_SUFFIXES, "--preview")
    if turntable is not None:
        check_output_path(turntable, ANIMATION_SUFFIXES, "--turntable")
    if interpolate is not None:
        if num != 1:
            raise OptionError("--num does not combine with --interpolate (one z runs through all steps)")
        prompts, seeds, counts = list(interpolate), [seed] * steps, (steps,)
    else:
        prompts = [prompt] if prompt is not None else _read_prompts(prompts_file)
        counts = (len(prompts), num)
        seeds = [seed + i for _ in prompts for i in range(num)]
    validate_prompts(prompts)
    meshes = numbered_paths(output, counts)
    previews = numbered_paths(preview, counts) if preview else [None] * len(meshes)
    turntables = numbered_paths(turntable, counts) if turntable else [None] * len(meshes)
    strip = sibling_path(output, "strip", ".png") if interpolate is not None else None
    return _Plan(prompts, seeds, meshes, previews, turntables, steps if interpolate else None, strip)


def _read_prompts(path: Path) -> list[str]:
    from pipeline.prompts import read_corpus

    try:
        return read_corpus(path).prompts
    except (OSError, ValueError) as e:
        raise PromptError(f"--prompts-file: {str(e).splitlines()[0]}") from e


def _mesh_config(grid: int, level: float | None):
    from student.mesh.config import MeshConfig

    # Coarse-to-fine sampling needs a whole number of fine cells per coarse cell: the largest of 4, 2, 1.
    stride = next(s for s in (4, 2, 1) if grid % s == 0)
    try:
        return MeshConfig(grid=grid, sigma_level=level, coarse_stride=stride)
    except ValueError as e:
        raise OptionError(f"--grid/--level: {e}") from e


def _print_plan(plan: _Plan, ckpt, mesh_config, faces, texture, far_prompts) -> None:
    level = "default (ln 2 / render sample spacing)" if mesh_config.sigma_level is None else mesh_config.sigma_level
    typer.echo(
        f"checkpoint: {ckpt or 'newest under runs/train'}; grid {mesh_config.grid}; level {level}; "
        f"faces {faces or 'all'}; texture {f'{texture} px' if texture else 'off (vertex colours)'}; "
        f"far prompts: {far_prompts}"
    )
    labels = _labels(plan)
    for label, seed, mesh, prev, turn in zip(
        labels, plan.seeds, plan.meshes, plan.previews, plan.turntables, strict=True
    ):
        extras = "".join(f", {p}" for p in (prev, turn) if p)
        typer.echo(f"{label!r} seed {seed} -> {mesh}{extras}")
    if plan.strip:
        typer.echo(f"interpolation strip -> {plan.strip}")


def _labels(plan: _Plan) -> list[str]:
    if plan.interpolation:
        return [f"{plan.prompts[0]} -> {plan.prompts[1]} step {i}" for i in range(plan.interpolation)]
    per_prompt = len(plan.meshes) // len(plan.prompts)
    return [p for p in plan.prompts for _ in range(per_prompt)]


def _run(
    plan: _Plan,
    ckpt,
    mesh_config,
    faces,
    texture,
    truncation,
    text_encoder_path,
    text_precision,
    device,
    precision,
    far_prompts,
) -> None:
    import numpy as np

    from student.generate.api import ET3D, embedding_path
    from student.generate.preview import image_grid, save_image

    t0 = time.perf_counter()
    model = ET3D.from_pretrained(
        ckpt,
        text_encoder_path=text_encoder_path,
        text_precision=text_precision,
        mesh_config=mesh_config,
        max_faces=faces,
        texture_size=texture,
        device=device,
        precision=precision,
        far_prompts=far_prompts,
    )
    encoder = model.text_encoder
    typer.echo(
        f"loaded generator ({model.precision}) and {encoder.name} text encoder ({encoder.precision}) on {model.device} "
        f"in {time.perf_counter() - t0:.2f} s"
    )

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embeddings = model.encode(plan.prompts)  # (P, D)
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    t_text = time.perf_counter() - t0

    t0 = time.perf_counter()
    if plan.interpolation:
        embeddings = embedding_path(embeddings[0], embeddings[1], plan.interpolation)  # (steps, D)
    per_prompt = len(plan.meshes) // len(embeddings)
    repeated = embeddings.repeat_interleave(per_prompt, dim=0)  # (P * num, D)
    generations = model.synthesize(repeated, _labels(plan), plan.seeds, truncation)
    model.synchronize()  # CUDA runs asynchronously: wait before reading the clock
    t_forward = time.perf_counter() - t0

    t_mesh, failures = 0.0, 0
    for gen, mesh_path, prev, turn in zip(generations, plan.meshes, plan.previews, plan.turntables, strict=True):
        t0 = time.perf_counter()
        try:
            mesh = gen.mesh
        except EmptyMeshError as e:
            failures += 1
            typer.echo(f"error: {e}; nothing written for {mesh_path}", err=True)
            continue
        t_mesh += time.perf_counter() - t0
        written = [str(gen.save(mesh_path))]
        written += [str(gen.preview(prev))] if prev else []
        written += [str(gen.turntable(turn))] if turn else []
        typer.echo(
            f"{gen.prompt!r} seed {gen.seed}: {mesh.num_vertices} vertices, {mesh.num_faces} faces -> "
            + ", ".join(written)
        )
    if plan.strip:
        views = np.stack([g.views(1, azimuth_start_deg=45.0)[0] for g in generations])  # (steps, H, W, 3)
        typer.echo(f"interpolation strip -> {save_image(image_grid(views, len(views)), plan.strip)}")
    n = len(generations)
    typer.echo(
        f"time: text encoding {1e3 * t_text:.1f} ms, forward pass {1e3 * t_forward / n:.1f} ms per asset, "
        f"meshing {1e3 * t_mesh / max(n - failures, 1):.0f} ms per mesh (grid {mesh_config.grid}); "
        "first calls of this process, warm medians are in bench/results.md"
    )
    if failures:
        raise EmptyMeshError(
            f"{failures} of {n} samples had no surface at level {model.mesh_config.level:.3g}; "
            "try --level lower or other seeds"
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
