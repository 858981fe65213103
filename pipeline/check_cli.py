"""`et3d-check DIR`: validate a shard directory and exit non-zero if anything is wrong; `--index` (re)builds
the shards' indexes (for a dump made before they existed) and prints what the trainer will learn from them."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.shard_check import check_shards

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    directory: Path = typer.Argument(..., help="Shard directory (the dump's --out)."),
    samples_per_prompt: int = typer.Option(None, help="Fail unless every prompt has exactly this many samples."),
    index: bool = typer.Option(
        False, "--index", help="Read every shard once and write its index (shard-N.index.json), then summarise."
    ),
) -> None:
    """Validate shards: readable tars, schema v1, shapes, no duplicate keys, counts per prompt, indexes.

    Examples:
      et3d-check data/shards --samples-per-prompt 16
      et3d-check data/shards --index     # a dump made before shard indexes: build them once
    """
    if index:
        from pipeline.dataset import dataset_summary, describe_dataset, load_indexes
        from pipeline.shards import list_shards

        try:
            shards = list_shards(directory)
            load_indexes(shards, rebuild=True, say=typer.echo)
            typer.echo(dataset_summary(describe_dataset(directory, shards, say=typer.echo)))
        except (FileNotFoundError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        raise typer.Exit(0)
    report = check_shards(directory, expected_samples_per_prompt=samples_per_prompt)
    typer.echo(report.summary())
    raise typer.Exit(0 if report.ok else 1)


if __name__ == "__main__":
    app()
