"""`et3d-train`: train the text-conditioned tri-plane GAN on teacher shards.

Examples:

    et3d-train --data data/shards/demo --preset cpu                # resume or start runs/train/NNNNN-cpu
    et3d-train --data data/shards/demo --preset cpu --minutes 20 --dry-run
    et3d-train --data shards --preset paper --workers 8 --optim.batch_size=64 --loss.r1_gamma=2
    et3d-train --data shards --preset paper --workers 8 --optim.precision=bf16   # autocast; fp32 weights
    et3d-train --preset cpu --list-keys                            # every --key=value override and its value
    et3d-train --data shards --preset paper --skip-corrupt         # skip unreadable samples, counted in stats.jsonl
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from student.run_layout import RUNS_ROOT

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    data: Path = typer.Option(None, "--data", help="Shard directory written by the teacher dump."),
    preset: str = typer.Option("cpu", "--preset", help="paper | cpu | tiny."),
    out: Path = typer.Option(RUNS_ROOT, "--out", help="Root of the numbered run directories."),
    workers: int = typer.Option(
        1, "--workers", help="Data-parallel workers (Ray Train when > 1; RAY_ADDRESS for a cluster)."
    ),
    minutes: float = typer.Option(None, "--minutes", help="Total training wall-clock budget (0 = none)."),
    steps: int = typer.Option(None, "--steps", help="Total optimisation steps (0 = none)."),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue the newest run of this preset under --out."
    ),
    resume_from: Path = typer.Option(None, "--resume-from", help="Continue from this checkpoint directory."),
    skip_corrupt: bool = typer.Option(
        False, "--skip-corrupt", help="Skip samples that cannot be read (counted, reported) instead of stopping."
    ),
    max_failures: int = typer.Option(
        3,
        "--max-failures",
        min=0,
        help="With --workers > 1: restarts after a worker dies (each resumes from the last checkpoint).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved plan and exit."),
    list_keys: bool = typer.Option(False, "--list-keys", help="Print every overridable config key and exit."),
) -> None:
    """Train the student. Any other `--dotted.key=value` overrides the preset's config."""
    from student.config import to_dict
    from student.overrides import apply_overrides, flat_keys, format_value
    from student.presets import get_preset

    overrides = list(ctx.args)
    if minutes is not None:
        overrides.append(f"--schedule.minutes={minutes}")
    if steps is not None:
        overrides.append(f"--schedule.steps={steps}")
    if skip_corrupt:
        overrides.append("--data.skip_corrupt=true")
    try:
        if list_keys:
            cfg = apply_overrides(get_preset(preset), overrides)
            flat = _flatten(to_dict(cfg))
            for key in flat_keys(cfg):
                typer.echo(f"--{key}={format_value(flat[key])}")
            return
        if data is None:
            raise ValueError("--data is required (a shard directory)")
        from student.train.plan import make_plan

        plan = make_plan(
            data=data, out=out, preset=preset, overrides=overrides,
            resume=resume_from if resume_from is not None else resume, workers=workers,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(plan.describe() if dry_run else f"run dir {plan.run_dir}; resume from {plan.resume_from or 'scratch'}")
    if dry_run:
        return
    from student.train.distributed import DataParallelError, run_data_parallel
    from student.train.trainer import CorruptDataError, NonFiniteLossError, Trainer

    try:
        if workers > 1:
            run_data_parallel(plan, workers, max_failures)
        else:
            Trainer(plan).train()
    except (NonFiniteLossError, CorruptDataError) as err:
        typer.echo(f"error: training stopped: {err}", err=True)
        raise typer.Exit(3) from None
    except DataParallelError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(3) from None


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = ",".join(map(str, v)) if isinstance(v, list) else v
    return flat


def main() -> None:
    app(sys.argv[1:])


if __name__ == "__main__":
    main()
