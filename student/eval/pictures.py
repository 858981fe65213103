"""The pictures `make demo` leaves for people who would rather look than read.

- ``grid.png``: prompts x seeds, each cell the procedural teacher's view beside the student's from the same
  camera; held-out prompts (never trained on) are marked;
- ``turntable.gif``: a few prompts side by side, orbiting once;
- ``interpolation.png``: one z, the text embedding slerped from one prompt to another;
- ``training_curve.png``: the oracle's accuracy (from the run's ``stats.jsonl``) and the diversity ratio of
  the run's checkpoints (`student.eval.diversity`, student spread over z / teacher spread over seeds), both
  against training minutes.

Every image is at least 512 pixels wide; renders (16-128 px) are enlarged with nearest-neighbour so their
pixels stay honest. Written with PIL alone, atomically (`pipeline.atomic`).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from pipeline.atomic import atomic_write_bytes
from pipeline.cameras import Cameras
from pipeline.procedural import parse_prompt, render_scene, sample_scene

if TYPE_CHECKING:
    from student.generate.api import ET3D
    from student.model.generator import TriplaneGenerator

WHITE, BLACK, GREY, LIGHT = (255, 255, 255), (0, 0, 0), (110, 110, 110), (225, 225, 225)
HELD_OUT = (213, 94, 0)  # the mark of a prompt the student never saw
PALETTE = ((0, 114, 178), (230, 159, 0), (0, 158, 115), (213, 94, 0), (204, 121, 167), (86, 180, 233))
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


def save_png(image: Image.Image, path: str | Path) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def save_gif(frames: Sequence[Image.Image], path: str | Path, fps: float = 12.0) -> Path:
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=list(frames[1:]), duration=round(1000 / fps), loop=0
    )
    return atomic_write_bytes(path, buffer.getvalue())


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


def minutes_panel(
    title: str, series: dict[str, list[tuple[float, float]]], y_label: str, size=(520, 360)
) -> Image.Image:
    """Lines of (minutes, value), y from 0 to max(1, the largest value), legend below the plot."""
    width, height = size
    left, right, top = 46, 14, 30
    bottom = 44 + 18 * len(series)
    image = Image.new("RGB", size if series else (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((left, 6), title, font=_font(15), fill=BLACK)
    x1, y1 = width - right, height - bottom
    values = [v for pts in series.values() for _, v in pts]
    x_max = max((m for pts in series.values() for m, _ in pts), default=1.0) or 1.0
    y_max = max(1.0, math.ceil(max(values, default=1.0) * 4) / 4)

    def px(m: float, v: float) -> tuple[float, float]:
        return left + (x1 - left) * m / x_max, y1 - (y1 - top) * v / y_max

    for k in range(int(y_max * 4) + 1):
        _, y = px(0, k / 4)
        draw.line([(left, y), (x1, y)], fill=LIGHT)
        draw.text((6, y - 7), f"{k / 4:.2f}", font=_font(12), fill=GREY)
    for k in range(6):
        x, _ = px(x_max * k / 5, 0)
        draw.text((x - 10, y1 + 4), f"{x_max * k / 5:.1f}", font=_font(12), fill=GREY)
    draw.text(((left + x1) / 2 - 20, y1 + 20), "minutes", font=_font(12), fill=GREY)
    draw.text((left + 4, top + 2), y_label, font=_font(12), fill=GREY)
    draw.rectangle((left, top, x1, y1), outline=GREY)
    for n, (name, points) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        xy = [px(m, v) for m, v in sorted(points)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for x, y in xy:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        ly = y1 + 40 + 18 * n
        draw.line([(left, ly + 7), (left + 24, ly + 7)], fill=colour, width=3)
        draw.text((left + 30, ly), name, font=_font(13), fill=BLACK)
    if not series:
        draw.text((left + 12, top + 12), "nothing recorded", font=_font(13), fill=GREY)
    return image


def training_curve(
    accuracy: dict[str, list[tuple[float, float]]], diversity: dict[str, list[tuple[float, float]]]
) -> Image.Image:
    """Two panels side by side: oracle accuracy and diversity ratio, both against training minutes."""
    height = 380 + 18 * max(len(accuracy), len(diversity))
    left = minutes_panel("oracle accuracy", accuracy, "accuracy", (520, height))
    right = minutes_panel("diversity (student / teacher spread)", diversity, "ratio (1 = teacher's)", (520, height))
    image = Image.new("RGB", (1040, height), WHITE)
    image.paste(left, (0, 0))
    image.paste(right, (520, 0))
    return image
