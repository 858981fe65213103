"""Metric math on constructions with known answers: confusion counts, pixel diversity, CLIP score and R-precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.procedural import SHAPES, UNKNOWN
from student.eval.attributes import AttributeResult
from student.eval.clip_metrics import clip_metrics, clip_score, cosine_similarities, r_precision
from student.eval.confusion import confusion_matrix
from student.eval.diversity import mean_pairwise_distance


def test_confusion_counts_and_accuracy() -> None:
    classes = ("cube", "sphere", "cone")
    targets = ["cube", "cube", "cube", "sphere", "sphere", "cone"]
    predictions = ["cube", "sphere", UNKNOWN, "sphere", "sphere", "cube"]
    m = confusion_matrix(targets, predictions, classes)
    expected = np.array([[1, 1, 0, 1], [0, 2, 0, 0], [1, 0, 0, 0]])
    assert m.columns == ("cube", "sphere", "cone", UNKNOWN)
    np.testing.assert_array_equal(m.counts, expected)
    assert m.total == 6
    assert m.accuracy == pytest.approx(3 / 6)
    assert m.per_class_accuracy() == pytest.approx({"cube": 1 / 3, "sphere": 1.0, "cone": 0.0})


def test_confusion_rejects_unknown_classes() -> None:
    with pytest.raises(ValueError, match="torus"):
        confusion_matrix(["cube"], ["torus"], ("cube", "sphere"))
    with pytest.raises(ValueError, match="2 targets for 1"):
        confusion_matrix(["cube", "cube"], ["cube"], ("cube",))


def test_attribute_result_scores() -> None:
    result = AttributeResult(
        name="train",
        prompts=["a red cube", "a red cube", "a blue torus"],
        targets=[("red", "cube"), ("red", "cube"), ("blue", "torus")],
        predictions=[("red", "cube"), ("red", "sphere"), ("green", "torus")],
    )
    assert result.colour.accuracy == pytest.approx(2 / 3)
    assert result.shape.accuracy == pytest.approx(2 / 3)
    assert result.both == pytest.approx(1 / 3)
    assert result.shape.counts[SHAPES.index("cube"), SHAPES.index("sphere")] == 1
    assert result.per_prompt()["a red cube"] == {"colour": 1.0, "shape": 0.5, "count": 2}


def test_mean_pairwise_distance() -> None:
    black, white = torch.zeros(2, 4, 4, 3, dtype=torch.uint8), torch.full((2, 4, 4, 3), 255, dtype=torch.uint8)
    assert mean_pairwise_distance(torch.stack([black, white])) == pytest.approx(1.0)
    assert mean_pairwise_distance(torch.stack([white, white, white])) == 0.0
    # Pairs (black, white) 1, (black, black) 0, (white, black) 1 -> 2/3.
    assert mean_pairwise_distance(torch.stack([black, white, black])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        mean_pairwise_distance(black[None])


def test_clip_metrics_on_identical_embeddings_are_perfect() -> None:
    text = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 4, 2])
    images = text[labels] * 3.0  # the same directions, another norm: cosine ignores it
    result = clip_metrics(images, labels, [f"p{i}" for i in range(5)], text)
    assert result.r_precision == 1.0
    assert result.score == pytest.approx(1.0, abs=1e-6)
    assert result.per_prompt_score["p2"] == pytest.approx(1.0, abs=1e-6)


def test_r_precision_counts_misses_and_ties() -> None:
    text = torch.eye(3)  # three orthogonal prompts
    images = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.2, 0.0], [0.0, 1.0, 1.0]])
    labels = torch.tensor([0, 1, 2])
    sim = cosine_similarities(images, text)
    # Image 0 ranks its prompt first; image 1 prefers prompt 0; image 2 ties prompts 1 and 2: a miss.
    assert r_precision(sim, labels) == pytest.approx(1 / 3)
    expected_score = (1.0 + 0.2 / np.hypot(1.0, 0.2) + 1 / np.sqrt(2)) / 3
    assert clip_score(sim, labels) == pytest.approx(expected_score, rel=1e-5)
    assert r_precision(sim, torch.tensor([2, 2, 0])) == 0.0  # every image under a prompt it does not match
