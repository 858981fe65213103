"""Unseen wordings: prompts whose colour and shape words occur in no training prompt, labelled with what they mean.

The set (default data/prompts/unseen.tsv: prompt, colour, shape per line, `#` comments) asks whether the student
uses what the text encoder knows ("a scarlet box" is a red cube) or only the words it was trained on. The
student's renders are judged by the attribute oracle against the labels, beside a baseline that needs no
generator: the labels of the training prompt whose text embedding is nearest (what a lookup table would answer),
and beside the student with far prompts snapped (`ET3D(far_prompts="nearest")`): the same latents and cameras, each
prompt out of reach (`student/generate/reach.py`) generated from its nearest training prompt's embedding instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pipeline.procedural import COLOURS, SHAPES, parse_prompt

if TYPE_CHECKING:
    from student.model.generator import TriplaneGenerator


class UnseenSetError(ValueError):
    """A malformed unseen-wordings file; the message names the file and line."""


@dataclass(frozen=True)
class UnseenSet:
    prompts: list[str]  # (P,)
    targets: list[tuple[str, str]]  # (P,) (colour, shape) each prompt means


def read_unseen(path: str | Path) -> UnseenSet:
    """Read a `prompt<TAB>colour<TAB>shape` file; colours and shapes must be the procedural vocabulary's."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UnseenSetError(f"unseen wordings {str(path)!r}: not readable ({e})") from None
    prompts, targets = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 3 or not fields[0]:
            raise UnseenSetError(f"{path}:{n}: want 'prompt<TAB>colour<TAB>shape', got {line!r}")
        prompt, colour, shape = fields
        if colour not in COLOURS or shape not in SHAPES:
            raise UnseenSetError(
                f"{path}:{n}: label ({colour!r}, {shape!r}) outside the vocabulary; colours: {', '.join(COLOURS)}; "
                f"shapes: {', '.join(SHAPES)}"
            )
        if prompt in prompts:
            raise UnseenSetError(f"{path}:{n}: prompt {prompt!r} listed twice")
        prompts.append(prompt)
        targets.append((colour, shape))
    if not prompts:
        raise UnseenSetError(f"unseen wordings {str(path)!r} lists no prompts")
    return UnseenSet(prompts, targets)


def nearest_neighbour_labels(
    emb: torch.Tensor, train_prompts: list[str], train_emb: torch.Tensor
) -> list[tuple[str, str, str, float]]:
    """Embeddings (P, D) -> per prompt (nearest training prompt, its colour, its shape, cosine similarity)."""
    if train_emb.shape[0] != len(train_prompts) or not train_prompts or emb.shape[1:] != train_emb.shape[1:]:
        raise ValueError(f"embeddings {tuple(emb.shape)} vs {len(train_prompts)} training {tuple(train_emb.shape)}")
    a = torch.nn.functional.normalize(emb.float(), dim=-1)
    b = torch.nn.functional.normalize(train_emb.float(), dim=-1)
    best = (a @ b.T).max(dim=1)  # (P,)
    out = []
    for i, s in zip(best.indices.tolist(), best.values.tolist(), strict=True):
        spec = parse_prompt(train_prompts[i])
        out.append((train_prompts[i], spec.colour, spec.shape, s))
    return out


def accuracy(predicted: list[tuple[str, str]], targets: list[tuple[str, str]]) -> dict[str, float]:
    """Colour, shape and both accuracies of (colour, shape) predictions."""
    n = len(targets)
    if len(predicted) != n or n == 0:
        raise ValueError(f"{len(predicted)} predictions for {n} targets")
    colour = sum(p[0] == t[0] for p, t in zip(predicted, targets, strict=True)) / n
    shape = sum(p[1] == t[1] for p, t in zip(predicted, targets, strict=True)) / n
    both = sum(p == t for p, t in zip(predicted, targets, strict=True)) / n
    return {"colour": colour, "shape": shape, "both": both}


def evaluate_unseen(
    G: TriplaneGenerator,
    unseen: UnseenSet,
    emb: torch.Tensor,
    reference: tuple[list[str], torch.Tensor],
    *,
    seeds: int,
    chunk: int = 8,
    oracle=None,
    progress=None,
) -> dict:
    """The student's oracle accuracy on the unseen set (embeddings (P, D)), the nearest-neighbour baseline over
    the training prompts `reference` (prompts, (R, D) embeddings) and the student with the prompts out of reach of
    them snapped to their nearest; the metrics.json entry. `progress` counts 2 * P * seeds samples in all."""
    import dataclasses

    from pipeline.procedural import AttributeOracle
    from student.eval.attributes import evaluate_attributes, select
    from student.eval.oracle_accuracy import make_eval_set
    from student.generate.reach import TrainingReach
    from student.run_layout import TrainingPrompts

    # The eval set's cameras and latents come from make_eval_set; its labels are the file's, since the prompts
    # are outside the procedural vocabulary (the canonical prompt of each label stands in while building it).
    canonical = [f"a {c} {s}" for c, s in unseen.targets]
    eval_set = make_eval_set(
        "unseen", canonical, emb, seeds=seeds, z_dim=G.config.mapping.z_dim, camera=G.config.camera,
        resolution=G.config.superres.output_resolution,
    )  # fmt: skip
    eval_set = dataclasses.replace(eval_set, prompts=tuple(p for p in unseen.prompts for _ in range(seeds)))
    oracle = oracle or AttributeOracle()
    result = evaluate_attributes(G, eval_set, oracle, chunk, progress)
    # Snapped: only the far prompts' samples change, so only they are rendered again (same z and cameras).
    reach = TrainingReach(TrainingPrompts(*reference))
    reaches = reach.check(unseen.prompts, emb)
    far = [r.far for r in reaches for _ in range(seeds)]  # (P * seeds,) in the eval set's order
    snapped_set = dataclasses.replace(eval_set, emb=reach.snap(emb, reaches).repeat_interleave(seeds, dim=0))
    redone = iter(evaluate_attributes(G, select(snapped_set, far), oracle, chunk, progress).predictions)
    if progress is not None:
        progress(far.count(False))  # the samples within reach: the student's own, already judged
    predictions = [next(redone) if f else p for p, f in zip(result.predictions, far, strict=True)]
    snapped = dataclasses.replace(result, name="unseen_nearest", predictions=predictions)
    nn = nearest_neighbour_labels(emb, *reference)
    nn_scores = accuracy([(c, s) for _, c, s, _ in nn], unseen.targets)
    per_prompt = result.per_prompt()
    similarities = torch.tensor([s for *_, s in nn])
    return {
        "prompts": len(unseen.prompts),
        "seeds": seeds,
        "reference_prompts": len(reference[0]),
        "student": {
            "colour": result.colour.accuracy, "shape": result.shape.accuracy, "both": result.both,
            "count": result.count,
        },
        "nearest_neighbour": nn_scores,
        "student_nearest": {
            "colour": snapped.colour.accuracy, "shape": snapped.shape.accuracy, "both": snapped.both,
            "count": snapped.count, "snapped": sum(r.far for r in reaches),
            "threshold": reach.threshold,
        },
        "similarity": {
            "min": float(similarities.min()), "mean": float(similarities.mean()), "max": float(similarities.max()),
        },
        "per_prompt": {
            p: {
                "target": list(t), "colour": per_prompt[p]["colour"], "shape": per_prompt[p]["shape"],
                "nearest": near, "nearest_labels": [c, s], "similarity": sim,
            }
            for p, t, (near, c, s, sim) in zip(unseen.prompts, unseen.targets, nn, strict=True)
        },
    }  # fmt: skip
