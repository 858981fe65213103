"""The oracle evaluations a training run logged in its `stats.jsonl` (`student/train/monitor.py`).

Each `eval` record carries `step` and `<set>/colour`, `<set>/shape`, `<set>/count` for the sets `train` and
`heldout`. The log is appended while training runs, so a last line cut by a crash is skipped and counted,
never fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SERIES_SUFFIXES = ("/colour", "/shape")


@dataclass(frozen=True)
class TrainingLog:
    evals: tuple[dict, ...]  # the `eval` records, in file order
    skipped_lines: int = 0  # lines that were not JSON objects

    @property
    def last_eval(self) -> dict | None:
        return self.evals[-1] if self.evals else None

    def series(self, x: str = "step") -> dict[str, list[tuple[float, float]]]:
        """'train/colour' -> [(x, accuracy)] for every accuracy the records hold, in first-seen key order; x is the
        step, or with x="minutes" the training wall-clock in minutes (records without `wall_s` are left out)."""
        if x not in ("step", "minutes"):
            raise ValueError(f"x must be 'step' or 'minutes', got {x!r}")
        out: dict[str, list[tuple[float, float]]] = {}
        for record in self.evals:
            if x == "minutes" and not isinstance(record.get("wall_s"), int | float):
                continue
            at = int(record["step"]) if x == "step" else float(record["wall_s"]) / 60
            for key, value in record.items():
                if key.endswith(SERIES_SUFFIXES) and isinstance(value, int | float):
                    out.setdefault(key, []).append((at, float(value)))
        return out


def read_training_log(path: Path | None) -> TrainingLog:
    """The eval records of `path`; an empty log when there is no such file."""
    if path is None or not path.is_file():
        return TrainingLog(())
    evals, skipped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if not isinstance(record, dict):
            skipped += 1
        elif record.get("kind") == "eval" and isinstance(record.get("step"), int):
            evals.append(record)
    return TrainingLog(tuple(evals), skipped)
