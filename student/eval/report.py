"""The quality report of one checkpoint: plan it (cheap, no model), run it, write `eval/<run>/` atomically.

On procedural prompts (the embedded default teacher, where ground truth exists, docs/measuring.md) the report holds
the oracle's colour / shape accuracy on training and held-out prompts with confusion matrices, the Chamfer
distance of exported meshes against the true shapes with two ground-truth baselines, and per-prompt
diversity against the teacher's seeds. With a CLIP folder it adds CLIP score and R-precision, which is the
only measure for prompts outside the procedural vocabulary (MVDream shards). The training curve comes from
the run's `stats.jsonl`.

Files: report.md, metrics.json (every number of the report), preview.png, confusion_colour.png,
confusion_shape.png, training_curve.png. The folder is assembled beside its final name and renamed into
place, so a reader sees the previous complete report or the new one, never a mix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from pipeline.atomic import atomic_dir, atomic_write_json, atomic_write_text
from pipeline.procedural import AttributeOracle, PromptError, parse_prompt
from student.config import to_dict
from student.eval.attributes import AttributeResult, evaluate_attributes
from student.eval.clip_metrics import ClipConfig, ClipModel, render_clip_views, score_clip_views
from student.eval.curves import CurveConfig, curve_work, measure_run
from student.eval.diversity import DiversityConfig, DiversityResult, cover_shapes, evaluate_diversity
from student.eval.figures import confusion_figure, curve_figure, preview_figure, stack_figures
from student.eval.frame import compare_frames
from student.eval.inputs import CheckpointInfo, EvalInputError, PromptSets, embed_prompts
from student.eval.markdown import SET_NAMES, render_report
from student.eval.mesh_accuracy import GeometryConfig, GroundTruth, evaluate_geometry
from student.eval.oracle_accuracy import make_eval_set, spread
from student.eval.training_log import TrainingLog, read_training_log
from student.eval.unseen import UnseenSet, evaluate_unseen
from student.generate.preview import save_image
from student.model.generator import TriplaneGenerator
from student.run_layout import load_training_prompts, run_checkpoints

PREVIEW_CLIP_PROMPTS = 8  # rows of the preview when only CLIP renders exist
PREVIEW_SEEDS = 4  # teacher seeds and student latents shown per prompt


@dataclass(frozen=True)
class ReportConfig:
    train_prompts: int = 0  # training prompts evaluated, spread over the list; 0 = all
    seeds: int = 2  # latents per training prompt for the oracle
    heldout_seeds: int = 4  # latents per held-out prompt (fewer prompts, so more samples each)
    unseen_seeds: int = 2  # latents per unseen-wording prompt
    chunk: int = 8  # samples rendered together
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    diversity: DiversityConfig = field(default_factory=DiversityConfig)
    curves: CurveConfig = field(default_factory=CurveConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)

    def __post_init__(self) -> None:
        if self.train_prompts < 0 or min(self.seeds, self.heldout_seeds, self.unseen_seeds, self.chunk) < 1:
            raise ValueError(
                f"need train_prompts >= 0 and seeds, heldout_seeds, chunk >= 1; got {self.train_prompts}, "
                f"{self.seeds}, {self.heldout_seeds}, {self.chunk}"
            )


@dataclass(frozen=True)
class ReportPlan:
    """Everything resolved and validated before the model is loaded; `describe` is the dry run's output."""

    checkpoint: CheckpointInfo
    train: list[str]  # the training prompts evaluated
    train_total: int  # training prompts available
    heldout: list[str]
    known: dict[str, torch.Tensor]  # prompt -> embedding the shards hold
    config: ReportConfig
    out_dir: Path
    procedural: bool  # every prompt is in the procedural vocabulary: oracle, Chamfer, diversity apply
    clip_path: Path | None
    train_all: list[str] = field(default_factory=list)  # every training prompt (the nearest-neighbour baseline's)
    unseen: UnseenSet | None = None  # unseen wordings (procedural runs only)
    unseen_path: Path | None = None
    curve_checkpoints: list[Path] = field(default_factory=list)  # the run's kept checkpoints measured for curves

    @property
    def resolution(self) -> int:
        return self.checkpoint.config.superres.output_resolution

    @property
    def oracle_samples(self) -> int:
        return len(self.train) * self.config.seeds + len(self.heldout) * self.config.heldout_seeds

    @property
    def geometry_samples(self) -> int:
        geo = self.config.geometry
        sets = ((self.train, self.config.seeds), (self.heldout, self.config.heldout_seeds))
        return sum(min(geo.prompts, len(p)) * min(geo.seeds, s) for p, s in sets)

    @property
    def diversity_prompts(self) -> list[str]:
        div = self.config.diversity
        return cover_shapes(spread(self.train, len(self.train)), div.train_prompts) + cover_shapes(
            self.heldout, div.heldout_prompts
        )

    @property
    def unseen_samples(self) -> int:
        """The student's samples, then the same with far prompts snapped (progress counts both)."""
        return 2 * len(self.unseen.prompts) * self.config.unseen_seeds if self.unseen is not None else 0

    @property
    def clip_prompts(self) -> list[str]:
        return self.train + self.heldout if self.clip_path is not None else []

    @property
    def work(self) -> int:
        """Progress units: rendered samples, meshes, diversity prompts."""
        procedural = self.oracle_samples + self.geometry_samples + len(self.diversity_prompts) + self.unseen_samples
        procedural += curve_work(self.config.curves, len(self.train), len(self.heldout), len(self.curve_checkpoints))
        return (procedural if self.procedural else 0) + len(self.clip_prompts) * self.config.clip.seeds

    def describe(self) -> list[str]:
        cfg, ckpt = self.config, self.checkpoint
        views = ckpt.config.camera.num_views
        lines = [f"checkpoint:   {ckpt.path} (run {ckpt.run_name}, step {ckpt.step})"]
        if self.procedural:
            lines += [
                f"prompts:      {len(self.train)} of {self.train_total} training prompts x {cfg.seeds} seeds, "
                f"{len(self.heldout)} held-out x {cfg.heldout_seeds} seeds",
                f"oracle:       {self.oracle_samples} samples, {views} views at {self.resolution} px",
                f"geometry:     {self.geometry_samples} meshes (grid {cfg.geometry.mesh_grid}) vs ground truth "
                f"(grid {cfg.geometry.gt_grid}), Chamfer best over yaw",
                f"diversity:    {len(self.diversity_prompts)} prompts x {cfg.diversity.seeds} seeds x "
                f"{cfg.diversity.views} views, G_ema and G vs teacher (yaw, scale, shade, image L1); frame border",
                f"unseen:       {len(self.unseen.prompts)} wordings of {self.unseen_path} x {cfg.unseen_seeds} seeds, "
                "oracle vs the nearest training prompt's labels and vs the student with far prompts snapped to it"
                if self.unseen is not None
                else "unseen:       off (no unseen-wordings file)",
                f"curves:       {len(self.curve_checkpoints)} kept checkpoints of the run measured (oracle, diversity, "
                "Chamfer) against training minutes"
                if self.curve_checkpoints
                else "curves:       stats.jsonl only (no kept checkpoints of a run to measure)",
            ]
        else:
            lines.append(
                f"prompts:      {len(self.train)} of {self.train_total} training prompts, {len(self.heldout)} held-out "
                "(outside the procedural vocabulary: CLIP metrics only)"
            )
        if self.clip_path is None:
            lines.append("clip:         off (pass --clip PATH for CLIP score and R-precision)")
        else:
            n = len(self.clip_prompts) * cfg.clip.seeds * cfg.clip.views
            lines.append(
                f"clip:         {self.clip_path}: {len(self.clip_prompts)} prompts x {cfg.clip.seeds} seeds x "
                f"{cfg.clip.views} views = {n} images"
            )
        lines.append(f"output:       {self.out_dir}/ (report.md, metrics.json, PNG figures)")
        return lines


def make_plan(
    info: CheckpointInfo,
    sets: PromptSets,
    config: ReportConfig,
    out_root: Path,
    clip_path: Path | None = None,
    unseen: tuple[Path, UnseenSet] | None = None,
) -> ReportPlan:
    """Choose the prompts and decide which metrics apply; raises EvalInputError when none would."""
    train = spread(sets.train, config.train_prompts) if config.train_prompts else list(sets.train)
    if not train:
        raise EvalInputError("no training prompts to evaluate")
    reason = _not_procedural(sets.teacher, train + sets.heldout)
    if reason and clip_path is None:
        raise EvalInputError(
            f"{reason}. The oracle, Chamfer and diversity metrics need procedural prompts; "
            "pass --clip PATH (a local transformers CLIP folder) for CLIP score and R-precision instead"
        )
    if clip_path is not None and not Path(clip_path).is_dir():
        raise EvalInputError(f"--clip {str(clip_path)!r} is not a folder (want a transformers CLIP model folder)")
    return ReportPlan(
        checkpoint=info,
        train=train,
        train_total=len(sets.train),
        heldout=list(sets.heldout),
        known=sets.known,
        config=config,
        out_dir=Path(out_root) / info.run_name,
        procedural=reason is None,
        clip_path=Path(clip_path) if clip_path is not None else None,
        train_all=list(sets.train),
        unseen=unseen[1] if unseen is not None and reason is None else None,
        unseen_path=Path(unseen[0]) if unseen is not None and reason is None else None,
        curve_checkpoints=_curve_checkpoints(info, config.curves.checkpoints) if reason is None else [],
    )


def _curve_checkpoints(info: CheckpointInfo, n: int) -> list[Path]:
    """The newest n kept checkpoints of the checkpoint's run up to it, oldest first ([] outside a run)."""
    if info.run_dir is None or n == 0:
        return []
    kept = [path for step, path in run_checkpoints(info.run_dir) if info.step is None or step <= info.step]
    return kept[-n:]


def _not_procedural(teacher: str | None, prompts: list[str]) -> str | None:
    """Why the procedural ground truth does not apply, or None when it does."""
    if teacher is not None and teacher != "procedural":
        return f"the shards come from teacher {teacher!r}, not the procedural one"
    for prompt in prompts:
        try:
            parse_prompt(prompt)
        except PromptError as e:
            return f"prompt {prompt!r} is outside the procedural vocabulary: {e}"
    return None


class _Stages:
    """Times named stages of the run and labels the progress bar with the current one."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.bar.set_description(name)
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 3)


def run_report(
    plan: ReportPlan,
    G: TriplaneGenerator,
    encode: Callable[[list[str]], torch.Tensor],
    show_progress: bool = True,
    G_raw: TriplaneGenerator | None = None,
) -> dict:
    """Evaluate G as planned, write the report folder and return its metrics (what metrics.json holds).

    `encode` maps prompts to (P, D) text embeddings; it is called only for prompts the shards do not hold.
    `G` is the checkpoint's EMA generator; `G_raw`, the trained (non-averaged) one when the checkpoint holds
    it, is measured for diversity too.
    """
    started = time.perf_counter()
    cfg, ckpt = plan.config, plan.checkpoint
    metrics: dict = {
        "run": ckpt.run_name,
        "step": ckpt.step,
        "checkpoint": str(ckpt.path),
        "train_seconds": ckpt.train_seconds,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resolution": plan.resolution,
        "views": ckpt.config.camera.num_views,
        "prompts": {"train": plan.train, "train_total": plan.train_total, "heldout": plan.heldout},
        "config": to_dict(cfg),
        "procedural": plan.procedural,
        "attributes": None,
        "geometry": None,
        "diversity": None,
        "frame": None,
        "unseen": None,
        "curves": None,
        "clip": None,
    }
    attributes: dict[str, AttributeResult] = {}
    diversity: DiversityResult | None = None
    clip_views: np.ndarray | None = None
    with tqdm(total=plan.work, disable=not show_progress, dynamic_ncols=True) as bar:
        stage = _Stages(bar)
        with stage("embed"):
            prompts = plan.train + plan.heldout
            embedding = dict(zip(prompts, embed_prompts(prompts, plan.known, encode), strict=True))  # prompt -> (D,)
        if plan.procedural:
            sets = (("train", plan.train, cfg.seeds), ("heldout", plan.heldout, cfg.heldout_seeds))
            eval_sets = [
                make_eval_set(
                    name, prompts, torch.stack([embedding[p] for p in prompts]), seeds=seeds,
                    z_dim=G.config.mapping.z_dim, camera=G.config.camera, resolution=plan.resolution,
                )
                for name, prompts, seeds in sets
                if prompts
            ]  # fmt: skip
            with stage("oracle"):
                oracle = AttributeOracle()
                attributes = {s.name: evaluate_attributes(G, s, oracle, cfg.chunk, bar.update) for s in eval_sets}
                metrics["attributes"] = {name: r.to_json() for name, r in attributes.items()}
            with stage("geometry"):
                gt = GroundTruth(cfg.geometry)  # shared: both sets use the same references
                geometry = {s.name: evaluate_geometry(G, s, cfg.geometry, bar.update, gt) for s in eval_sets}
                metrics["geometry"] = {name: r.to_json() for name, r in geometry.items()}
            with stage("diversity"):
                prompts = plan.diversity_prompts
                emb = torch.stack([embedding[p] for p in prompts])  # (P, D)
                generators = {"G_ema": G} | ({"G": G_raw} if G_raw is not None else {})
                diversity = evaluate_diversity(generators, prompts, emb, cfg.diversity, bar.update)
                metrics["diversity"] = diversity.to_json()
                metrics["frame"] = compare_frames(diversity.student_views, diversity.teacher_views)
            if plan.unseen is not None:
                with stage("unseen"):
                    metrics["unseen"] = _unseen(plan, G, encode, oracle, bar.update)
            if plan.curve_checkpoints:
                with stage("curves"):
                    points = measure_run(
                        plan.curve_checkpoints, (ckpt.path, G), plan.train, plan.heldout, embedding, cfg.curves,
                        bar.update, gt if _same_ground_truth(cfg.curves.geometry, cfg.geometry) else None,
                    )  # fmt: skip
                    metrics["curves"] = {"points": points, "figure": "curves.png"}
        if plan.clip_path is not None:
            with stage("clip"):
                clip = ClipModel(plan.clip_path, device=G.device)
                emb = torch.stack([embedding[p] for p in plan.clip_prompts])  # (P, D)
                clip_views = render_clip_views(G, emb, cfg.clip, bar.update)  # (P, S, V, H, W, 3)
                result = score_clip_views(clip_views, plan.clip_prompts, clip, cfg.clip)
                metrics["clip"] = {"model": str(plan.clip_path), **result.to_json()}
    log = read_training_log(ckpt.stats_path)
    metrics["training"] = {
        "stats": str(ckpt.stats_path) if ckpt.stats_path else None,
        "evals": len(log.evals),
        "skipped_lines": log.skipped_lines,
        "last_eval": log.last_eval,
        "curve": "training_curve.png" if log.evals else None,
    }
    figures = _figures(plan, attributes, diversity, clip_views, log, (metrics["curves"] or {}).get("points"))
    metrics["files"] = ["report.md", "metrics.json", *figures]
    metrics["timings_s"] = {**stage.timings, "total": round(time.perf_counter() - started, 3)}
    _write(plan.out_dir, metrics, figures)
    return metrics


def _unseen(plan: ReportPlan, G: TriplaneGenerator, encode, oracle: AttributeOracle, progress) -> dict:
    """Unseen wordings scored by the oracle and by the nearest training prompt: the checkpoint's recorded training
    prompts when it has them, else the training corpus / shards."""
    unseen = plan.unseen
    emb = embed_prompts(unseen.prompts, {}, encode)  # (P, D): never in the shards
    recorded = load_training_prompts(plan.checkpoint.path)
    if recorded is not None:
        reference, source = (recorded.prompts, recorded.embeddings), "checkpoint"
    else:
        reference, source = (plan.train_all, embed_prompts(plan.train_all, plan.known, encode)), "corpus"
    result = evaluate_unseen(
        G, unseen, emb, reference, seeds=plan.config.unseen_seeds, chunk=plan.config.chunk, oracle=oracle,
        progress=progress,
    )  # fmt: skip
    return {"file": str(plan.unseen_path), "reference": source, **result}


def _same_ground_truth(a: GeometryConfig, b: GeometryConfig) -> bool:
    return (a.gt_grid, a.gt_seeds) == (b.gt_grid, b.gt_seeds)


def _curve_panels(points: list[dict], log: TrainingLog) -> Image.Image:
    """Accuracy, diversity ratios and Chamfer against training minutes, one panel each, stacked."""
    minutes = [p["minutes"] for p in points]
    x_label = "training minutes" if all(m is not None for m in minutes) else "step"
    xs = minutes if x_label == "training minutes" else [p["step"] or 0 for p in points]

    def series(prefix: str, names: list[str]) -> dict[str, list[tuple[float, float]]]:
        out = {}
        for name in names:
            values = [(x, p.get(f"{prefix}{name}")) for x, p in zip(xs, points, strict=True)]
            kept = [(x, v) for x, v in values if v is not None]
            if kept:
                out[f"{prefix}{name}"] = kept
        return out

    accuracy = series("", ["train/colour", "train/shape", "heldout/colour", "heldout/shape"])
    diversity = series("diversity/", ["yaw", "scale", "shade", "image_l1"])
    chamfer = series("chamfer/", ["train", "heldout", "perfect"])
    top = max((v for s in diversity.values() for _, v in s), default=1.0)
    worst = max((v for s in chamfer.values() for _, v in s), default=0.1)
    note = "no measurable checkpoint"
    return stack_figures([
        curve_figure("oracle accuracy of the kept checkpoints", accuracy, x_label=x_label, empty_note=note),
        curve_figure("diversity ratio student / teacher (G_ema)", diversity, x_label=x_label,
                     y_max=max(1.25, round(top * 4 + 0.5) / 4), empty_note=note),
        curve_figure("Chamfer distance (world units; perfect = teacher vs teacher)", chamfer, x_label=x_label,
                     y_max=worst * 1.2, empty_note=note),
    ])  # fmt: skip


def _figures(
    plan: ReportPlan,
    attributes: dict[str, AttributeResult],
    diversity: DiversityResult | None,
    clip_views: np.ndarray | None,
    log: TrainingLog,
    curves: list[dict] | None = None,
) -> dict[str, Image.Image]:
    """File name -> PIL image of every figure that applies."""
    out = {}
    if attributes:
        for attribute in ("colour", "shape"):
            panels = [(SET_NAMES.get(name, name), getattr(r, attribute)) for name, r in attributes.items()]
            out[f"confusion_{attribute}.png"] = confusion_figure(
                f"{attribute}: target (rows) vs oracle (columns)", panels
            )
    if diversity is not None:
        seeds = min(PREVIEW_SEEDS, diversity.teacher_views.shape[1])
        student = diversity.student_views["G_ema"]
        rows = [
            (p, [*diversity.teacher_views[i, :seeds, 0], *student[i, :seeds, 0]])
            for i, p in enumerate(diversity.prompts)
        ]
        titles = [f"teacher seed {s}" for s in range(seeds)] + [f"student z {s}" for s in range(seeds)]
        out["preview.png"] = preview_figure(rows, titles)
    elif clip_views is not None:
        prompts = plan.clip_prompts[:PREVIEW_CLIP_PROMPTS]
        rows = [(p, list(clip_views[i, 0])) for i, p in enumerate(prompts)]
        out["preview.png"] = preview_figure(rows, [f"view {v}" for v in range(clip_views.shape[2])])
    if log.evals:
        timed = bool(log.series("minutes"))
        out["training_curve.png"] = curve_figure(
            "oracle accuracy during training (stats.jsonl)", log.series("minutes" if timed else "step"),
            x_label="training minutes" if timed else "step",
        )  # fmt: skip
    if curves:
        out["curves.png"] = _curve_panels(curves, log)
    return out


def _write(out_dir: Path, metrics: dict, figures: dict[str, Image.Image]) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out_dir) as tmp:
        for name, image in figures.items():
            save_image(image, tmp / name)
        atomic_write_json(tmp / "metrics.json", metrics)
        atomic_write_text(tmp / "report.md", render_report(metrics))
