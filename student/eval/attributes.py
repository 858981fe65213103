"""Oracle predictions of a generator's renders kept per sample: confusion matrices and per-prompt accuracy.

`oracle_accuracy` gives the three numbers training logs; the report also needs *which* colours and shapes
the student confuses and on which prompts, so this keeps the oracle's (colour, shape) prediction of every
sample of an `EvalSet`. Rendering is shared with `oracle_accuracy` (`render_eval_set`), so both score the same
images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from pipeline.procedural import COLOURS, SHAPES, AttributeOracle
from student.eval.confusion import ConfusionMatrix, confusion_matrix
from student.eval.oracle_accuracy import EvalSet, render_eval_set
from student.model.generator import TriplaneGenerator


@dataclass(frozen=True)
class AttributeResult:
    """The oracle's verdict on N samples of one evaluation set (N prompts, targets, predictions each)."""

    name: str
    prompts: Sequence[str]
    targets: Sequence[tuple[str, str]]  # (colour, shape) each sample should show
    predictions: Sequence[tuple[str, str]]  # (colour, shape) the oracle saw, possibly UNKNOWN

    def __post_init__(self) -> None:
        if not len(self.prompts) == len(self.targets) == len(self.predictions):
            raise ValueError(
                f"{len(self.prompts)} prompts, {len(self.targets)} targets, {len(self.predictions)} predictions"
            )

    @property
    def count(self) -> int:
        return len(self.prompts)

    @cached_property
    def colour(self) -> ConfusionMatrix:
        return confusion_matrix([t[0] for t in self.targets], [p[0] for p in self.predictions], tuple(COLOURS))

    @cached_property
    def shape(self) -> ConfusionMatrix:
        return confusion_matrix([t[1] for t in self.targets], [p[1] for p in self.predictions], SHAPES)

    @property
    def both(self) -> float:
        """Fraction of samples with colour and shape right."""
        right = sum(t == p for t, p in zip(self.targets, self.predictions, strict=True))
        return right / self.count if self.count else 0.0

    def per_prompt(self) -> dict[str, dict[str, float | int]]:
        """prompt -> colour and shape accuracy over its samples, and their count, in first-seen order."""
        out: dict[str, dict[str, float | int]] = {}
        for prompt, t, p in zip(self.prompts, self.targets, self.predictions, strict=True):
            entry = out.setdefault(prompt, {"colour": 0.0, "shape": 0.0, "count": 0})
            entry["colour"] += t[0] == p[0]
            entry["shape"] += t[1] == p[1]
            entry["count"] += 1
        for entry in out.values():
            entry["colour"] /= entry["count"]
            entry["shape"] /= entry["count"]
        return out

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "count": self.count,
            "prompts": len(set(self.prompts)),
            "colour_accuracy": self.colour.accuracy,
            "shape_accuracy": self.shape.accuracy,
            "both_accuracy": self.both,
            "colour_per_class": self.colour.per_class_accuracy(),
            "shape_per_class": self.shape.per_class_accuracy(),
            "colour_confusion": self.colour.to_json(),
            "shape_confusion": self.shape.to_json(),
            "per_prompt": self.per_prompt(),
        }


def subset(eval_set: EvalSet, sl: slice) -> EvalSet:
    """Samples `sl` of an evaluation set, as an evaluation set."""
    return dataclasses.replace(
        eval_set,
        prompts=eval_set.prompts[sl],
        targets=eval_set.targets[sl],
        emb=eval_set.emb[sl],
        z=eval_set.z[sl],
        c2w=eval_set.c2w[sl],
        fovy=eval_set.fovy[sl],
    )


def select(eval_set: EvalSet, keep: Sequence[bool]) -> EvalSet:
    """The samples of an evaluation set whose `keep` (N,) is true, in order, as an evaluation set."""
    if len(keep) != len(eval_set):
        raise ValueError(f"{len(keep)} flags for {len(eval_set)} samples")
    index = [i for i, k in enumerate(keep) if k]
    return dataclasses.replace(
        eval_set,
        prompts=tuple(eval_set.prompts[i] for i in index),
        targets=tuple(eval_set.targets[i] for i in index),
        emb=eval_set.emb[index],
        z=eval_set.z[index],
        c2w=eval_set.c2w[index],
        fovy=eval_set.fovy[index],
    )


def evaluate_attributes(
    G: TriplaneGenerator,
    eval_set: EvalSet,
    oracle: AttributeOracle | None = None,
    chunk: int = 8,
    progress: Callable[[int], None] | None = None,
) -> AttributeResult:
    """Render every sample of `eval_set` (deterministically, `chunk` at a time) and ask the oracle.

    `progress` is called with the number of samples done after each chunk.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    oracle = oracle or AttributeOracle()
    was_training = G.training
    G.eval()
    predictions: list[tuple[str, str]] = []
    try:
        for start in range(0, len(eval_set), chunk):
            part = subset(eval_set, slice(start, start + chunk))
            views = render_eval_set(G, part, chunk)  # (n, V, H, W, 3) uint8
            with torch.no_grad():
                predictions += oracle.predict(views, part.c2w, part.fovy)
            if progress is not None:
                progress(len(part))
    finally:
        G.train(was_training)
    return AttributeResult(eval_set.name, list(eval_set.prompts), list(eval_set.targets), predictions)
