"""Curves: oracle accuracy, diversity and Chamfer against training minutes, measured on a run's kept checkpoints.

The run's `stats.jsonl` holds the oracle accuracy the training monitor logged; diversity and geometry are too
costly to log while training, so the report measures them on every checkpoint the run kept (the trainer keeps
`schedule.keep_checkpoints`, 3 by default), each with the same lighter settings (`CurveConfig`) so the points of
one curve are comparable. Minutes are the training wall-clock each checkpoint recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.procedural import AttributeOracle
from student.eval.attributes import evaluate_attributes
from student.eval.diversity import DiversityConfig, cover_shapes, evaluate_diversity
from student.eval.mesh_accuracy import GeometryConfig, GroundTruth, evaluate_geometry
from student.eval.oracle_accuracy import EvalSet, make_eval_set, spread
from student.model.generator import TriplaneGenerator
from student.run_layout import checkpoint_step

DIVERSITY_FACTORS = ("yaw", "scale", "shade", "image_l1")


@dataclass(frozen=True)
class CurveConfig:
    checkpoints: int = 3  # newest kept checkpoints measured (0 = no curves beyond stats.jsonl)
    train_prompts: int = 12  # training prompts for the oracle, spread over the list
    seeds: int = 1  # latents per training prompt (oracle)
    heldout_seeds: int = 2  # latents per held-out prompt (oracle)
    diversity: DiversityConfig = field(
        default_factory=lambda: DiversityConfig(train_prompts=6, heldout_prompts=0, seeds=8)
    )
    geometry: GeometryConfig = field(default_factory=lambda: GeometryConfig(prompts=3))

    def __post_init__(self) -> None:
        if self.checkpoints < 0 or min(self.train_prompts, self.seeds, self.heldout_seeds) < 1:
            raise ValueError(f"need checkpoints >= 0 and prompts, seeds >= 1; got {self}")


def curve_sets(
    G: TriplaneGenerator, train: list[str], heldout: list[str], embedding: dict[str, torch.Tensor], config: CurveConfig
) -> list[EvalSet]:
    """The oracle / geometry evaluation sets every checkpoint of the curve is measured on (fixed latents, cameras)."""
    chosen = (("train", spread(train, config.train_prompts), config.seeds), ("heldout", heldout, config.heldout_seeds))
    return [
        make_eval_set(
            name, prompts, torch.stack([embedding[p] for p in prompts]), seeds=seeds, z_dim=G.config.mapping.z_dim,
            camera=G.config.camera, resolution=G.config.superres.output_resolution,
        )
        for name, prompts, seeds in chosen
        if prompts
    ]  # fmt: skip


def measure_checkpoint(
    G: TriplaneGenerator,
    sets: list[EvalSet],
    diversity_prompts: list[str],
    embedding: dict[str, torch.Tensor],
    config: CurveConfig,
    oracle: AttributeOracle,
    gt: GroundTruth,
    progress: Callable[[int], None] | None = None,
) -> dict[str, float | None]:
    """One curve point: '<set>/colour', '<set>/shape', 'diversity/<factor>' ratios, 'chamfer/<set>' means."""
    point: dict[str, float | None] = {}
    for s in sets:
        result = evaluate_attributes(G, s, oracle, progress=progress)
        point[f"{s.name}/colour"], point[f"{s.name}/shape"] = result.colour.accuracy, result.shape.accuracy
    if diversity_prompts:
        emb = torch.stack([embedding[p] for p in diversity_prompts])  # (P, D)
        div = evaluate_diversity({"G_ema": G}, diversity_prompts, emb, config.diversity, progress)
        ratios = div.summary("G_ema")["ratios"]
        point.update({f"diversity/{f}": ratios[f] for f in DIVERSITY_FACTORS})
    for s in sets:
        geometry = evaluate_geometry(G, s, config.geometry, progress, gt)
        point[f"chamfer/{s.name}"] = geometry.to_json()["chamfer_mean"]
        point["chamfer/perfect"] = geometry.to_json()["gt_vs_gt_chamfer"]
    return point


def measure_run(
    checkpoints: list[Path],
    current: tuple[Path, TriplaneGenerator],
    train: list[str],
    heldout: list[str],
    embedding: dict[str, torch.Tensor],
    config: CurveConfig,
    progress: Callable[[int], None] | None = None,
    gt: GroundTruth | None = None,
) -> list[dict]:
    """A point per checkpoint folder (oldest first): its step, training minutes and `measure_checkpoint`'s values.

    `current` is the checkpoint already loaded (reused, not reloaded); the others are loaded one at a time. `gt`
    shares ground-truth meshes with the report's own geometry evaluation when its settings are the same."""
    path0, G0 = current
    sets = curve_sets(G0, train, heldout, embedding, config)
    diversity_prompts = cover_shapes(train, config.diversity.train_prompts) + cover_shapes(
        heldout, config.diversity.heldout_prompts
    )
    oracle, gt = AttributeOracle(), gt or GroundTruth(config.geometry)
    points = []
    for path in checkpoints:
        G = G0 if Path(path) == Path(path0) else TriplaneGenerator.from_pretrained(path, device=G0.device).eval()
        step, seconds = checkpoint_step(Path(path))
        values = measure_checkpoint(G, sets, diversity_prompts, embedding, config, oracle, gt, progress)
        minutes = seconds / 60 if seconds is not None else None
        points.append({"checkpoint": str(path), "step": step, "minutes": minutes, **values})
    return points


def curve_work(config: CurveConfig, train: int, heldout: int, checkpoints: int) -> int:
    """Progress units `measure_run` reports for that many checkpoints (samples, meshes, diversity prompts)."""
    oracle = min(train, config.train_prompts) * config.seeds + heldout * config.heldout_seeds
    geo = config.geometry
    meshes = min(geo.prompts, min(train, config.train_prompts)) * min(geo.seeds, config.seeds)
    meshes += min(geo.prompts, heldout) * min(geo.seeds, config.heldout_seeds) if heldout else 0
    diversity = min(train, config.diversity.train_prompts) + min(heldout, config.diversity.heldout_prompts)
    return checkpoints * (oracle + meshes + diversity)
