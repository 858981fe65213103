"""The report's images, drawn with PIL alone: confusion matrices, the training curve and the preview grid.

Each function returns a `PIL.Image`; `student.generate.preview.save_image` writes one atomically. Sizes are fixed in pixels so that the
figures read the same in any Markdown viewer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from student.eval.confusion import ConfusionMatrix

WHITE, BLACK, GREY, LIGHT = (255, 255, 255), (0, 0, 0), (120, 120, 120), (225, 225, 225)
# Distinct, colour-blind-safe line colours (Okabe-Ito), one per curve.
PALETTE = ((0, 114, 178), (230, 159, 0), (0, 158, 115), (213, 94, 0), (204, 121, 167), (86, 180, 233))
FONT_SIZE = 12


def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _text_size(font, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return right - left, bottom - top


def _vertical_text(text: str, font, fill=BLACK) -> Image.Image:
    """`text` rotated to read bottom to top, on a transparent background."""
    w, h = _text_size(font, text)
    strip = Image.new("RGBA", (w + 2, h + 6), (255, 255, 255, 0))
    ImageDraw.Draw(strip).text((1, 0), text, font=font, fill=fill)
    return strip.rotate(90, expand=True)


def confusion_figure(title: str, panels: Sequence[tuple[str, ConfusionMatrix]], cell: int = 30) -> Image.Image:
    """Side-by-side confusion matrices (rows: target, columns: predicted, shaded by the row's fraction)."""
    font = _font()
    sizes = []
    for _, m in panels:
        label_w = max(_text_size(font, c)[0] for c in m.columns) + 10
        sizes.append((label_w, label_w + len(m.classes) * cell, label_w + len(m.columns) * cell))
    header = 28
    width = sum(s[2] for s in sizes) + 30 * (len(panels) + 1)
    height = header + 20 + max(s[1] for s in sizes) + 20
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((10, 6), title, font=_font(14), fill=BLACK)
    x0 = 30
    for (name, m), (label_w, _, panel_w) in zip(panels, sizes, strict=True):
        top = header + 20
        draw.text((x0, header), f"{name}: accuracy {m.accuracy:.3f} ({m.total} samples)", font=font, fill=BLACK)
        grid_x, grid_y = x0 + label_w, top + label_w
        for j, column in enumerate(m.columns):  # predicted labels, vertical above the columns
            strip = _vertical_text(column, font)
            image.paste(strip, (grid_x + j * cell + (cell - strip.width) // 2, grid_y - strip.height - 4), strip)
        rows = m.counts.sum(axis=1)
        for i, target in enumerate(m.classes):
            tw, th = _text_size(font, target)
            draw.text((grid_x - tw - 6, grid_y + i * cell + (cell - th) // 2 - 2), target, font=font, fill=BLACK)
            for j in range(len(m.columns)):
                count = int(m.counts[i, j])
                fraction = count / rows[i] if rows[i] else 0.0
                shade = tuple(round(255 - fraction * (255 - c)) for c in PALETTE[0])
                box = (grid_x + j * cell, grid_y + i * cell, grid_x + (j + 1) * cell, grid_y + (i + 1) * cell)
                draw.rectangle(box, fill=shade, outline=LIGHT)
                if count:
                    text = str(count)
                    cw, ch = _text_size(font, text)
                    fill = WHITE if fraction > 0.5 else BLACK
                    draw.text((box[0] + (cell - cw) // 2, box[1] + (cell - ch) // 2 - 2), text, font=font, fill=fill)
        for i in range(len(m.classes)):  # the diagonal (correct) cells framed, over their neighbours' borders
            draw.rectangle(
                (grid_x + i * cell, grid_y + i * cell, grid_x + (i + 1) * cell, grid_y + (i + 1) * cell), outline=BLACK
            )
        x0 += panel_w + 30
    return image


def _nice_step(span: float, ticks: int = 5) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving about `ticks` ticks over `span`."""
    raw = max(span, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def curve_figure(
    title: str,
    series: dict[str, list[tuple[float, float]]],
    size: tuple[int, int] = (720, 360),
    x_label: str = "step",
    y_max: float | None = 1.0,
    empty_note: str = "no oracle evaluations in stats.jsonl",
    y_label: str = "",
    legend: Literal["right", "below"] = "right",
) -> Image.Image:
    """Values in [0, y_max] (accuracy by default) against training step or minutes, one line per series.

    `y_max=None` fits the range to the data: max(1, the largest value rounded up to a quarter). The legend goes
    right of the plot or below it (the image's height then leaves 18 px per series under the x label).
    """
    if legend not in ("right", "below"):
        raise ValueError(f"legend must be 'right' or 'below', got {legend!r}")
    font = _font()
    width, height = size
    below = legend == "below"
    left, right, top = 50, 14 if below else 170, 34
    bottom = 44 + 18 * len(series) if below else 40
    image = Image.new("RGB", size, WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((left, 8), title, font=_font(14), fill=BLACK)
    x1, y1 = width - right, height - bottom
    if y_max is None:
        y_max = max(1.0, math.ceil(max((v for points in series.values() for _, v in points), default=1.0) * 4) / 4)
    max_step = max((s for points in series.values() for s, _ in points), default=1) or 1
    step_tick = _nice_step(max_step)
    x_max = math.ceil(max_step / step_tick) * step_tick

    def px(step: float, value: float) -> tuple[float, float]:
        return left + (x1 - left) * step / x_max, y1 - (y1 - top) * min(max(value, 0.0), y_max) / y_max

    for k in range(5):  # value grid every quarter of the range
        _, y = px(0, k * y_max / 4)
        draw.line([(left, y), (x1, y)], fill=LIGHT)
        draw.text((8, y - 7), f"{k * y_max / 4:.3g}", font=font, fill=GREY)
    for k in range(int(round(x_max / step_tick)) + 1):
        x, _ = px(k * step_tick, 0)
        draw.line([(x, y1), (x, y1 + 4)], fill=GREY)
        label = f"{k * step_tick:g}"
        draw.text((x - _text_size(font, label)[0] / 2, y1 + 6), label, font=font, fill=GREY)
    draw.text(((left + x1) / 2 - 12, y1 + 22), x_label, font=font, fill=GREY)
    if y_label:
        draw.text((left + 4, top + 2), y_label, font=font, fill=GREY)
    draw.rectangle((left, top, x1, y1), outline=GREY)
    for n, (name, points) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        xy = [px(s, v) for s, v in sorted(points)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for x, y in xy:
            draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=colour)
        lx, ly = (left, y1 + 40 + 18 * n) if below else (x1 + 12, top + 4 + 18 * n)
        draw.line([(lx, ly + 7), (lx + 24, ly + 7)], fill=colour, width=3)
        draw.text((lx + 30, ly), name, font=font, fill=BLACK)
    if not series:
        draw.text((left + 12, top + 12), empty_note, font=font, fill=GREY)
    return image


def _wrap(text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and _text_size(font, f"{lines[-1]} {word}")[0] <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def preview_figure(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]], column_titles: Sequence[str], min_cell: int = 128
) -> Image.Image:
    """A labelled grid: one row per prompt, one (H, W, 3) uint8 image per column, upscaled (nearest) to at least
    `min_cell` pixels so small renders stay readable."""
    font = _font()
    side = rows[0][1][0].shape[0]
    cell = side * max(1, math.ceil(min_cell / side))
    label_w, header, gap = 170, 22, 4
    columns = len(column_titles)
    image = Image.new("RGB", (label_w + columns * (cell + gap), header + len(rows) * (cell + gap)), WHITE)
    draw = ImageDraw.Draw(image)
    for j, title in enumerate(column_titles):
        draw.text((label_w + j * (cell + gap) + 2, 4), title, font=font, fill=BLACK)
    for i, (label, images) in enumerate(rows):
        if len(images) != columns:
            raise ValueError(f"row {label!r} has {len(images)} images for {columns} columns")
        y = header + i * (cell + gap)
        for k, line in enumerate(_wrap(label, font, label_w - 12)):
            draw.text((6, y + 6 + 15 * k), line, font=font, fill=BLACK)
        for j, img in enumerate(images):
            tile = Image.fromarray(np.ascontiguousarray(img)).resize((cell, cell), Image.Resampling.NEAREST)
            image.paste(tile, (label_w + j * (cell + gap), y))
    return image


def stack_figures(images: Sequence[Image.Image]) -> Image.Image:
    """Figures one above the other on white, left-aligned."""
    width = max(im.width for im in images)
    out = Image.new("RGB", (width, sum(im.height for im in images)), WHITE)
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height
    return out
