"""`make bench`: every stage measured in one run, on one machine -> bench/results.json + bench/results.md.

Each stage's benchmark runs in its own process (so its peak memory is its own, read with `os.wait4`)
and writes its own JSON; this script gathers them, adds the machine details and the amortisation
ratio (teacher seconds per sample / student seconds per asset), the point of the method.

    .venv/bin/python bench/run_all.py            # full run (several minutes: the MVDream UNet is 867 M params)
    .venv/bin/python bench/run_all.py --quick    # smoke run of every stage with tiny settings
    .venv/bin/python bench/run_all.py --only data --merge   # rerun one stage, keep the others' figures
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.atomic import atomic_write_json, atomic_write_text  # noqa: E402

# stage name -> (script, extra arguments of a full run, extra arguments of a quick run); "{shards}" is
# replaced by a shard directory (data/shards when a dump is there, else a small dump made for the run).
STAGES: dict[str, tuple[str, list[str], list[str]]] = {
    "dump": ("bench/bench_dump.py", [], ["--quick"]),
    "student": ("bench/bench_student.py", ["--data", "{shards}"], ["--data", "{shards}", "--quick"]),
    "generate": ("bench/bench_generate.py", [], ["--repeats", "3", "--cold-runs", "1"]),
    "mvdream": ("bench/bench_mvdream.py", [], ["--quick"]),
    "data": ("bench/bench_data.py", [], ["--quick"]),
    "app": ("bench/bench_app.py", [], ["--repeats", "2"]),
}
DEMO_SHARDS = REPO / "data" / "shards"


def shard_dir(tmp: Path) -> Path:
    """The demo dump if `make dump` made one, else a small procedural dump (demo corpus, 4 seeds, 64 px)."""
    if (DEMO_SHARDS / "dataset.json").is_file():
        return DEMO_SHARDS
    from rich.console import Console

    from teacher_dump.dump import DumpConfig, run_dump

    out = tmp / "shards"
    config = DumpConfig(prompts=REPO / "data/prompts/demo.txt", out=out, samples=4, shard_size=32, workers=2)
    run_dump(config, Console(stderr=True), show_progress=False)
    return out


def run_stage(script: str, args: list[str], out: Path) -> tuple[dict, float, float, int]:
    """Run one benchmark script; returns (its JSON, wall seconds, peak RSS in MB, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(REPO / script), *args, "--out", str(out)], cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    peak_mb = usage.ru_maxrss / 1024  # Linux reports kilobytes
    result = json.loads(out.read_text()) if out.exists() else {}
    return result, seconds, peak_mb, proc.returncode


def machine() -> dict:
    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def amortisation(results: dict) -> dict:
    """Teacher seconds per 4-view sample over student seconds per asset, for each teacher we measured."""
    out = {}
    gen = results.get("generate", {}).get("results", {})
    student_s = {
        k: gen[k] / 1000 for k in ("text_to_triplanes_ms", "prompt_to_mesh_ms") if isinstance(gen.get(k), float | int)
    }
    teachers = {}
    mv = results.get("mvdream", {})
    if isinstance(mv.get("projected_s_per_sample"), float | int):
        teachers["mvdream_cpu_50_steps"] = mv["projected_s_per_sample"]
    dump = results.get("dump", {})
    if isinstance(dump.get("teacher_s_per_sample"), float | int):
        teachers["procedural"] = dump["teacher_s_per_sample"]
    for t_name, t_s in teachers.items():
        for s_name, s_s in student_s.items():
            out[f"{t_name} / {s_name}"] = round(t_s / s_s, 1) if s_s > 0 else None
    return out


# The numbers a reader looks for first: (stage, dotted key in its JSON, label, target or "").
HEADLINE = [
    ("mvdream", "step_s_median", "MVDream UNet, s per denoising step (CFG batch, 4 views, 256 px)", ""),
    ("mvdream", "projected_s_per_sample", "MVDream, s per 4-view sample at 50 steps (UNet only)", ""),
    ("mvdream", "samplers.ddim.s_per_sample", "MVDream, s per 4-view sample, DDIM 50 steps (UNet + updates)", ""),
    ("mvdream", "samplers.dpm++.s_per_sample", "MVDream, s per 4-view sample, DPM-Solver++ 20 steps", ""),
    ("mvdream", "peak_rss_gb", "MVDream process peak memory, GB", ""),
    ("dump", "teacher_s_per_sample", "procedural teacher, s per 4-view sample", ""),
    ("dump", "workers.1.median_samples_per_s", "dump, samples/s with 1 Ray worker", ""),
    ("dump", "workers.2.median_samples_per_s", "dump, samples/s with 2 Ray workers", ""),
    ("dump", "speedup_2_vs_1", "dump scaling, 2 workers / 1", ">= 1.7"),
    ("dump", "write_fraction_of_teacher", "shard writing / teacher time", "<= 0.10"),
    ("dump", "worker_peak_rss_mb", "dump, peak memory of one Ray worker, MB", ""),
    ("student", "train_step_s_median", "student train step (cpu preset, batch 16), s", ""),
    ("student", "loader_over_train", "loader samples/s / trainer samples/s", ">= 5"),
    ("data", "startup.before_full_scan_s", "trainer start-up at 20k samples, before (scan every tar), s", ""),
    ("data", "startup.after_index_s", "trainer start-up at 20k samples, after (indexes), s", ""),
    ("data", "startup_after_ratio_256_over_64", "start-up after, 256 px / 64 px views (same samples)", "~1"),
    ("data", "loader.all_4_views_workers_2_samples_per_s", "loader samples/s, all 4 views decoded (before)", ""),
    ("data", "loader.views_per_sample_1_workers_2_samples_per_s", "loader samples/s, 1 view decoded (after)", ""),
    ("generate", "results.text_encode_ms", "text encoding (bf16 MiniLM), ms", ""),
    ("generate", "results.forward_ms", "generator forward, embedding -> tri-planes, ms", ""),
    ("generate", "results.text_to_triplanes_ms", "text -> tri-planes, ms", "<= 8"),
    ("generate", "results.prompt_to_mesh_ms", "prompt -> mesh at grid 128, in process, ms", "<= 250"),
    ("generate", "results.cold_process_s", "cold `et3d-gen` process, s", "<= 3"),
    ("generate", "results.cold_peak_rss_mb", "cold `et3d-gen` peak memory, MB", "<= 1536"),
    (
        "app",
        "results.app_text_to_shown_mesh_ms",
        "web app: text -> mesh shown (GLB written), in process, ms",
        "<= 1000",
    ),
]


def _lookup(record: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


def _numbers(record: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested record, keyed by dotted path (machine details left out)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in ("machine", "targets", "setup", "config"):
            continue
        if isinstance(value, dict):
            out.update(_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, float | int) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


def to_markdown(report: dict) -> str:
    lines = [
        "# ET3D benchmark",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"torch {report['machine']['torch']}, {report['machine']['date']}",
        "",
    ]
    earlier = report.get("machine_of_stage") or {}
    if earlier:
        dates = sorted({m.get("date", "?") for m in earlier.values()})
        lines += [f"Stages {', '.join(sorted(earlier))} kept from an earlier run ({', '.join(dates)}).", ""]
    lines += ["| measured | value | target |", "|---|---|---|"]
    for stage, key, label, target in HEADLINE:
        value = _lookup(report["stages"].get(stage, {}), key)
        if isinstance(value, float | int) and not isinstance(value, bool):
            lines.append(f"| {label} | {value:.4g} | {target} |")
    lines += ["", "Amortisation (teacher seconds per sample / student seconds per asset):", ""]
    lines += [f"- {k}: {v}x" for k, v in report["amortisation"].items()] or ["- (not measured)"]
    lines += ["", "Every number:", "", "| stage | metric | value |", "|---|---|---|"]
    for stage, res in report["stages"].items():
        for key, value in sorted(_numbers(res).items()):
            lines.append(f"| {stage} | {key} | {value:.4g} |")
    lines += ["", "| stage | process wall s | peak RSS MB | exit |", "|---|---|---|---|"]
    for stage, p in report["processes"].items():
        lines.append(f"| {stage} | {p['seconds']:.1f} | {p['peak_rss_mb']:.0f} | {p['exit_code']} |")
    return "\n".join(lines) + "\n"


def main(
    quick: bool = typer.Option(False, "--quick", help="tiny settings for every stage (smoke run)"),
    only: list[str] = typer.Option(None, help=f"run only these stages ({', '.join(STAGES)})"),
    out: Path = typer.Option(REPO / "bench" / "results.json", help="where the gathered JSON goes (+ .md beside it)"),
    merge: bool = typer.Option(False, "--merge", help="keep the other stages' figures already in --out"),
) -> None:
    """Measure every stage in one run and write bench/results.json and bench/results.md."""
    stages = only or list(STAGES)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise typer.BadParameter(f"unknown stage(s) {unknown}; known: {', '.join(STAGES)}")
    report: dict = {"machine": machine(), "quick": quick, "stages": {}, "processes": {}}
    if merge and out.is_file():
        previous = json.loads(out.read_text())
        report["stages"] = previous.get("stages", {})
        report["processes"] = previous.get("processes", {})
        report["machine_of_stage"] = previous.get("machine_of_stage", {})
        for name in report["stages"]:  # stages measured earlier keep the machine details of their run
            report["machine_of_stage"].setdefault(name, previous.get("machine", {}))
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        shards = shard_dir(Path(tmp)) if "student" in stages else None
        for name in stages:
            script, full_args, quick_args = STAGES[name]
            args = [a.replace("{shards}", str(shards)) for a in (quick_args if quick else full_args)]
            typer.echo(f"== {name}: {script} {' '.join(args)}")
            result, seconds, peak, code = run_stage(script, args, Path(tmp) / f"{name}.json")
            report["stages"][name] = result
            report.setdefault("machine_of_stage", {}).pop(name, None)
            report["processes"][name] = {"seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1), "exit_code": code}
            if code != 0:
                failed.append(name)
    report["amortisation"] = amortisation(report["stages"])
    atomic_write_json(out, report)
    atomic_write_text(out.with_suffix(".md"), to_markdown(report))
    typer.echo(to_markdown(report))
    typer.echo(f"wrote {out} and {out.with_suffix('.md')}")
    if failed:
        typer.echo(f"FAILED stages: {', '.join(failed)}", err=True)
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
