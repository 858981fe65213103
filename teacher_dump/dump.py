"""The Ray dump driver: corpus -> validated shard plan -> one actor per worker -> shards + manifest.

Order of work, so that a bad input fails before anything is written:
1. read and validate the corpus (`pipeline.prompts`), plan the shards (`plan.py`);
2. validate the prompts with the teacher: in the driver for CPU teachers, which are cheap to build,
   in the first actor for GPU teachers, whose weights the driver never loads;
3. check the output directory against the options of an earlier run (`dataset.json`);
4. embed every prompt once with the text encoder, driver side;
5. one task per unfinished shard; the driver writes each returned shard atomically and records it in
   the manifest. A task that fails is retried on any worker; a dead actor is replaced by a fresh one.
   A shard that fails `max_attempts` times is reported and the others still complete.
Local Ray is started quietly with exactly the CPUs asked for; with RAY_ADDRESS set the driver joins
that cluster instead (the package must be importable on its nodes; the output directory need not be
shared, since only the driver writes).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from pipeline.atomic import TMP_PREFIX
from pipeline.prompts import read_corpus
from pipeline.shard_index import index_path, write_index
from pipeline.shards import DATASET_INFO, MANIFEST_NAME, Manifest, write_dataset_info, write_shard_bytes
from pipeline.text import TextEncoder, load_text_encoder
from teacher_dump.plan import ShardPlan, plan_digest, plan_shards
from teacher_dump.report import DumpReport, FailedShard, WorkerStats, make_progress, print_summary
from teacher_dump.teachers import base as teacher_base
from teacher_dump.worker import DumpWorker, ShardResult, ShardTask, describe_teacher

# dataset.json fields that must match for a rerun to add shards to an existing directory.
_RESUME_FIELDS = ("teacher", "teacher_config_hash", "text_encoder", "text_dim", "plan_digest")


class DumpError(Exception):
    """Bad options, prompts or output directory, found before any shard was written."""


@dataclass(frozen=True)
class DumpConfig:
    prompts: Path
    out: Path = Path("data/shards")
    teacher: str = "procedural"
    teacher_options: tuple[tuple[str, object], ...] = ()  # extra teacher kwargs, e.g. (("path", "/m"),)
    samples: int = 4  # seeds per prompt
    views: int = 4
    resolution: int = 64
    workers: int = 2
    shard_size: int = 64
    batch_size: int = 8  # (prompt, seed) pairs per teacher call
    text_encoder: str = "minilm"
    text_encoder_path: str | None = None
    seed_offset: int = 0
    overwrite: bool = False
    max_attempts: int = 3
    cpus_per_worker: int = 1

    def __post_init__(self) -> None:
        for name in ("samples", "views", "resolution", "workers", "shard_size", "batch_size", "max_attempts"):
            if getattr(self, name) < 1:
                raise DumpError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cpus_per_worker < 1 or self.seed_offset < 0:
            raise DumpError(f"need cpus_per_worker >= 1 and seed_offset >= 0, got {self}")

    def teacher_kwargs(self) -> dict:
        return {"num_views": self.views, "resolution": self.resolution, **dict(self.teacher_options)}


def teacher_uses_gpu(name: str) -> bool:
    # Read from the class, without building the teacher (MVDream's weights stay on the workers).
    try:
        cls = teacher_base.teacher_class(name)
    except ValueError as e:
        raise DumpError(str(e)) from e
    return bool(getattr(cls, "uses_gpu", False))


def load_plan(config: DumpConfig) -> tuple[list[str], list[ShardPlan]]:
    """The corpus's prompts and the shard plan; CorpusError lists every bad line."""
    corpus = read_corpus(config.prompts)
    try:
        plans = plan_shards(corpus.prompts, config.samples, config.shard_size, config.seed_offset)
    except ValueError as e:
        raise DumpError(str(e)) from e
    return corpus.prompts, plans


def validate_locally(config: DumpConfig, prompts: list[str]) -> dict:
    """Build the teacher in this process, validate the prompts and return its description."""
    teacher = _build(lambda: teacher_base.build_teacher(config.teacher, **config.teacher_kwargs()), config)
    _validate(teacher.validate_prompts, prompts)
    return describe_teacher(teacher)


def _build(factory: Callable, config: DumpConfig):
    try:
        return factory()
    except TypeError as e:
        raise DumpError(f"teacher {config.teacher!r} rejected its options {config.teacher_kwargs()}: {e}") from e


def _validate(validate: Callable[[list[str]], None], prompts: list[str]) -> None:
    try:
        validate(prompts)
    except ValueError as e:
        raise DumpError(str(e)) from e


def _start_ray(config: DumpConfig, wants_gpu: bool, console: Console) -> tuple[bool, bool]:
    """Start or join Ray unless this process already has a session.

    Returns (started here, actors get a GPU each). A GPU teacher gets one GPU per actor when the
    cluster has GPUs (and `device` is not forced to cpu); on a cluster without any it runs on CPU.
    """
    import ray

    started = False
    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "logging_level": "ERROR"}
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], **quiet)
        else:
            ray.init(num_cpus=config.workers * config.cpus_per_worker, include_dashboard=False, **quiet)
        started = True
    have = ray.cluster_resources()
    forced_cpu = str(dict(config.teacher_options).get("device", "")).startswith("cpu")
    gpu = wants_gpu and not forced_cpu and have.get("GPU", 0) > 0
    if wants_gpu and not gpu and not forced_cpu:
        console.print(f"[yellow]no GPU in the Ray cluster: teacher {config.teacher!r} runs on CPU in fp32 (slow)")
    need = {"CPU": config.workers * config.cpus_per_worker, **({"GPU": config.workers} if gpu else {})}
    short = {k: f"need {v}, have {have.get(k, 0)}" for k, v in need.items() if have.get(k, 0) < v}
    if short:
        if started:
            ray.shutdown()
        raise DumpError(f"Ray cannot host {config.workers} worker(s): {short}")
    return started, gpu


def _start_actors(config: DumpConfig, actor_cls) -> list:
    """One actor per worker, each with its teacher built (a teacher that fails to load fails here)."""
    import ray
    from ray.exceptions import RayActorError

    actors = [
        actor_cls.remote(config.teacher, config.teacher_kwargs(), config.cpus_per_worker) for _ in range(config.workers)
    ]
    try:
        ray.get([a.describe.remote() for a in actors])
    except RayActorError as e:
        raise DumpError(f"teacher {config.teacher!r} failed to start on a worker: {e}") from e
    return actors


def _prepare_out_dir(config: DumpConfig, info: dict) -> None:
    """Remove crash leftovers (and, with --overwrite, the previous dump); refuse a mismatched rerun."""
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    # Temp files of a write killed half-way: only this dump writes here, and it is not running yet.
    for leftover in out.glob(f"{TMP_PREFIX}*"):
        leftover.unlink()
    info_path = out / DATASET_INFO
    if config.overwrite:
        for old in [*out.glob("shard-*.tar"), *out.glob("shard-*.index.json"), out / MANIFEST_NAME, info_path]:
            old.unlink(missing_ok=True)
    elif info_path.exists():
        previous = json.loads(info_path.read_text("utf-8"))
        changed = [k for k in _RESUME_FIELDS if previous.get(k) != info.get(k)]
        if changed:
            diff = ", ".join(f"{k}: {previous.get(k)!r} -> {info.get(k)!r}" for k in changed)
            raise DumpError(f"{out} holds a dump made with other options ({diff}); pass --overwrite or another --out")
    write_dataset_info(out, info)


@functools.lru_cache(maxsize=2)
def _text_encoder(name: str, path: str | None) -> TextEncoder:
    # Kept per process: a benchmark or test suite running several dumps loads the model once.
    return load_text_encoder(name, path)


def _embed(config: DumpConfig, prompts: list[str]) -> tuple[str, dict[str, np.ndarray]]:
    """Encoder name and prompt -> (D,) float32 pooled embedding, each unique prompt encoded once."""
    encoder = _text_encoder(config.text_encoder, config.text_encoder_path)
    table: dict[str, np.ndarray] = {}
    unique = sorted(set(prompts))
    for start in range(0, len(unique), 64):
        batch = unique[start : start + 64]
        pooled = encoder.encode(batch).pooled.float().numpy()  # (b, D)
        table.update(zip(batch, pooled, strict=True))
    return encoder.name, table


def run_dump(config: DumpConfig, console: Console | None = None, show_progress: bool = True) -> DumpReport:
    """Run (or resume) a dump; see the module docstring. Raises DumpError or CorpusError on bad inputs."""
    import ray

    console = console or Console(stderr=True)
    t_start = time.perf_counter()
    prompts, plans = load_plan(config)
    wants_gpu = teacher_uses_gpu(config.teacher)
    described = None if wants_gpu else validate_locally(config, prompts)
    # A CPU teacher is described here, so what is left to do is known before Ray starts: a rerun of a
    # finished dump then only checks it. A GPU teacher is described by its first actor.
    report = None
    if described is not None:
        todo, tasks, report = _resume(config, prompts, plans, described)
        if not todo:
            return _finish(report, t_start, console)
    started, gpu = _start_ray(config, wants_gpu, console)
    try:
        actor_cls = ray.remote(num_cpus=config.cpus_per_worker, num_gpus=1 if gpu else 0, max_restarts=0)(DumpWorker)
        actors = _start_actors(config, actor_cls)
        if report is None:
            _validate(lambda p: ray.get(actors[0].validate.remote(p)), prompts)
            todo, tasks, report = _resume(config, prompts, plans, ray.get(actors[0].describe.remote()))
        if todo:
            _dispatch(config, actors, actor_cls, todo, tasks, report, console, show_progress)
    finally:
        if started:
            ray.shutdown()
    return _finish(report, t_start, console)


def _resume(
    config: DumpConfig, prompts: list[str], plans: list[ShardPlan], described: dict
) -> tuple[list[ShardPlan], dict[str, ShardTask], DumpReport]:
    """Embed the prompts, check the out dir against this dump's settings, and list the shards left to write."""
    encoder_name, embeddings = _embed(config, prompts)
    info = {
        "teacher": described["name"],
        "teacher_config": described["config"],
        "teacher_config_hash": described["hash"],
        "text_encoder": encoder_name,
        "text_encoder_path": config.text_encoder_path,
        "text_dim": int(next(iter(embeddings.values())).shape[0]),
        "cameras": described.get("cameras"),
        "num_views": config.views,
        "resolution": config.resolution,
        "samples_per_prompt": config.samples,
        "seed_offset": config.seed_offset,
        "shard_size": config.shard_size,
        "num_prompts": len(prompts),
        "num_shards": len(plans),
        "plan_digest": plan_digest(plans),
    }
    _prepare_out_dir(config, info)
    finished = Manifest(config.out).finished()
    todo = [p for p in plans if sorted(finished.get(p.name, [])) != sorted(p.keys)]
    report = DumpReport(str(config.out), planned_shards=len(plans), skipped_shards=len(plans) - len(todo))
    tasks = {
        p.name: ShardTask(
            p.name,
            p.keys,
            p.prompts,
            p.seeds,
            np.stack([embeddings[q] for q in p.prompts]),  # (N, D)
            encoder_name,
            config.batch_size,
        )
        for p in todo
    }
    return todo, tasks, report


def _finish(report: DumpReport, t_start: float, console: Console) -> DumpReport:
    report.seconds = time.perf_counter() - t_start
    print_summary(report, console)
    return report


def _dispatch(
    config: DumpConfig,
    actors: list,
    actor_cls,
    todo: list[ShardPlan],
    tasks: dict[str, ShardTask],
    report: DumpReport,
    console: Console,
    show_progress: bool,
) -> None:
    """Keep every actor busy with one shard until all are written or given up on."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    manifest = Manifest(config.out)
    queue = deque((plan, 1) for plan in todo)
    idle = list(range(len(actors)))
    in_flight: dict = {}  # ObjectRef -> (actor slot, plan, attempt)
    t_start = time.perf_counter()
    with make_progress(console, show_progress) as progress:
        bar = progress.add_task("dump", total=sum(len(p) for p in todo))
        while queue or in_flight:
            while queue and idle:
                plan, attempt = queue.popleft()
                slot = idle.pop()
                in_flight[actors[slot].run_shard.remote(tasks[plan.name])] = (slot, plan, attempt)
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            slot, plan, attempt = in_flight.pop(ref)
            idle.append(slot)
            try:
                result: ShardResult = ray.get(ref)
            except (RayTaskError, RayActorError) as e:
                if isinstance(e, RayActorError):
                    # The process died (crash, OOM, lost node): the slot gets a fresh actor.
                    ray.kill(actors[slot], no_restart=True)
                    actors[slot] = actor_cls.remote(config.teacher, config.teacher_kwargs(), config.cpus_per_worker)
                if attempt < config.max_attempts:
                    queue.append((plan, attempt + 1))
                    continue
                lines = str(e).strip().splitlines()
                report.failed.append(
                    FailedShard(plan.name, plan.prompts, plan.seeds, attempt, lines[-1] if lines else repr(e))
                )
                progress.advance(bar, len(plan))
                continue
            t0 = time.perf_counter()
            write_shard_bytes(config.out / plan.name, result.data)
            write_index(index_path(config.out / plan.name), result.index)
            manifest.record(plan.name, result.keys)
            report.write_s += time.perf_counter() - t0
            stats = report.workers.setdefault(result.worker, WorkerStats())
            stats.shards += 1
            stats.samples += len(result.keys)
            stats.teacher_s += result.teacher_s
            stats.encode_s += result.encode_s
            report.written_shards += 1
            report.samples_written += len(result.keys)
            progress.advance(bar, len(plan))
    report.dispatch_s = time.perf_counter() - t_start
