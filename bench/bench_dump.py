"""Dump throughput: samples/s of the procedural teacher dump with 1 and 2 Ray workers.

    python bench/bench_dump.py [--quick] [--out bench/dump.json]

Each measurement is a full `run_dump` of the demo corpus into a fresh directory inside one shared Ray
session (so Ray's start is not counted), timed over the dispatch phase (first task sent to last
shard written). Reported per worker count: the median samples/s over the repeats; and the cost of
writing shards (PNG + tar encoding on the workers, file writes on the driver) as a fraction of
teacher time. Targets: 2 workers >= 1.7x one worker; shard writing <= 10% of teacher time. These
machines are shared, so the load average before and after is recorded with the numbers.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402

from bench.process_memory import ProcessPeakMemory  # noqa: E402
from pipeline.atomic import atomic_write_json  # noqa: E402
from teacher_dump.dump import DumpConfig, run_dump  # noqa: E402

SPEEDUP_TARGET = 1.7
WORKER_PROCESS = "ray::DumpWorker"  # Ray names actor processes ray::<class>
WRITE_FRACTION_TARGET = 0.10


def _one_run(config: DumpConfig) -> dict:
    with tempfile.TemporaryDirectory(prefix="et3d-bench-dump-") as tmp:
        report = run_dump(replace(config, out=Path(tmp)), Console(file=open(os.devnull, "w")), show_progress=False)  # noqa: SIM115
    if not report.ok:
        raise RuntimeError(f"benchmark dump failed: {report.failed}")
    teacher_s = sum(w.teacher_s for w in report.workers.values())
    encode_s = sum(w.encode_s for w in report.workers.values())
    return {
        "samples": report.samples_written,
        "samples_per_s": report.samples_written / report.dispatch_s,
        "teacher_s": teacher_s,
        "write_s": encode_s + report.write_s,
    }


def run_benchmark(
    prompts: Path = REPO / "data/prompts/demo.txt",
    samples: int = 4,
    resolution: int = 64,
    shard_size: int = 16,
    worker_counts: tuple[int, ...] = (1, 2),
    repeats: int = 3,
) -> dict:
    """Measure dump throughput per worker count; returns a JSON-ready dict (see the module docstring)."""
    import ray

    ray.init(num_cpus=max(worker_counts), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    load_before = os.getloadavg()[0]
    try:
        base = DumpConfig(prompts=prompts, samples=samples, resolution=resolution, shard_size=shard_size, workers=1)
        _one_run(replace(base, samples=1))  # warm-up: text encoder load, first imports in the workers
        with ProcessPeakMemory(WORKER_PROCESS) as workers_memory:
            runs = {n: [_one_run(replace(base, workers=n)) for _ in range(repeats)] for n in worker_counts}
    finally:
        ray.shutdown()
    per_workers = {
        str(n): {
            "samples_per_s": [round(r["samples_per_s"], 2) for r in rs],
            "median_samples_per_s": round(statistics.median(r["samples_per_s"] for r in rs), 2),
        }
        for n, rs in runs.items()
    }
    all_runs = [r for rs in runs.values() for r in rs]
    write_fraction = sum(r["write_s"] for r in all_runs) / sum(r["teacher_s"] for r in all_runs)
    one = statistics.median(r["samples_per_s"] for r in runs[min(worker_counts)])
    result = {
        "config": {
            "prompts": str(prompts.relative_to(REPO) if prompts.is_relative_to(REPO) else prompts),
            "samples_per_prompt": samples,
            "resolution": resolution,
            "shard_size": shard_size,
            "repeats": repeats,
            "teacher": base.teacher,
            "views": base.views,
        },
        "workers": per_workers,
        "seconds_per_sample_1_worker": round(1 / one, 5),
        "teacher_s_per_sample": round(sum(r["teacher_s"] for r in all_runs) / sum(r["samples"] for r in all_runs), 5),
        "write_fraction_of_teacher": round(write_fraction, 4),
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "cpu_count": os.cpu_count(),
        # Ray's workers are not this process's children: their peak is sampled from /proc while they run.
        "worker_peak_rss_mb": round(workers_memory.max_mb, 1),
        "worker_processes_seen": len(workers_memory.by_pid),
    }
    if 2 in runs and 1 in runs:
        speedup = statistics.median(r["samples_per_s"] for r in runs[2]) / one
        result["speedup_2_vs_1"] = round(speedup, 3)
        result["targets"] = {
            f"speedup >= {SPEEDUP_TARGET}": speedup >= SPEEDUP_TARGET,
            f"write <= {WRITE_FRACTION_TARGET:.0%} of teacher": write_fraction <= WRITE_FRACTION_TARGET,
        }
    return result


def main(
    out: Path = typer.Option(REPO / "bench/dump.json", help="Where to write the JSON (atomically)."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: 1 seed per prompt, 1 repeat."),
    repeats: int = typer.Option(3, help="Dumps per worker count (the median is reported)."),
    samples: int = typer.Option(4, help="Seeds per prompt of the demo corpus."),
) -> None:
    """Benchmark the procedural dump with 1 and 2 workers at 64 px."""
    t0 = time.perf_counter()
    result = run_benchmark(samples=1 if quick else samples, repeats=1 if quick else repeats)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out, result)
    typer.echo(f"wrote {out}: {result}")


if __name__ == "__main__":
    typer.run(main)
