"""Is a prompt within reach of what the generator was trained on? Its nearest training prompt by text embedding.

A checkpoint records its training prompts and their embeddings (`student/run_layout.py`). A prompt whose pooled
embedding has cosine similarity below `REACH_THRESHOLD` to every one of them is far from anything the generator
learned, and generation warns, naming the nearest training prompt and the similarity.

The threshold is measured with minilm against the 40 demo prompts (data/prompts/demo.txt): the nearest other
training prompt of a training prompt is at 0.72-0.86, every held-out colour x shape pair (new combinations of known
words) at 0.70-0.85, while every unseen wording of data/prompts/unseen.tsv (synonyms: "a scarlet box") lies at
0.30-0.62 and unrelated prompts ("a teapot", "a red sports car", "a green dragon") at 0.19-0.60. 0.65 separates
the first two groups from the last two; et3d-eval's report shows how the student does on unseen wordings.

`TrainingReach.snap` is the opt-in remedy (`ET3D(far_prompts="nearest")`, `et3d-gen --far-prompts nearest`): each
far prompt's embedding is replaced by its nearest training prompt's recorded one, so the generator sees a prompt it
was trained on instead of guessing. On the unseen wordings the student's own renders scored worse than chance (oracle
colour 0.12, shape 0.12) while the nearest training prompt's labels scored colour 0.22, shape 0.59; et3d-eval
reports the student with far prompts snapped beside both (`unseen.student_nearest`).
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
    index: int  # of `nearest` in the checkpoint's record

    @property
    def far(self) -> bool:
        return self.similarity < self.threshold

    def message(self, snapped: bool = False) -> str:
        """What to warn; snapped: the nearest training prompt is generated instead of this one."""
        outcome = f"generating {self.nearest!r} instead (far prompts: nearest)" if snapped else "expect a guess"
        return (
            f"prompt {self.prompt!r} is far from everything this checkpoint was trained on: nearest training "
            f"prompt {self.nearest!r} at cosine similarity {self.similarity:.2f} (< {self.threshold:.2f}); {outcome}"
        )


class TrainingReach:
    """Nearest-training-prompt lookups for a checkpoint's recorded training prompts."""

    def __init__(self, training: TrainingPrompts, threshold: float = REACH_THRESHOLD) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
        self.prompts = training.prompts
        self.embeddings = training.embeddings.float()  # (P, D) as recorded
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
            Reach(p, self.prompts[i], s, self.threshold, i)
            for p, s, i in zip(prompts, best.values.tolist(), best.indices.tolist(), strict=True)
        ]

    def snap(self, embeddings: torch.Tensor, reaches: list[Reach]) -> torch.Tensor:
        """Embeddings (B, D) and their `check` -> (B, D) with each far row replaced by exactly its nearest training
        prompt's recorded embedding; rows within reach keep the input's values exactly (on its device, widened to fp32
        when narrower: bit for bit for fp32 input)."""
        if embeddings.ndim != 2 or embeddings.shape != (len(reaches), self.embeddings.shape[1]):
            raise ValueError(
                f"embeddings {tuple(embeddings.shape)} for {len(reaches)} reaches; need (B, {self.embeddings.shape[1]})"
            )
        dtype = torch.promote_types(embeddings.dtype, self.embeddings.dtype)
        nearest = self.embeddings[[r.index for r in reaches]].to(embeddings.device, dtype)  # (B, D)
        far = torch.tensor([r.far for r in reaches], device=embeddings.device)  # (B,)
        return torch.where(far[:, None], nearest, embeddings.detach().to(dtype))
