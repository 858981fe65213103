"""Student speed: train step time, loader throughput against the trainer's consumption, text -> tri-planes.

    python bench/bench_student.py --data data/shards/demo [--preset cpu] [--out bench/student.json]

- train step: median seconds of `Trainer.step` (G step + D step, R1 and density regularisation at their
  lazy intervals) on batches fetched beforehand, so loading is not counted;
- loader: samples per second of the trainer's own `BatchStream` (its loader processes included) over a few
  epochs' worth of batches, and its ratio to the samples per second a training step consumes (target >= 5);
- text -> tri-planes: median time of one `TriplaneGenerator.planes` forward pass at batch 1 (the paper's
  headline quantity), plus a 4-view render of the result at the output resolution.

Timings are medians after warm-up; the machine's load average is recorded because these machines are shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from pipeline.atomic import atomic_write_json
from pipeline.cameras import orbit_cameras
from student.presets import get_preset
from student.train.batch_stream import BatchStream
from student.train.plan import make_plan
from student.train.trainer import Trainer


def _median_seconds(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_benchmark(
    data: Path,
    preset: str = "cpu",
    steps: int = 20,
    warmup: int = 3,
    loader_batches: int = 60,
    forward_repeats: int = 50,
) -> dict:
    """Measure the three quantities on `data` (a shard directory) with `preset`; returns a JSON-ready dict."""
    plan = make_plan(data=data, out=Path("/nonexistent-bench-out"), preset=preset, overrides=[], resume=False)
    trainer = Trainer(plan, progress_bar=False)
    batch_size = plan.config.optim.batch_size

    stream = iter(trainer.stream)
    batches = [next(stream) for _ in range(min(steps + warmup, 8))]
    step_index = iter(range(10**9))

    def one_step() -> None:
        i = next(step_index)
        trainer.step(batches[i % len(batches)], i)

    step_s = _median_seconds(one_step, steps, warmup)

    loader = iter(BatchStream(trainer.stream.shards, batch_size, seed=1, num_workers=plan.config.data.num_workers))
    next(loader)  # worker start-up is paid once per epoch; count steady-state throughput
    start = time.perf_counter()
    for _ in range(loader_batches):
        next(loader)
    loader_sps = loader_batches * batch_size / (time.perf_counter() - start)
    train_sps = batch_size / step_s

    G = trainer.G_ema
    emb = plan.dataset.embeddings[:1]
    z = G.sample_z(1, torch.Generator().manual_seed(0))
    cams = orbit_cameras(4, 15.0)
    c2w, fovy = cams.c2w[None], cams.fovy_deg[None]
    with torch.no_grad():
        planes_s = _median_seconds(lambda: G.planes(emb, z), forward_repeats, 5)
        planes = G.planes(emb, z)
        render_s = _median_seconds(lambda: G.render(planes, c2w, fovy), max(3, forward_repeats // 10), 1)
    return {
        "preset": preset,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "batch_size": batch_size,
        "train_step_s_median": round(step_s, 4),
        "train_samples_per_s": round(train_sps, 2),
        "loader_samples_per_s": round(loader_sps, 2),
        "loader_workers": plan.config.data.num_workers,
        "loader_over_train": round(loader_sps / train_sps, 2),
        "text_to_planes_ms_median": round(planes_s * 1000, 3),
        "render_4_views_ms_median": round(render_s * 1000, 2),
        "render_resolution": plan.config.generator.superres.output_resolution,
        "generator_params": sum(p.numel() for p in G.parameters()),
        "discriminator_params": sum(p.numel() for p in trainer.D.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="shard directory")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="smoke run: few steps, batches and repeats")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "student.json")
    args = parser.parse_args()
    get_preset(args.preset)  # fail fast on a bad name
    if args.quick:
        result = run_benchmark(args.data, args.preset, steps=3, warmup=1, loader_batches=5, forward_repeats=10)
    else:
        result = run_benchmark(args.data, args.preset, steps=args.steps)
    atomic_write_json(args.out, result)
    for k, v in result.items():
        print(f"{k:28s} {v}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
