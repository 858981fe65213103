"""Data at scale: trainer start-up (learning the dataset) and loader throughput on a 20,000-sample dump.

    python bench/bench_data.py [--samples 20000] [--out bench/data.json]

The dump is synthetic, made for the measurement: a small pool of real procedural samples (64 px, 4 views)
is relabelled with distinct (prompt, seed) keys over the demo corpus and written through the shard writer
(`pipeline.shards.write_shard`, which writes each shard's index too) into shards of 64 samples; embeddings
are random stand-ins (no text encoder is loaded). The views repeat, which changes nothing measured here:
start-up reads no view, and PNG decoding costs the same for a repeated image. So that writing 20,000
samples takes minutes, not tens of minutes, the bench memoises the writer's PNG encoding of a repeated
view (the bytes written are the writer's own).

Measured, each the median of a few repeats with a warm page cache:
- start-up before: what the trainer did at each start until now, a pass over every byte of every tar reading
  each sample's text, json and embedding (the former `scan_shards`, kept here as the baseline);
- start-up after: `pipeline.dataset.describe_dataset`, which reads `dataset.json` and one index per shard;
- the same two on smaller dumps (`--small-samples`) at 64 px and at 256 px (16x the view pixels): start-up
  after must not grow with the bytes in the shards;
- loader samples/s (`pipeline.shard_reader.make_loader`, in process and with 2 loader workers) decoding all
  4 views of a sample (before) and only the one a step of the `cpu` preset uses (after).
The machine is shared: its load average is recorded beside the numbers.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.atomic import atomic_write_json  # noqa: E402
from pipeline.dataset import describe_dataset  # noqa: E402
from pipeline.prompts import prompt_id, read_corpus  # noqa: E402
from pipeline.shard_index import INDEX_SUFFIX  # noqa: E402
from pipeline.shard_reader import iter_tar_groups, make_loader  # noqa: E402
from pipeline.shards import (  # noqa: E402
    EMB,
    META,
    SHARD_PATTERN,
    TEXT,
    ShardSample,
    list_shards,
    make_sample_meta,
    sample_key,
    write_dataset_info,
    write_shard,
)
from teacher_dump.teachers.procedural import ProceduralTeacher  # noqa: E402

TEXT_DIM = 384  # MiniLM's width, so the indexes hold as many bytes per prompt as a real dump's
SHARD_SIZE = 64
POOL = 16


def make_pool(resolution: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """POOL real procedural samples (views, cameras, fovy); views above 64 px are upscaled from 64 px."""
    teacher = ProceduralTeacher(resolution=64, supersample=1)
    prompts = read_corpus(REPO / "data/prompts/demo.txt").prompts
    out = teacher.generate([prompts[i % len(prompts)] for i in range(POOL)], list(range(POOL)))
    views = out.views
    if resolution != 64:
        views = np.stack(
            [np.stack([np.asarray(Image.fromarray(v).resize((resolution, resolution))) for v in s]) for s in views]
        )
    return [(views[i], out.cameras[i], out.fovy[i]) for i in range(POOL)]


def _memoise_png_encoding() -> None:
    import pipeline.shards as shards

    encode, cache = shards._png_bytes, {}

    def memoised(img: np.ndarray) -> bytes:
        key = (img.shape, img.tobytes())
        if key not in cache:
            cache[key] = encode(img)
        return cache[key]

    shards._png_bytes = memoised


def write_synthetic_dump(directory: Path, samples: int, resolution: int) -> dict:
    """`samples` distinct keys over the demo prompts, views drawn from the pool; returns sizes and seconds."""
    started = time.perf_counter()
    directory.mkdir(parents=True)
    prompts = read_corpus(REPO / "data/prompts/demo.txt").prompts
    rng = np.random.default_rng(0)
    emb = {p: rng.standard_normal(TEXT_DIM).astype(np.float32) for p in prompts}
    pool = make_pool(resolution)
    write_dataset_info(
        directory,
        {"teacher": "procedural", "text_encoder": "synthetic", "text_dim": TEXT_DIM, "num_views": 4,
         "resolution": resolution, "cameras": {"elevation_range": [0.0, 30.0], "radius": 2.7, "fovy_deg": 40.0}},
    )  # fmt: skip
    batch: list[ShardSample] = []
    for i in range(samples):
        prompt, seed = prompts[i % len(prompts)], i // len(prompts)
        views, cameras, fovy = pool[i % POOL]
        meta = make_sample_meta(
            prompt, seed, teacher="procedural", teacher_config_hash="synthetic", text_encoder="synthetic",
            text_dim=TEXT_DIM, num_views=4, resolution=resolution,
        )  # fmt: skip
        batch.append(
            ShardSample(sample_key(prompt_id(prompt), seed), prompt, seed, views, cameras, fovy, emb[prompt], meta)
        )
        if len(batch) == SHARD_SIZE or i == samples - 1:
            write_shard(directory / SHARD_PATTERN.format(index=i // SHARD_SIZE), batch)
            batch = []
    shards = list_shards(directory)
    return {
        "samples": samples,
        "shards": len(shards),
        "resolution": resolution,
        "tar_mb": round(sum(p.stat().st_size for p in shards) / 2**20, 1),
        "index_mb": round(sum(p.stat().st_size for p in directory.glob(f"*{INDEX_SUFFIX}")) / 2**20, 2),
        "write_s": round(time.perf_counter() - started, 1),
    }


def full_scan(shards: list[Path]) -> int:
    """The start-up before indexes: every sample's text, json and embedding, read from every tar."""
    embeddings: dict[str, np.ndarray] = {}
    count = 0
    for path in shards:
        for _, group in iter_tar_groups(path):
            json.loads(group[META])
            embeddings.setdefault(group[TEXT].decode("utf-8"), np.load(io.BytesIO(group[EMB]), allow_pickle=False))
            count += 1
    return count


def median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)


def startup(directory: Path, repeats: int) -> dict:
    shards = list_shards(directory)
    assert describe_dataset(directory).num_samples == full_scan(shards)
    before = median_s(lambda: full_scan(shards), repeats)
    after = median_s(lambda: describe_dataset(directory), repeats)
    return {"before_full_scan_s": before, "after_index_s": after, "speedup": round(before / after, 1)}


def loader_rate(shards: list[Path], views: int | None, workers: int, samples: int) -> float:
    """Samples per second of one loader pass over the first `samples` samples of `shards`."""
    subset = shards[: max(1, samples // SHARD_SIZE)]
    start = time.perf_counter()
    seen = sum(len(b) for b in make_loader(subset, 32, num_workers=workers, views_per_sample=views, drop_last=False))
    return round(seen / (time.perf_counter() - start), 1)


def run_benchmark(samples: int, small_samples: int, loader_samples: int, repeats: int) -> dict:
    _memoise_png_encoding()
    result: dict = {"load_average_1min": os.getloadavg()[0], "setup": {"synthetic": True, "shard_size": SHARD_SIZE}}
    with tempfile.TemporaryDirectory(prefix="et3d-bench-data-") as tmp:
        big = Path(tmp) / "big"
        result["setup"]["big"] = write_synthetic_dump(big, samples, 64)
        result["startup"] = startup(big, repeats)
        shards = list_shards(big)
        result["loader"] = {
            f"{name}_workers_{w}_samples_per_s": loader_rate(shards, views, w, loader_samples)
            for w in (0, 2)
            for name, views in (("all_4_views", None), ("views_per_sample_1", 1))
        }
        for w in (0, 2):
            loader = result["loader"]
            loader[f"speedup_workers_{w}"] = round(
                loader[f"views_per_sample_1_workers_{w}_samples_per_s"]
                / loader[f"all_4_views_workers_{w}_samples_per_s"],
                2,
            )
        shutil.rmtree(big)
        for res in (64, 256):
            small = Path(tmp) / f"small{res}"
            result["setup"][f"small_{res}px"] = write_synthetic_dump(small, small_samples, res)
            result[f"startup_small_at_{res}px"] = startup(small, repeats)
        a, b = (result[f"startup_small_at_{r}px"] for r in (64, 256))
        result["bytes_ratio_256_over_64"] = round(
            result["setup"]["small_256px"]["tar_mb"] / result["setup"]["small_64px"]["tar_mb"], 1
        )
        result["startup_after_ratio_256_over_64"] = round(b["after_index_s"] / a["after_index_s"], 2)
        result["startup_before_ratio_256_over_64"] = round(b["before_full_scan_s"] / a["before_full_scan_s"], 2)
    result["load_average_1min_end"] = os.getloadavg()[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20_000, help="samples in the large dump (default 20000)")
    parser.add_argument("--small-samples", type=int, default=1280, help="samples of the 64 px vs 256 px dumps")
    parser.add_argument("--loader-samples", type=int, default=2048, help="samples per loader measurement")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each start-up timing (median)")
    parser.add_argument("--quick", action="store_true", help="2,000 samples, 256 small, 512 per loader pass, 1 repeat")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "data.json")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.small_samples, args.loader_samples, args.repeats = 2000, 256, 512, 1
    result = run_benchmark(args.samples, args.small_samples, args.loader_samples, args.repeats)
    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
