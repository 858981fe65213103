"""Load a generator checkpoint and its text encoder, turning every way it can fail into one clear line.

A checkpoint is a folder with ``config.json`` and safetensors weights (`student/checkpoint.py`). The
failures users meet are checked in the order they would hit them, each naming the file and the fault:
a missing folder or file, JSON that does not parse, weights that are not safetensors, weights whose
shapes do not fit the config, and a text encoder other than the one the generator was trained with.
"""

from __future__ import annotations

import json
from pathlib import Path

from student.generate.errors import CheckpointError, OptionError

HOW_TO_GET_ONE = "train one with `make train` (or `make demo` for a quick CPU run), or pass --ckpt DIR"


def resolve_checkpoint(ckpt: str | Path | None, root: str | Path = "runs/train") -> Path:
    """The checkpoint folder to load.

    None means the newest checkpoint under ``root``. A folder without weights that holds runs or
    a run's ``checkpoints/`` (``runs/train``, ``runs/train/00002-cpu``) resolves to its newest checkpoint,
    so users can point at a run; anything else is returned as given and checked by `load_generator`.
    """
    from student.checkpoint import MODEL_WEIGHTS, find_latest_checkpoint, run_checkpoints

    if ckpt is None:
        found = find_latest_checkpoint(root)
        if found is None:
            raise CheckpointError(f"no checkpoint found under {str(root)!r}; {HOW_TO_GET_ONE}")
        return Path(found)
    folder = Path(ckpt)
    # A run folder has a config.json too (the run's), but no weights: only weights mark a checkpoint.
    if folder.is_dir() and not (folder / MODEL_WEIGHTS).exists():
        in_run = run_checkpoints(folder)
        found = in_run[-1][1] if in_run else find_latest_checkpoint(folder)
        if found is not None:
            return Path(found)
    return folder


def check_checkpoint_files(folder: Path) -> None:
    """Fail early, naming the file, on what `from_pretrained` would otherwise report obscurely."""
    from student.checkpoint import MODEL_CONFIG, MODEL_WEIGHTS

    if not folder.exists():
        raise CheckpointError(f"checkpoint {str(folder)!r} does not exist; {HOW_TO_GET_ONE}")
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {str(folder)!r} is a file; --ckpt takes the checkpoint folder")
    config, weights = folder / MODEL_CONFIG, folder / MODEL_WEIGHTS
    for path in (config, weights):
        if not path.is_file():
            raise CheckpointError(f"checkpoint {str(folder)!r} has no {path.name} (is it a checkpoint folder?)")
    try:
        meta = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config}: not readable JSON ({_first_line(e)})") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"{config}: expected a JSON object, got {type(meta).__name__}")
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            f.keys()
    except Exception as e:  # safetensors raises its own SafetensorError as well as OSError
        raise CheckpointError(f"{weights}: not a valid safetensors file ({_first_line(e)})") from e


def resolve_device(device: str):
    """'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available) -> torch.device, or an OptionError saying why not."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise OptionError(f"unknown device {device!r}; accepted: cpu, cuda, cuda:N, auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"device {device!r}: CUDA is not available to torch {torch.__version__}; use cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise OptionError(f"device {device!r}: generation runs on cpu or cuda")
    return resolved


def load_generator(folder: Path, device="cpu"):
    """`TriplaneGenerator.from_pretrained` behind the checks above; returns the generator in eval mode."""
    from student.model.generator import TriplaneGenerator

    check_checkpoint_files(folder)
    try:
        generator = TriplaneGenerator.from_pretrained(folder, device=device)
    except (ValueError, KeyError, RuntimeError, OSError, TypeError) as e:
        # load_state_dict lists every mismatching tensor over many lines; the first names the problem.
        raise CheckpointError(f"checkpoint {str(folder)!r} does not load: {_first_line(e)}") from e
    return generator.eval()


def load_matching_text_encoder(generator, folder: Path, path: str | None = None, precision: str = "auto", device="cpu"):
    """The text encoder the generator was trained with, checked to produce embeddings of its width.

    precision "auto" takes the encoder's fastest (minilm: bf16 weights, pooled cosine > 0.9999 to the fp32
    embeddings the student was trained on); "fp32" the exact reference.
    """
    from pipeline.text import load_text_encoder

    name = generator.text_encoder_name
    try:
        encoder = load_text_encoder(name, path=path, device=device, precision=precision)
    except (ValueError, FileNotFoundError, OSError) as e:
        raise CheckpointError(f"checkpoint {str(folder)!r} needs text encoder {name!r}: {_first_line(e)}") from e
    check_text_encoder(generator, encoder, folder)
    return encoder


def check_text_encoder(generator, encoder, folder: Path | str) -> None:
    if encoder.name != generator.text_encoder_name or encoder.dim != generator.text_dim:
        raise CheckpointError(
            f"checkpoint {str(folder)!r} was trained on text encoder {generator.text_encoder_name!r} "
            f"({generator.text_dim}-d), got {encoder.name!r} ({encoder.dim}-d)"
        )


def _first_line(e: BaseException) -> str:
    """The message's first line, joined with the next when it only introduces a list (load_state_dict's
    "Error(s) in loading state_dict for X:" is followed by the line naming the tensor)."""
    lines = [ln.strip() for ln in (str(e).strip() or type(e).__name__).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0]
