"""The run folder and checkpoint layout: every file name and folder pattern, finding and validating them.

    runs/train/                                 RUNS_ROOT, one numbered folder per training run
      00002-cpu/                                run_dir_name(2, "cpu")
        config.json                             RUN_CONFIG: the resolved run config
        stats.jsonl                             STATS: the run's log (`student/train/stats.py`)
        previews/step-00000600.png              PREVIEWS_DIR, step_name(600) + ".png"
        previews/prompts.txt                    PREVIEW_INDEX: the prompt and seed of each grid row
        checkpoints/step-00000600/              CHECKPOINTS_DIR, step_name(600)
          config.json + model.safetensors       MODEL_CONFIG, MODEL_WEIGHTS: the EMA generator
          train_state.safetensors               TRAIN_STATE: G, D and both Adam states
          train_state.json                      TRAIN_META: step, images seen, clocks, data positions
          train_config.json                     CHECKPOINT_RUN_CONFIG: the run config it was trained with
          training_prompts.safetensors          TRAINING_PROMPTS: the prompts trained on and their embeddings

A checkpoint is written whole with `pipeline.atomic.atomic_dir` (`student/train/state.py`), so a folder with a
step name is complete; only weights mark a checkpoint (a run folder holds a `config.json` too). The training
prompts (for generation's out-of-reach warning, `student/generate/reach.py`) are optional: checkpoints written
before they were recorded lack the file, and readers skip what needs it. This module
imports nothing of the student, so the model, training, evaluation and generation all read the layout here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads only when training prompts are read or written: finding checkpoints stays cheap
    import torch

RUNS_ROOT = Path("runs/train")
RUN_CONFIG = "config.json"
STATS = "stats.jsonl"
PREVIEWS_DIR = "previews"
PREVIEW_INDEX = "prompts.txt"
CHECKPOINTS_DIR = "checkpoints"
MODEL_CONFIG = "config.json"
MODEL_WEIGHTS = "model.safetensors"
TRAIN_STATE = "train_state.safetensors"
TRAIN_META = "train_state.json"
CHECKPOINT_RUN_CONFIG = "train_config.json"
TRAIN_STATE_G = "G."  # TRAIN_STATE's key prefix of the trained (non-averaged) generator; "D.", "opt_g.", "opt_d."
TRAINING_PROMPTS = "training_prompts.safetensors"
MAX_TRAINING_PROMPTS = 10_000  # more are subsampled evenly: 10^4 x 1024-d in fp16 is 20 MB per checkpoint

_STEP = re.compile(r"^step-(\d{8,})$")  # step_name's output, any step
_RUN = re.compile(r"^(\d{5,})-(.+)$")  # run_dir_name's output

HOW_TO_GET_ONE = "train one with `make train` (or `make demo` for a quick CPU run), or pass --ckpt DIR"


class CheckpointLayoutError(ValueError):
    """A checkpoint folder that is missing, partial or unreadable; the message names the file and the fault."""


def step_name(step: int) -> str:
    """`step-00000600`: the name of a checkpoint folder (and, with `.png`, of a preview grid)."""
    if step < 0:
        raise ValueError(f"a step is >= 0, got {step}")
    return f"step-{step:08d}"


def parse_step(name: str) -> int | None:
    """The step a `step_name` spells, None for any other name."""
    m = _STEP.match(name)
    return int(m.group(1)) if m else None


def run_dir_name(number: int, preset: str) -> str:
    return f"{number:05d}-{preset}"


@dataclass(frozen=True)
class RunDir:
    """One training run's folder and the paths in it."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / RUN_CONFIG

    @property
    def stats(self) -> Path:
        return self.path / STATS

    @property
    def previews(self) -> Path:
        return self.path / PREVIEWS_DIR

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / step_name(step)

    def preview(self, step: int) -> Path:
        return self.previews / f"{step_name(step)}.png"

    @property
    def preview_index(self) -> Path:
        return self.previews / PREVIEW_INDEX


def run_dirs(root: str | Path) -> list[tuple[int, str, Path]]:
    """Numbered run folders under `root` as (number, preset, folder), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for d in root.iterdir():
        m = _RUN.match(d.name)
        if m and d.is_dir():
            runs.append((int(m.group(1)), m.group(2), d))
    return sorted(runs)


def next_run_dir(root: str | Path, preset: str) -> Path:
    """The folder a fresh run of `preset` gets: one number past the highest under `root`, whatever its preset."""
    runs = run_dirs(root)
    return Path(root) / run_dir_name(runs[-1][0] + 1 if runs else 0, preset)


def run_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of one run as (step, folder), oldest first (a folder without weights is skipped)."""
    root = RunDir(Path(run_dir)).checkpoints
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        step = parse_step(d.name)
        if step is not None and (d / MODEL_CONFIG).is_file() and (d / MODEL_WEIGHTS).is_file():
            found.append((step, d))
    return sorted(found)


def find_latest_checkpoint(root: str | Path = RUNS_ROOT, preset: str | None = None) -> Path | None:
    """The newest checkpoint under `root`: the last step of the highest-numbered run that has one.

    With `preset`, only runs of that preset count. Returns the folder to pass to `from_pretrained`.
    """
    for _, run_preset, run_dir in reversed(run_dirs(root)):
        if preset is not None and run_preset != preset:
            continue
        ckpts = run_checkpoints(run_dir)
        if ckpts:
            return ckpts[-1][1]
    return None


def resolve_checkpoint(ckpt: str | Path | None, root: str | Path = RUNS_ROOT) -> Path:
    """The checkpoint folder a user means.

    None means the newest checkpoint under `root`. A folder without weights that holds runs or a run's
    `checkpoints/` (`runs/train`, `runs/train/00002-cpu`) resolves to its newest checkpoint, so users can point
    at a run; anything else is returned as given, for `check_model_files` to judge.
    """
    if ckpt is None:
        found = find_latest_checkpoint(root)
        if found is None:
            raise CheckpointLayoutError(f"no checkpoint found under {str(root)!r}; {HOW_TO_GET_ONE}")
        return Path(found)
    folder = Path(ckpt)
    if folder.is_dir() and not (folder / MODEL_WEIGHTS).exists():
        in_run = run_checkpoints(folder)
        found = in_run[-1][1] if in_run else find_latest_checkpoint(folder)
        if found is not None:
            return Path(found)
    return folder


def run_of_checkpoint(path: str | Path) -> RunDir | None:
    """The run a checkpoint folder belongs to, None for a checkpoint outside a run's `checkpoints/`."""
    path = Path(path)
    return RunDir(path.parent.parent) if path.parent.name == CHECKPOINTS_DIR else None


def run_dir_for(path: str | Path) -> Path:
    """The run folder a checkpoint belongs to; a folder outside a run's `checkpoints/` is its own run folder."""
    run = run_of_checkpoint(path)
    return run.path if run is not None else Path(path)


def check_model_files(folder: Path) -> None:
    """The generator files `from_pretrained` reads are there and readable; raises CheckpointLayoutError naming
    the file and the fault (what `from_pretrained` would otherwise report obscurely)."""
    folder = Path(folder)
    if not folder.exists():
        raise CheckpointLayoutError(f"checkpoint {str(folder)!r} does not exist; {HOW_TO_GET_ONE}")
    if not folder.is_dir():
        raise CheckpointLayoutError(f"checkpoint {str(folder)!r} is a file; --ckpt takes the checkpoint folder")
    config, weights = folder / MODEL_CONFIG, folder / MODEL_WEIGHTS
    for path in (config, weights):
        if not path.is_file():
            raise CheckpointLayoutError(f"checkpoint {str(folder)!r} has no {path.name} (is it a checkpoint folder?)")
    read_json_object(config)
    _check_safetensors(weights)


def check_training_files(folder: Path) -> None:
    """A checkpoint a run can resume from: the trainer's state and the generator files, all there and readable."""
    folder = Path(folder)
    if not folder.is_dir():
        why = "a file" if folder.exists() else "no such folder"
        raise CheckpointLayoutError(f"{folder} is not a training checkpoint directory ({why})")
    for name in (CHECKPOINT_RUN_CONFIG, TRAIN_META, TRAIN_STATE, MODEL_CONFIG, MODEL_WEIGHTS):
        if not (folder / name).is_file():
            raise CheckpointLayoutError(f"{folder} is not a training checkpoint directory (no {name} in it)")
    read_json_object(folder / CHECKPOINT_RUN_CONFIG)
    read_json_object(folder / TRAIN_META)
    _check_safetensors(folder / TRAIN_STATE)
    check_model_files(folder)


def read_json_object(path: Path) -> dict:
    """A JSON object from a checkpoint file, or CheckpointLayoutError naming the file."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointLayoutError(f"{path}: not readable JSON ({first_line(e)})") from e
    if not isinstance(meta, dict):
        raise CheckpointLayoutError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as e:  # safetensors raises its own SafetensorError as well as OSError
        raise CheckpointLayoutError(f"{path}: not a valid safetensors file ({first_line(e)})") from e


def read_trained_generator_state(folder: str | Path) -> dict[str, torch.Tensor] | None:
    """The trained, non-averaged generator's state dict from TRAIN_STATE (its tensors only); None for a folder
    without trainer state (an exported model). Raises CheckpointLayoutError naming the file when unreadable."""
    from safetensors import safe_open

    path = Path(folder) / TRAIN_STATE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            names = [k for k in f.keys() if k.startswith(TRAIN_STATE_G)]  # noqa: SIM118 (a safe_open handle)
            return {k[len(TRAIN_STATE_G) :]: f.get_tensor(k) for k in names}
    except Exception as e:  # safetensors raises its own error type besides OSError
        raise CheckpointLayoutError(f"{path}: not a valid safetensors file ({first_line(e)})") from None


def checkpoint_step(folder: Path) -> tuple[int | None, float | None]:
    """(step, training seconds) of a checkpoint: from `train_state.json` when present, else the step its folder
    name spells (a generator saved by hand has neither: (None, None))."""
    meta_path = Path(folder) / TRAIN_META
    if meta_path.is_file():
        meta = read_json_object(meta_path)
        try:
            seconds = meta.get("elapsed_s")
            return int(meta["step"]), float(seconds) if seconds is not None else None
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointLayoutError(f"{meta_path}: unreadable training state ({type(e).__name__}: {e})") from None
    return parse_step(Path(folder).name), None


def first_line(e: BaseException) -> str:
    """The message's first line, joined with the next when it only introduces a list (load_state_dict's
    "Error(s) in loading state_dict for X:" is followed by the line naming the tensor)."""
    lines = [ln.strip() for ln in (str(e).strip() or type(e).__name__).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0]


@dataclass(frozen=True)
class TrainingPrompts:
    """The distinct prompts a generator was trained on and their pooled text embeddings."""

    prompts: list[str]  # (P,)
    embeddings: torch.Tensor  # (P, D) float32

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != len(self.prompts) or not self.prompts:
            raise ValueError(f"{len(self.prompts)} prompts with embeddings {tuple(self.embeddings.shape)}: need (P, D)")


def save_training_prompts(directory: str | Path, prompts: list[str], embeddings: torch.Tensor) -> Path:
    """Write TRAINING_PROMPTS into a checkpoint folder (fp16 embeddings, at most `MAX_TRAINING_PROMPTS` prompts
    spread evenly); returns its path. Call it inside the checkpoint's atomic_dir."""
    import torch
    from safetensors.torch import save_file

    data = TrainingPrompts(list(prompts), embeddings)
    keep = list(range(len(data.prompts)))
    if len(keep) > MAX_TRAINING_PROMPTS:
        keep = [round(i * len(data.prompts) / MAX_TRAINING_PROMPTS) for i in range(MAX_TRAINING_PROMPTS)]
    emb = data.embeddings[keep].detach().to("cpu", torch.float16).contiguous()  # (P', D)
    path = Path(directory) / TRAINING_PROMPTS
    metadata = {"prompts": json.dumps([data.prompts[i] for i in keep]), "total_prompts": str(len(data.prompts))}
    save_file({"embeddings": emb}, str(path), metadata=metadata)
    return path


def load_training_prompts(folder: str | Path) -> TrainingPrompts | None:
    """The training prompts a checkpoint folder records; None for a checkpoint without them. Raises
    CheckpointLayoutError naming the file when it is there but unreadable."""
    from safetensors import safe_open

    path = Path(folder) / TRAINING_PROMPTS
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            prompts = json.loads(f.metadata()["prompts"])
            embeddings = f.get_tensor("embeddings").float()
        return TrainingPrompts(prompts, embeddings)
    except Exception as e:  # safetensors raises its own error type; also KeyError, JSON errors
        raise CheckpointLayoutError(f"{path}: unreadable training prompts ({first_line(e)})") from None
