"""The pictures `make demo` leaves for people who would rather look than read.

- ``grid.png``: prompts x seeds, each cell the procedural teacher's view beside the student's from the same
  camera; held-out prompts (never trained on) are marked;
- ``turntable.gif``: a few prompts side by side, orbiting once;
- ``interpolation.png``: one z, the text embedding slerped from one prompt to another;
- ``training_curve.png``: the oracle's accuracy (from the run's ``stats.jsonl``) and the diversity ratio of
  the run's checkpoints (`student.eval.diversity`, student spread over z / teacher spread over seeds), both
  against training minutes.

Every image is at least 512 pixels wide; renders (16-128 px) are enlarged with nearest-neighbour so their
pixels stay honest. Written with PIL alone, atomically (`student.generate.preview.save_image` / `save_gif`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from pipeline.cameras import Cameras
from pipeline.procedural import parse_prompt, render_scene, sample_scene
from student.eval.figures import curve_figure

if TYPE_CHECKING:
    from student.generate.api import ET3D
    from student.model.generator import TriplaneGenerator

WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (110, 110, 110)
HELD_OUT = (213, 94, 0)  # the mark of a prompt the student never saw
MIN_WIDTH = 512
VIEW_AZIMUTH_DEG = 30.0  # away from the faces-on view, so a cube shows three faces


@dataclass(frozen=True)
class PicturesConfig:
    train_prompts: int = 4  # rows of the grid from the training prompts (varied colours and shapes first)
    heldout_prompts: int = 3  # rows from the held-out prompts
    seeds: int = 3  # columns of the grid
    cell: int = 128  # pixels per view in the grid, turntable and strip
    turntable_prompts: int = 4
    turntable_frames: int = 36
    interpolation_steps: int = 8
    curve_checkpoints: int = 6  # checkpoints of the run measured for the diversity curve (evenly chosen)
    diversity_seeds: int = 6  # samples per prompt of each diversity measurement

    def __post_init__(self) -> None:
        if min(self.seeds, self.turntable_prompts, self.turntable_frames, self.curve_checkpoints) < 1:
            raise ValueError(f"counts must be >= 1, got {self}")
        if self.interpolation_steps < 2 or self.diversity_seeds < 2 or self.cell < 16:
            raise ValueError(f"need interpolation_steps >= 2, diversity_seeds >= 2, cell >= 16; got {self}")


def _font(size: int = 14):
    return ImageFont.load_default(size=size)


def varied_prompts(prompts: Sequence[str], n: int) -> list[str]:
    """Up to n prompts, those adding both an unseen colour and an unseen shape first, then the rest in order."""
    colours, shapes, first, rest = set(), set(), [], []
    for p in prompts:
        spec = parse_prompt(p)
        if spec.colour not in colours and spec.shape not in shapes:
            first.append(p)
            colours.add(spec.colour)
            shapes.add(spec.shape)
        else:
            rest.append(p)
    return (first + rest)[:n]


def _tile(image: np.ndarray, side: int) -> Image.Image:
    """(H, W, 3) uint8 -> a side x side PIL image, enlarged by nearest neighbour."""
    return Image.fromarray(np.ascontiguousarray(image)).resize((side, side), Image.Resampling.NEAREST)


def view_cameras(generator: TriplaneGenerator, num_views: int = 1, azimuth_deg: float = VIEW_AZIMUTH_DEG) -> Cameras:
    """The cameras both sides of a comparison are rendered from, at the student's output resolution."""
    return generator.config.camera.middle_orbit(
        num_views, azimuth_deg, resolution=generator.config.superres.output_resolution
    )


def student_views(model: ET3D, prompt_or_embedding, seeds: Sequence[int], cameras: Cameras) -> np.ndarray:
    """(S, V, H, W, 3) uint8: the student's renders of one prompt (or embedding (D,)) for each seed."""
    emb = model.encode([prompt_or_embedding])[0] if isinstance(prompt_or_embedding, str) else prompt_or_embedding
    gens = model.synthesize(emb[None].expand(len(seeds), -1), ["" for _ in seeds], list(seeds))
    G = model.generator
    with torch.inference_mode():
        return np.stack(
            [G.render_uint8(g.planes, cameras.c2w, cameras.fovy_deg, cameras.resolution)[0].numpy() for g in gens]
        )


def teacher_views(prompt: str, seeds: Sequence[int], cameras: Cameras) -> np.ndarray:
    """(S, V, H, W, 3) uint8: the procedural teacher's renders of one prompt for each seed."""
    spec = parse_prompt(prompt)
    return np.stack([render_scene(sample_scene(spec, seed), cameras).numpy() for seed in seeds])


def comparison_grid(model: ET3D, train: Sequence[str], heldout: Sequence[str], config: PicturesConfig) -> Image.Image:
    """Rows of prompts, columns of seeds; each cell the teacher's view then the student's (same camera)."""
    cams = view_cameras(model.generator)
    seeds = list(range(config.seeds))
    cell, gap, label_w, header = config.cell, 10, 190, 44
    width = label_w + config.seeds * (2 * cell + gap)
    rows = [(p, False) for p in train] + [(p, True) for p in heldout]
    image = Image.new("RGB", (width, header + len(rows) * (cell + 6)), WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((6, 4), "teacher | student, same camera", font=_font(15), fill=BLACK)
    draw.text((6, 24), "held out = never trained on", font=_font(13), fill=HELD_OUT)
    for j, seed in enumerate(seeds):
        x = label_w + j * (2 * cell + gap)
        draw.text((x + 4, 24), f"seed {seed}: teacher", font=_font(13), fill=GREY)
        draw.text((x + cell + 4, 24), "student", font=_font(13), fill=GREY)
    for i, (prompt, held_out) in enumerate(rows):
        y = header + i * (cell + 6)
        teacher = teacher_views(prompt, seeds, cams)[:, 0]  # (S, H, W, 3)
        student = student_views(model, prompt, seeds, cams)[:, 0]  # (S, H, W, 3)
        if held_out:
            draw.rectangle((0, y, 4, y + cell), fill=HELD_OUT)
        draw.text((10, y + cell // 2 - 18), prompt, font=_font(15), fill=BLACK)
        if held_out:
            draw.text((10, y + cell // 2 + 2), "held out", font=_font(13), fill=HELD_OUT)
        for j in range(config.seeds):
            x = label_w + j * (2 * cell + gap)
            image.paste(_tile(teacher[j], cell), (x, y))
            image.paste(_tile(student[j], cell), (x + cell, y))
    return image


def turntable(model: ET3D, prompts: Sequence[str], config: PicturesConfig, seed: int = 0) -> list[Image.Image]:
    """Frames of the prompts side by side, each orbiting once, with their prompts written above."""
    cams = view_cameras(model.generator, config.turntable_frames, 0.0)
    views = [student_views(model, p, [seed], cams)[0] for p in prompts]  # P x (F, H, W, 3)
    cell = max(config.cell, math.ceil(MIN_WIDTH / len(prompts)))
    frames = []
    for f in range(config.turntable_frames):
        frame = Image.new("RGB", (cell * len(prompts), cell + 24), WHITE)
        draw = ImageDraw.Draw(frame)
        for k, p in enumerate(prompts):
            frame.paste(_tile(views[k][f], cell), (k * cell, 24))
            draw.text((k * cell + 6, 4), p, font=_font(14), fill=BLACK)
        frames.append(frame)
    return frames


def interpolation_strip(
    model: ET3D, prompt_a: str, prompt_b: str, config: PicturesConfig, seed: int = 0
) -> Image.Image:
    """One z, the embedding slerped from prompt_a to prompt_b in `interpolation_steps` steps, ends included."""
    from student.generate.api import embedding_path

    a, b = model.encode([prompt_a, prompt_b])
    path = embedding_path(a, b, config.interpolation_steps)  # (steps, D)
    cams = view_cameras(model.generator)
    cell = max(config.cell, math.ceil(MIN_WIDTH / config.interpolation_steps))
    image = Image.new("RGB", (cell * len(path), cell + 44), WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((6, 4), f"{prompt_a}  ->  {prompt_b}  (one z, seed {seed})", font=_font(15), fill=BLACK)
    for k, emb in enumerate(path):
        image.paste(_tile(student_views(model, emb, [seed], cams)[0, 0], cell), (k * cell, 26))
        draw.text((k * cell + cell // 2 - 10, cell + 28), f"{k / (len(path) - 1):.2f}", font=_font(12), fill=GREY)
    return image


def accuracy_series(stats_path: Path) -> dict[str, list[tuple[float, float]]]:
    """'heldout/colour' -> [(minutes, accuracy)] from the `eval` records of a run's stats.jsonl."""
    series: dict[str, list[tuple[float, float]]] = {}
    for record in _records(stats_path):
        if record.get("kind") != "eval" or "wall_s" not in record:
            continue
        for key, value in record.items():
            if key.endswith(("/colour", "/shape")) and isinstance(value, int | float):
                series.setdefault(key, []).append((record["wall_s"] / 60, float(value)))
    return series


def step_minutes(stats_path: Path) -> list[tuple[int, float]]:
    """(step, minutes) of every record that has both, for placing checkpoints on the time axis."""
    return sorted((int(r["step"]), r["wall_s"] / 60) for r in _records(stats_path) if "step" in r and "wall_s" in r)


def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if isinstance(record, dict):
            out.append(record)
    return out


def diversity_series(
    model, run_dir: Path, prompts: Sequence[str], config: PicturesConfig
) -> dict[str, list[tuple[float, float]]]:
    """Diversity ratios (student / teacher spread) of up to `curve_checkpoints` checkpoints against minutes."""
    from student.eval.diversity import DiversityConfig, evaluate_diversity
    from student.generate.loading import load_generator
    from student.run_layout import RunDir, run_checkpoints

    checkpoints = run_checkpoints(run_dir)
    if len(checkpoints) > config.curve_checkpoints:
        pick = np.linspace(0, len(checkpoints) - 1, config.curve_checkpoints).round().astype(int)
        checkpoints = [checkpoints[i] for i in sorted(set(pick.tolist()))]
    times = step_minutes(RunDir(run_dir).stats)
    if not checkpoints or not times:
        return {}
    steps, minutes = zip(*times, strict=True)
    emb = model.encode(list(prompts))  # (P, D)
    div_config = DiversityConfig(seeds=config.diversity_seeds, views=1)
    series: dict[str, list[tuple[float, float]]] = {"diversity: image L1": [], "diversity: mean factor": []}
    for step, folder in checkpoints:
        G = load_generator(folder)
        summary = evaluate_diversity({"G": G}, list(prompts), emb, div_config).summary("G")
        t = float(np.interp(step, steps, minutes))
        if summary["ratios"]["image_l1"] is not None:
            series["diversity: image L1"].append((t, summary["ratios"]["image_l1"]))
        factors = [v for k, v in summary["ratios"].items() if k != "image_l1" and v is not None]
        if factors:
            series["diversity: mean factor"].append((t, float(np.mean(factors))))
    return {k: v for k, v in series.items() if v}


def training_curve(
    accuracy: dict[str, list[tuple[float, float]]], diversity: dict[str, list[tuple[float, float]]]
) -> Image.Image:
    """Two panels side by side: oracle accuracy and diversity ratio, both against training minutes."""
    height = 380 + 18 * max(len(accuracy), len(diversity))
    panel = partial(
        curve_figure, size=(520, height), x_label="minutes", y_max=None, legend="below", empty_note="nothing recorded"
    )
    left = panel("oracle accuracy", accuracy, y_label="accuracy")
    right = panel("diversity (student / teacher spread)", diversity, y_label="ratio (1 = teacher's)")
    image = Image.new("RGB", (1040, height), WHITE)
    image.paste(left, (0, 0))
    image.paste(right, (520, 0))
    return image
