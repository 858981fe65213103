"""Load a generator checkpoint and its text encoder, turning every way it can fail into one clear line.

A checkpoint is a folder with ``config.json`` and safetensors weights (`student/run_layout.py`, which finds
and checks the files). The failures users meet are checked in the order they would hit them, each naming the
file and the fault:
a missing folder or file, JSON that does not parse, weights that are not safetensors, weights whose
shapes do not fit the config, and a text encoder other than the one the generator was trained with.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from student import run_layout
from student.generate.errors import CheckpointError, OptionError
from student.run_layout import RUNS_ROOT, first_line

if TYPE_CHECKING:  # the module itself is imported on first load, so that `et3d-gen --help` starts fast
    from student.model.generator import TriplaneGenerator


def resolve_checkpoint(ckpt: str | Path | None, root: str | Path = RUNS_ROOT) -> Path:
    """The checkpoint folder to load: `student.run_layout.resolve_checkpoint`, its faults as CheckpointError."""
    try:
        return run_layout.resolve_checkpoint(ckpt, root)
    except run_layout.CheckpointLayoutError as e:
        raise CheckpointError(str(e)) from e


def check_checkpoint_files(folder: Path) -> None:
    """Fail early, naming the file, on what `from_pretrained` would otherwise report obscurely."""
    try:
        run_layout.check_model_files(folder)
    except run_layout.CheckpointLayoutError as e:
        raise CheckpointError(str(e)) from e


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


def load_generator(folder: Path, device="cpu") -> TriplaneGenerator:
    """`TriplaneGenerator.from_pretrained` behind the checks above; returns the generator in eval mode."""
    from student.model.generator import TriplaneGenerator

    check_checkpoint_files(folder)
    try:
        generator = TriplaneGenerator.from_pretrained(folder, device=device)
    except (ValueError, KeyError, RuntimeError, OSError, TypeError) as e:
        # load_state_dict lists every mismatching tensor over many lines; the first names the problem.
        raise CheckpointError(f"checkpoint {str(folder)!r} does not load: {first_line(e)}") from e
    return generator.eval()


def load_matching_text_encoder(
    generator: TriplaneGenerator, folder: Path, path: str | None = None, precision: str = "auto", device="cpu"
):
    """The text encoder the generator was trained with, checked to produce embeddings of its width.

    precision "auto" takes the encoder's fastest (minilm: bf16 weights, pooled cosine > 0.9999 to the fp32
    embeddings the student was trained on); "fp32" the exact reference.
    """
    from pipeline.text import load_text_encoder

    name = generator.text_encoder_name
    try:
        encoder = load_text_encoder(name, path=path, device=device, precision=precision)
    except (ValueError, FileNotFoundError, OSError) as e:
        raise CheckpointError(f"checkpoint {str(folder)!r} needs text encoder {name!r}: {first_line(e)}") from e
    check_text_encoder(generator, encoder, folder)
    return encoder


def check_text_encoder(generator: TriplaneGenerator, encoder, folder: Path | str) -> None:
    if encoder.name != generator.text_encoder_name or encoder.dim != generator.text_dim:
        raise CheckpointError(
            f"checkpoint {str(folder)!r} was trained on text encoder {generator.text_encoder_name!r} "
            f"({generator.text_dim}-d), got {encoder.name!r} ({encoder.dim}-d)"
        )
