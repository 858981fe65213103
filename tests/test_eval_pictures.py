"""The demo pictures on a tiny generator: sizes, the held-out mark, the teacher's colour, frames, curves."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from support.generation import save_tiny_generator, use_hash_encoder

from student.eval import pictures as pic
from student.eval.figures import PALETTE
from student.generate.api import ET3D
from student.generate.preview import save_image

CONFIG = pic.PicturesConfig(
    train_prompts=2, heldout_prompts=1, seeds=2, cell=64, turntable_frames=4, interpolation_steps=3,
    curve_checkpoints=2, diversity_seeds=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder with two tiny checkpoints and a stats.jsonl of two evaluations (and a line cut by a crash)."""
    run = tmp_path_factory.mktemp("runs") / "00000-tiny"
    first = save_tiny_generator(run / "checkpoints" / "step-00000010")
    shutil.copytree(first, run / "checkpoints" / "step-00000020")
    records = [
        {"kind": "train", "step": 10, "wall_s": 60.0},
        {"kind": "eval", "step": 10, "wall_s": 60.0, "train/colour": 0.25, "heldout/colour": 0.125},
        {"kind": "eval", "step": 20, "wall_s": 180.0, "train/colour": 0.75, "heldout/colour": 0.5},
    ]
    (run / "stats.jsonl").write_text("\n".join(json.dumps(r) for r in records) + '\n{"kind": "ev')
    return run


@pytest.fixture
def model(run_dir, monkeypatch) -> ET3D:
    use_hash_encoder(monkeypatch, 384)
    return ET3D.from_pretrained(run_dir)


def test_grid_marks_held_out_rows_and_shows_the_teachers_colour(model):
    image = np.asarray(pic.comparison_grid(model, ["a red cube", "a blue sphere"], ["a green cone"], CONFIG))
    assert image.shape[1] >= 190 + 2 * (2 * 64 + 10)
    header, cell = 44, 64
    rows = [image[header + i * (cell + 6) : header + i * (cell + 6) + cell] for i in range(3)]
    mark = np.array(pic.HELD_OUT)
    assert [bool((row[:, :4] == mark).all(-1).mean() > 0.9) for row in rows] == [False, False, True]
    # The teacher's cell of each row shows its prompt's colour (red, blue, green dominant channel).
    for row, channel in zip(rows, (0, 2, 1), strict=True):
        teacher = row[:, 190 : 190 + cell].reshape(-1, 3).astype(int)
        fg = teacher[teacher.min(1) < 200]
        assert len(fg) > 50 and np.bincount(fg.argmax(1), minlength=3).argmax() == channel


def test_turntable_strip_and_sizes(model):
    frames = pic.turntable(model, ["a red cube", "a blue sphere"], CONFIG)
    assert len(frames) == 4 and frames[0].size == (2 * 256, 256 + 24)  # cells grown to reach 512 px
    assert not np.array_equal(np.asarray(frames[0]), np.asarray(frames[1]))  # it turns
    strip = pic.interpolation_strip(model, "a red cube", "a blue sphere", CONFIG)
    assert strip.size[0] >= pic.MIN_WIDTH


def test_training_curve_reads_minutes_and_measures_each_checkpoint(model, run_dir, tmp_path):
    accuracy = pic.accuracy_series(run_dir / "stats.jsonl")
    assert accuracy == {"train/colour": [(1.0, 0.25), (3.0, 0.75)], "heldout/colour": [(1.0, 0.125), (3.0, 0.5)]}
    diversity = pic.diversity_series(model, run_dir, ["a red cube", "a blue sphere"], CONFIG)
    assert [m for m, _ in diversity["diversity: image L1"]] == [1.0, 3.0]  # steps 10, 20 at 1 and 3 minutes
    assert all(v >= 0 for pts in diversity.values() for _, v in pts)
    image = pic.training_curve(accuracy, diversity)
    path = save_image(image, tmp_path / "curve.png")
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert pixels.shape[1] >= pic.MIN_WIDTH
    for colour in PALETTE[:2]:  # both accuracy lines are drawn
        assert (pixels[:, :520] == colour).all(-1).sum() > 20


def test_varied_prompts_cover_colours_and_shapes_first():
    prompts = ["a red cube", "a red sphere", "a blue cube", "a blue sphere", "a green cone"]
    assert pic.varied_prompts(prompts, 3) == ["a red cube", "a blue sphere", "a green cone"]
