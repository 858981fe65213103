"""Is a prompt within reach of what the generator was trained on? Its nearest training prompt by text embedding.

A checkpoint records its training prompts and their embeddings (`student/run_layout.py`). A prompt whose pooled
embedding has cosine similarity below `REACH_THRESHOLD` to every one of them is far from anything the generator
learned, and generation warns, naming the nearest training prompt and the similarity.

The threshold is measured with minilm against the 40 demo prompts (data/prompts/demo.txt): the nearest other
training prompt of a training prompt is at 0.72-0.86, every held-out colour x shape pair (new combinations of known
words) at 0.70-0.85, while every unseen wording of data/prompts/unseen.tsv (synonyms: "a scarlet box") lies at
0.30-0.62 and unrelated prompts ("a teapot", "a red sports car", "a green dragon") at 0.19-0.60. 0.65 separates
the first two groups from the last two; et3d-eval's report shows how the student does on unseen wordings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from student.run_layout import TrainingPrompts

REACH_THRESHOLD = 0.65


@dataclass(frozen=True)
class Reach:
    """Where one prompt stands: its nearest training prompt and their cosine similarity."""

    prompt: str
    nearest: str
    similarity: float
    threshold: float

    @property
    def far(self) -> bool:
        return self.similarity < self.threshold

    def message(self) -> str:
        return (
            f"prompt {self.prompt!r} is far from everything this checkpoint was trained on: nearest training "
            f"prompt {self.nearest!r} at cosine similarity {self.similarity:.2f} (< {self.threshold:.2f}); "
            "expect a guess"
        )


class TrainingReach:
    """Nearest-training-prompt lookups for a checkpoint's recorded training prompts."""

    def __init__(self, training: TrainingPrompts, threshold: float = REACH_THRESHOLD) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
        self.prompts = training.prompts
        self.unit = torch.nn.functional.normalize(training.embeddings.float(), dim=-1)  # (P, D)
        self.threshold = threshold

    def check(self, prompts: list[str], embeddings: torch.Tensor) -> list[Reach]:
        """prompts (B,) with pooled embeddings (B, D) -> where each stands."""
        if embeddings.ndim != 2 or embeddings.shape != (len(prompts), self.unit.shape[1]):
            raise ValueError(
                f"embeddings {tuple(embeddings.shape)} for {len(prompts)} prompts; need (B, {self.unit.shape[1]})"
            )
        unit = torch.nn.functional.normalize(embeddings.detach().float().cpu(), dim=-1)  # (B, D)
        best = (unit @ self.unit.T).max(dim=1)  # (B,) values and indices
        return [
            Reach(p, self.prompts[i], s, self.threshold)
            for p, s, i in zip(prompts, best.values.tolist(), best.indices.tolist(), strict=True)
        ]
