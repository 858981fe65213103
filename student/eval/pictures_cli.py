"""`python -m student.eval.pictures_cli`: the pictures of `make demo` (see `student.eval.pictures`)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

EXAMPLES = """
Examples:

  python -m student.eval.pictures_cli                     # newest checkpoint -> out/demo/

  python -m student.eval.pictures_cli --ckpt runs/train/00002-cpu --out out/pictures --seeds 4
"""

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(
    help="Draw the teacher/student grid, a turntable, an interpolation strip and the training curve.", epilog=EXAMPLES
)
def pictures(
    ckpt: Path | None = typer.Option(None, help="Checkpoint or run folder. [default: the newest under runs/train]"),
    prompts: Path = typer.Option(Path("data/prompts/demo.txt"), help="Training prompts."),
    heldout: Path = typer.Option(Path("data/prompts/heldout.txt"), help="Held-out prompts (marked in the grid)."),
    out: Path = typer.Option(Path("out/demo"), help="Folder the pictures are written to (created)."),
    seeds: int = typer.Option(3, min=1, help="Columns of the grid."),
    curve_checkpoints: int = typer.Option(6, min=1, help="Checkpoints measured for the diversity curve."),
) -> None:
    from pipeline.prompts import read_corpus
    from student.eval import pictures as pic
    from student.generate.api import ET3D
    from student.generate.errors import GenerationError
    from student.generate.loading import resolve_checkpoint
    from student.generate.preview import save_gif, save_image
    from student.run_layout import RunDir, run_dir_for

    config = pic.PicturesConfig(seeds=seeds, curve_checkpoints=curve_checkpoints)
    try:
        train = read_corpus(prompts).prompts
        held = read_corpus(heldout).prompts
        folder = resolve_checkpoint(ckpt)
        model = ET3D.from_pretrained(folder)
    except (OSError, ValueError, GenerationError) as e:
        typer.echo(f"error: {str(e).splitlines()[0]}", err=True)
        raise typer.Exit(2) from None
    run_dir = run_dir_for(folder)
    out.mkdir(parents=True, exist_ok=True)
    typer.echo(f"pictures of {folder} -> {out}/")
    rows = pic.varied_prompts(train, config.train_prompts)

    def stage(name: str, write) -> None:
        t0 = time.perf_counter()
        path = write()
        typer.echo(f"  {name}: {path} ({time.perf_counter() - t0:.1f} s)")

    stage(
        "grid",
        lambda: save_image(pic.comparison_grid(model, rows, held[: config.heldout_prompts], config), out / "grid.png"),
    )
    spin = pic.varied_prompts(train, config.turntable_prompts)
    stage("turntable", lambda: save_gif(pic.turntable(model, spin, config), out / "turntable.gif"))
    ends = (rows[0], rows[1] if len(rows) > 1 else held[0])
    stage("interpolation", lambda: save_image(pic.interpolation_strip(model, *ends, config), out / "interpolation.png"))

    def curve():
        accuracy = pic.accuracy_series(RunDir(run_dir).stats)
        diversity = pic.diversity_series(model, run_dir, rows, config)
        return save_image(pic.training_curve(accuracy, diversity), out / "training_curve.png")

    stage("training curve", curve)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
