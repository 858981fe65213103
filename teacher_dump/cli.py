"""`et3d-dump`: run a teacher over a prompt corpus and cache its views as WebDataset shards.

Examples:

\b
  et3d-dump --prompts data/prompts/demo.txt --samples 16 --out data/shards
  et3d-dump --prompts data/prompts/demo.txt --workers 4 --res 32 --shard-size 128 --dry-run
  et3d-dump --prompts my.txt --teacher mvdream --mvdream /models/mvdream --res 256
  et3d-dump --prompts my.txt --teacher mvdream --mvdream /models/mvdream --teacher-opt scheduler=dpm++ \
      --teacher-opt num_inference_steps=20     # DPM-Solver++ at 20 steps instead of DDIM at 50
  RAY_ADDRESS=ray://head:10001 et3d-dump --prompts my.txt --teacher mvdream --mvdream /models/mvdream --workers 8

A rerun with the same options skips finished shards (the manifest records them); --overwrite redoes
everything. Exit status: 0 all shards written, 1 some shards failed (listed at the end), 2 bad input.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.prompts import CorpusError
from pipeline.shards import Manifest
from teacher_dump.dump import DumpConfig, DumpError, load_plan, run_dump, teacher_uses_gpu, validate_locally
from teacher_dump.plan import plan_digest

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def parse_teacher_options(pairs: list[str]) -> tuple[tuple[str, object], ...]:
    """["num_inference_steps=20", "path=/m"] -> (("num_inference_steps", 20), ("path", "/m")).

    Values are read as JSON when they parse (numbers, true/false, null, lists), else kept as strings.
    """
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--teacher-opt")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return tuple(out.items())


def _dry_run(config: DumpConfig, console: Console) -> None:
    prompts, plans = load_plan(config)
    if teacher_uses_gpu(config.teacher):
        teacher_note = "prompts are validated by the first worker (a GPU teacher is not built here)"
    else:
        described = validate_locally(config, prompts)
        teacher_note = f"all prompts accepted; config hash {described['hash']}"
    finished = Manifest(config.out).finished() if config.out.is_dir() and not config.overwrite else {}
    done = sum(1 for p in plans if sorted(finished.get(p.name, [])) == sorted(p.keys))
    resolved = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    console.print_json(data={"config": resolved, "teacher_kwargs": config.teacher_kwargs()})
    console.print(
        f"{len(prompts)} prompt(s) x {config.samples} seed(s) = {sum(len(p) for p in plans)} samples in "
        f"{len(plans)} shard(s) ({plans[0].name} .. {plans[-1].name}, plan {plan_digest(plans)}); "
        f"{done} already finished in {config.out}; teacher {config.teacher}: {teacher_note}"
    )


@app.command(help=__doc__)
def main(
    prompts: Path = typer.Option(..., help="Corpus: one prompt per line; blank and # lines skipped."),
    teacher: str = typer.Option(
        "procedural", help="Teacher: procedural (built in, CPU) or mvdream (needs --mvdream weights)."
    ),
    samples: int = typer.Option(4, help="Seeds per prompt (one sample each)."),
    views: int = typer.Option(4, help="Views per sample."),
    res: int = typer.Option(64, help="View resolution in pixels."),
    out: Path = typer.Option(Path("data/shards"), help="Shard directory."),
    workers: int = typer.Option(2, help="Ray actors, one teacher each."),
    shard_size: int = typer.Option(64, help="Samples per shard (one task each)."),
    batch_size: int = typer.Option(8, help="Samples per teacher call."),
    text_encoder: str = typer.Option("minilm", help="Text encoder for the stored embeddings: minilm, clip."),
    text_encoder_path: str = typer.Option(None, help="Model folder, for encoders that need one (clip)."),
    teacher_opt: list[str] = typer.Option([], help="Extra teacher option key=value (repeatable)."),
    mvdream: str = typer.Option(None, help="MVDream model folder or checkpoint (same as --teacher-opt path=...)."),
    seed_offset: int = typer.Option(0, help="First seed; seeds are seed_offset .. seed_offset + samples - 1."),
    max_attempts: int = typer.Option(3, help="Tries per shard before it is reported as failed."),
    cpus_per_worker: int = typer.Option(1, help="CPU cores (torch threads) per worker."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete the previous dump in --out and redo all."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the resolved plan; write nothing."),
) -> None:
    console = Console(stderr=True)
    options = parse_teacher_options(teacher_opt)
    if mvdream is not None:
        if teacher != "mvdream":
            raise typer.BadParameter(
                f"--mvdream needs --teacher mvdream (got --teacher {teacher})", param_hint="--mvdream"
            )
        options = (*options, ("path", mvdream))
    try:
        config = DumpConfig(
            prompts=prompts,
            out=out,
            teacher=teacher,
            teacher_options=options,
            samples=samples,
            views=views,
            resolution=res,
            workers=workers,
            shard_size=shard_size,
            batch_size=batch_size,
            text_encoder=text_encoder,
            text_encoder_path=text_encoder_path,
            seed_offset=seed_offset,
            overwrite=overwrite,
            max_attempts=max_attempts,
            cpus_per_worker=cpus_per_worker,
        )
        if dry_run:
            _dry_run(config, console)
            return
        report = run_dump(config, console)
    except (DumpError, CorpusError, FileNotFoundError) as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        raise typer.Exit(2) from e
    raise typer.Exit(0 if report.ok else 1)


if __name__ == "__main__":
    app()
