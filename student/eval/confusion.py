"""Confusion matrices of the attribute oracle's predictions: rows are what a sample should show, columns what
the oracle saw, plus a last column for `UNKNOWN` (no foreground at all, e.g. an empty render)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.procedural import UNKNOWN


@dataclass(frozen=True)
class ConfusionMatrix:
    """counts[i, j] = samples of target classes[i] predicted as columns[j]; (K, K + 1) int64."""

    classes: tuple[str, ...]  # (K,) the target classes, in row order
    counts: np.ndarray  # (K, K + 1)

    def __post_init__(self) -> None:
        k = len(self.classes)
        if self.counts.shape != (k, k + 1):
            raise ValueError(f"counts must be ({k}, {k + 1}) for {k} classes, got {self.counts.shape}")

    @property
    def columns(self) -> tuple[str, ...]:
        """(K + 1,) the predicted classes: the targets, then `UNKNOWN`."""
        return (*self.classes, UNKNOWN)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def accuracy(self) -> float:
        """Fraction of samples predicted as their target; 0 for an empty matrix."""
        correct = int(np.trace(self.counts[:, :-1]))
        return correct / self.total if self.total else 0.0

    def per_class_accuracy(self) -> dict[str, float | None]:
        """Recall of each target class; None for a class with no sample."""
        rows = self.counts.sum(axis=1)
        return {c: (float(self.counts[i, i]) / int(rows[i]) if rows[i] else None) for i, c in enumerate(self.classes)}

    def to_json(self) -> dict:
        return {"rows": list(self.classes), "columns": list(self.columns), "counts": self.counts.tolist()}


def confusion_matrix(targets: Sequence[str], predictions: Sequence[str], classes: Sequence[str]) -> ConfusionMatrix:
    """Count (target, prediction) pairs; targets must be in `classes`, predictions in `classes` or `UNKNOWN`."""
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets for {len(predictions)} predictions")
    classes = tuple(classes)
    columns = (*classes, UNKNOWN)
    row = {c: i for i, c in enumerate(classes)}
    col = {c: j for j, c in enumerate(columns)}
    for what, labels, known in (("target", targets, row), ("prediction", predictions, col)):
        bad = sorted({x for x in labels if x not in known})
        if bad:
            raise ValueError(f"unknown {what} label(s) {', '.join(map(repr, bad))}; expected one of {', '.join(known)}")
    counts = np.zeros((len(classes), len(columns)), dtype=np.int64)
    np.add.at(counts, ([row[t] for t in targets], [col[p] for p in predictions]), 1)
    return ConfusionMatrix(classes, counts)
