"""Checkpoint files: atomic writes, the `config.json` + `model.safetensors` layout, finding the newest one.

A training run `runs/train/00000-<preset>/` keeps its checkpoints in `checkpoints/step-XXXXXXXX/`. Each one is
a directory `TriplaneGenerator.from_pretrained` loads (the EMA generator: `config.json` + `model.safetensors`)
plus the trainer's state (`student/train/state.py`). Checkpoints are written with `pipeline.atomic.atomic_dir`
(temporary sibling directory, fsync, rename), so a directory with the final name is complete.
"""

from __future__ import annotations

import re
from pathlib import Path

MODEL_CONFIG = "config.json"
MODEL_WEIGHTS = "model.safetensors"
CHECKPOINTS_DIR = "checkpoints"
_STEP_DIR = re.compile(r"^step-(\d{8})$")
_RUN_DIR = re.compile(r"^(\d{5})-(.+)$")


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def run_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of one run as (step, dir), oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        m = _STEP_DIR.match(d.name)
        if m and (d / MODEL_CONFIG).is_file() and (d / MODEL_WEIGHTS).is_file():
            found.append((int(m.group(1)), d))
    return sorted(found)


def run_dirs(root: Path) -> list[tuple[int, str, Path]]:
    """Numbered run directories under `root` as (number, preset, dir), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for d in root.iterdir():
        m = _RUN_DIR.match(d.name)
        if m and d.is_dir():
            runs.append((int(m.group(1)), m.group(2), d))
    return sorted(runs)


def find_latest_checkpoint(root: str | Path = "runs/train", preset: str | None = None) -> Path | None:
    """The newest checkpoint of `make train`: the last step of the highest-numbered run that has one.

    With `preset`, only runs of that preset count. Returns the directory to pass to `from_pretrained`.
    """
    for _, run_preset, run_dir in reversed(run_dirs(Path(root))):
        if preset is not None and run_preset != preset:
            continue
        ckpts = run_checkpoints(run_dir)
        if ckpts:
            return ckpts[-1][1]
    return None
