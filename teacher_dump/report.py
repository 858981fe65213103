"""What a dump tells its user: live progress (rich: samples/s, ETA) and the closing summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TimeRemainingColumn
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class FailedShard:
    """A shard given up on after `attempts` tries; `error` is the last one's message."""

    name: str
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    attempts: int
    error: str


@dataclass
class WorkerStats:
    """Per worker process: samples made and seconds spent in the teacher and encoding shards."""

    shards: int = 0
    samples: int = 0
    teacher_s: float = 0.0
    encode_s: float = 0.0

    @property
    def samples_per_s(self) -> float:
        busy = self.teacher_s + self.encode_s
        return self.samples / busy if busy > 0 else 0.0


@dataclass
class DumpReport:
    """The outcome of one dump run (a rerun reports only the shards it produced)."""

    out_dir: str
    planned_shards: int
    skipped_shards: int = 0
    written_shards: int = 0
    samples_written: int = 0
    write_s: float = 0.0  # driver time writing shard files and the manifest
    dispatch_s: float = 0.0  # wall time from the first task sent to the last result (excludes startup)
    seconds: float = 0.0  # the whole run: corpus, Ray and actor start, text encoder, dispatch
    failed: list[FailedShard] = field(default_factory=list)
    workers: dict[str, WorkerStats] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class _SamplesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- samples/s" if speed is None else f"{speed:.1f} samples/s", style="progress.data.speed")


def make_progress(console: Console, enabled: bool = True) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        _SamplesPerSecond(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


def print_summary(report: DumpReport, console: Console) -> None:
    rate = report.samples_written / report.seconds if report.seconds > 0 else 0.0
    console.print(
        f"[bold]dump[/bold] {escape(report.out_dir)}: {report.samples_written} samples in {report.written_shards} new "
        f"shard(s), {report.skipped_shards} already finished, {len(report.failed)} failed, of "
        f"{report.planned_shards} planned; {report.seconds:.1f} s ({rate:.1f} samples/s overall)"
    )
    if report.workers:
        table = Table("worker", "shards", "samples", "teacher s", "encode s", "samples/s", title="per worker")
        for name, w in sorted(report.workers.items()):
            table.add_row(
                name, str(w.shards), str(w.samples), f"{w.teacher_s:.1f}", f"{w.encode_s:.1f}", f"{w.samples_per_s:.1f}"
            )
        console.print(table)
    for f in report.failed:
        prompts = escape(", ".join(sorted(set(f.prompts))))
        console.print(
            f"[red]FAILED[/red] {f.name} after {f.attempts} attempt(s): {escape(f.error)}\n  prompts: {prompts}"
        )
