"""`stats.jsonl`: one JSON object per line (training losses, timings, evaluations), appended and flushed."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path


class StatsWriter:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def write(self, record: dict[str, float | int | str]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


class RunningMeans:
    """Means of named scalars since the last `pop`, for one log line per `log_every` steps."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] += v
            self.counts[k] += 1

    def pop(self) -> dict[str, float]:
        means = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        return means


def read_stats(path: Path) -> list[dict]:
    """All records of a stats file (for tests and reports)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def first_non_finite(values: dict[str, float]) -> tuple[str, float] | None:
    for k, v in values.items():
        if not math.isfinite(v):
            return k, v
    return None
