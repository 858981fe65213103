"""`et3d-check DIR`: validate a shard directory and exit non-zero if anything is wrong."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.shard_check import check_shards

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    directory: Path = typer.Argument(..., help="Shard directory (the dump's --out)."),
    samples_per_prompt: int = typer.Option(None, help="Fail unless every prompt has exactly this many samples."),
) -> None:
    """Validate shards: readable tars, schema v1, shapes, no duplicate keys, counts per prompt.

    Example: et3d-check data/shards --samples-per-prompt 16
    """
    report = check_shards(directory, expected_samples_per_prompt=samples_per_prompt)
    typer.echo(report.summary())
    raise typer.Exit(0 if report.ok else 1)


if __name__ == "__main__":
    app()
