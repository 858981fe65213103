"""`et3d-eval`: the quality report of a checkpoint, written to eval/<run>/ (a thin layer over `report`).

Inputs are resolved and checked first (checkpoint, prompt files, shards, text encoder), so a bad path or
a prompt outside the procedural vocabulary is reported in one line with exit status 2 before any model work.
Heavy modules (torch, the generator) are imported inside the command, so `--help` answers at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from student.run_layout import RUNS_ROOT

if TYPE_CHECKING:  # imported inside the commands, so that `--help` answers at once
    from student.model.generator import TriplaneGenerator

EXAMPLES = """
Examples (the checkpoint defaults to the newest one under --runs):

  et3d-eval --shards data/shards --prompts data/prompts/demo.txt

  et3d-eval --ckpt runs/train/00002-cpu --shards data/shards --dry-run

  et3d-eval --prompts data/prompts/demo.txt --heldout data/prompts/heldout.txt --seeds 4 --out eval/

  et3d-eval --shards data/shards_mvdream --no-heldout --clip models/clip-vit-l-14
"""

DEFAULT_HELDOUT = Path("data/prompts/heldout.txt")
DEFAULT_UNSEEN = Path("data/prompts/unseen.tsv")

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(
    help="Evaluate a trained student: oracle accuracy, Chamfer distance, diversity and optionally CLIP metrics, "
    "written as eval/<run>/report.md with metrics.json and figures.",
    epilog=EXAMPLES,
)
def evaluate(
    ckpt: Path | None = typer.Option(
        None, help="Checkpoint folder, or a run folder (its newest). [default: the newest under --runs]"
    ),
    runs: Path = typer.Option(RUNS_ROOT, help="Where training runs live (to find the newest checkpoint)."),
    shards: Path | None = typer.Option(
        None, help="Shard directory trained on: its prompts and their stored text embeddings."
    ),
    prompts: Path | None = typer.Option(
        None, help="Training prompt corpus (one per line); with --shards, the shards supply the embeddings."
    ),
    heldout: Path = typer.Option(DEFAULT_HELDOUT, help="Held-out prompt corpus: prompts never trained on."),
    no_heldout: bool = typer.Option(False, "--no-heldout", help="Evaluate training prompts only."),
    unseen: Path = typer.Option(
        DEFAULT_UNSEEN,
        help="Unseen wordings (prompt<TAB>colour<TAB>shape): words never trained on, scored against the "
        "nearest-training-prompt baseline. Skipped when the default file is absent.",
    ),
    no_unseen: bool = typer.Option(False, "--no-unseen", help="Skip the unseen wordings."),
    unseen_seeds: int = typer.Option(2, min=1, help="Latents per unseen-wording prompt."),
    curve_checkpoints: int = typer.Option(
        3,
        min=0,
        help="Measure this many of the run's newest kept checkpoints for the curves against training "
        "minutes (0 = only the accuracy stats.jsonl logged).",
    ),
    out: Path = typer.Option(Path("eval"), help="Reports go to OUT/<run name>/."),
    clip: Path | None = typer.Option(
        None,
        help="Local transformers CLIP folder: adds CLIP score and R-precision (needed for non-procedural prompts).",
    ),
    text_encoder_path: str | None = typer.Option(
        None, help="Model folder for text encoders that need one (clip: the MVDream folder)."
    ),
    train_prompts: int = typer.Option(0, min=0, help="Evaluate this many training prompts, spread out (0 = all)."),
    seeds: int = typer.Option(2, min=1, help="Latents per training prompt for the oracle."),
    heldout_seeds: int = typer.Option(4, min=1, help="Latents per held-out prompt for the oracle."),
    threads: int = typer.Option(
        0, min=0, help="Torch CPU threads (0 = torch's default); on a machine shared with training, 1 is often faster."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved plan and exit; writes nothing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; print only the summary."),
) -> None:
    from student.eval.inputs import EvalInputError

    try:
        plan = _plan(ckpt, runs, shards, prompts, None if no_heldout else heldout, out, clip, train_prompts, seeds,
                     heldout_seeds, None if no_unseen else unseen, unseen_seeds, curve_checkpoints)  # fmt: skip
        if dry_run:
            typer.echo("\n".join(plan.describe()))
            return
        G, G_raw, encode = _load(plan, text_encoder_path)
    except EvalInputError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    _run(plan, G, G_raw, encode, quiet, threads)


def _plan(
    ckpt, runs, shards, prompts, heldout, out, clip, train_prompts, seeds, heldout_seeds, unseen, unseen_seeds, curves
):
    from student.eval.curves import CurveConfig
    from student.eval.inputs import (
        EvalInputError,
        check_encoder,
        describe_checkpoint,
        find_checkpoint,
        read_prompt_sets,
    )
    from student.eval.report import ReportConfig, make_plan

    info = describe_checkpoint(find_checkpoint(ckpt, runs))
    if heldout is not None and not heldout.is_file():
        hint = "; pass --heldout FILE or --no-heldout" if heldout == DEFAULT_HELDOUT else ""
        raise EvalInputError(f"held-out prompt corpus {str(heldout)!r} not found{hint}")
    sets = read_prompt_sets(shards, prompts, heldout)
    check_encoder(sets, info.config.text_encoder, info.config.text_dim)
    config = ReportConfig(
        train_prompts=train_prompts, seeds=seeds, heldout_seeds=heldout_seeds, unseen_seeds=unseen_seeds,
        curves=CurveConfig(checkpoints=curves),
    )  # fmt: skip
    return make_plan(info, sets, config, out, clip_path=clip, unseen=_unseen(unseen, sets))


def _unseen(path, sets):
    """(path, UnseenSet), or None when not asked for or the default file is absent."""
    from student.eval.inputs import EvalInputError
    from student.eval.unseen import UnseenSetError, read_unseen

    if path is None or (path == DEFAULT_UNSEEN and not path.is_file()):
        return None
    try:
        unseen = read_unseen(path)
    except UnseenSetError as e:
        raise EvalInputError(str(e)) from None
    trained = [p for p in unseen.prompts if p in set(sets.train) or p in sets.known]
    if trained:
        raise EvalInputError(f"unseen wording(s) {', '.join(map(repr, trained[:5]))} of {path} are training prompts")
    return path, unseen


def _load(plan, text_encoder_path: str | None):
    """The generator and a lazy prompt encoder (loaded only if some prompt's embedding is not in the shards)."""
    from student.eval.inputs import EvalInputError, load_trained_generator
    from student.generate.errors import CheckpointError
    from student.generate.loading import load_generator, load_matching_text_encoder

    try:
        G = load_generator(plan.checkpoint.path)
    except CheckpointError as e:
        raise EvalInputError(str(e)) from None
    missing = [p for p in plan.train + plan.heldout if p not in plan.known] + (
        plan.unseen.prompts if plan.unseen else []
    )
    encoder = None
    if missing:  # fail now, not after minutes of evaluation
        try:
            encoder = load_matching_text_encoder(G, plan.checkpoint.path, text_encoder_path, precision="fp32")
        except CheckpointError as e:
            raise EvalInputError(
                f"{e}; pass --shards with the embeddings or --text-encoder-path (and --no-unseen)"
            ) from None

    def encode(batch: list[str]):
        return encoder.encode(batch).pooled

    return G, load_trained_generator(plan.checkpoint.path, G), encode


def _run(plan, G: TriplaneGenerator, G_raw: TriplaneGenerator | None, encode, quiet: bool, threads: int) -> None:
    import torch

    from student.eval.report import run_report

    if threads:
        # The evaluation is many small ops (oracle silhouettes, sphere tracing): with a core taken by another
        # process, a second OpenMP thread spends its time waiting for the first.
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # docs/student.md §Training: subnormals in the transmittance product slow rendering
    started = time.perf_counter()
    metrics = run_report(plan, G, encode, show_progress=not quiet, G_raw=G_raw)
    for line in summary(metrics):
        typer.echo(line)
    typer.echo(f"report: {plan.out_dir / 'report.md'} ({time.perf_counter() - started:.1f} s)")


def summary(metrics: dict) -> list[str]:
    """A few lines of the headline numbers."""
    lines = []
    for name, r in (metrics["attributes"] or {}).items():
        lines.append(
            f"{name:<8} colour {r['colour_accuracy']:.3f}  shape {r['shape_accuracy']:.3f}  "
            f"both {r['both_accuracy']:.3f}  ({r['count']} samples)"
        )
    for name, g in (metrics["geometry"] or {}).items():
        mean = "n/a" if g["chamfer_mean"] is None else f"{g['chamfer_mean']:.4f}"
        lines.append(
            f"{name:<8} chamfer {mean} (perfect {g['gt_vs_gt_chamfer']:.4f}, wrong shape "
            f"{g['wrong_shape_chamfer']:.4f}; {g['empty_meshes']} of {g['count']} meshes empty)"
        )
    div = metrics["diversity"]
    if div:
        for name, g in div["generators"].items():
            ratios = "  ".join(f"{f} {'n/a' if r is None else f'{r:.2f}'}" for f, r in g["ratios"].items())
            lines.append(f"diversity {name:<5} student/teacher: {ratios}")
    if metrics.get("unseen"):
        u = metrics["unseen"]
        snap = u["student_nearest"]
        lines.append(
            f"unseen   colour {u['student']['colour']:.3f}  shape {u['student']['shape']:.3f}  (nearest training "
            f"prompt: colour {u['nearest_neighbour']['colour']:.3f}  shape {u['nearest_neighbour']['shape']:.3f}; "
            f"snapped {snap['snapped']} of {u['prompts']}: colour {snap['colour']:.3f}  shape {snap['shape']:.3f})"
        )
    if metrics.get("frame"):
        fr = metrics["frame"]
        border = "  ".join(f"{name} {g['mean']:.4f}" for name, g in fr["generators"].items())
        lines.append(f"frame    border deviation from white: teacher {fr['teacher']['mean']:.4f}  {border}")
    if metrics["clip"]:
        c = metrics["clip"]
        lines.append(
            f"clip score {c['score_x100']:.2f}  R-precision {c['r_precision']:.3f} "
            f"(chance {c['chance_r_precision']:.3f})"
        )
    return lines


if __name__ == "__main__":
    app()
