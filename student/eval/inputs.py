"""What an evaluation reads before any model work: the checkpoint's description and the prompt sets.

Every failure here is bad input (a missing checkpoint, a prompt file that does not parse, shards encoded
with another text encoder, a held-out prompt that was trained on) and is raised as `EvalInputError` with
the offending value, so `et3d-eval` can report it in one line and exit with status 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from student import run_layout
from student.config import SCHEMA_VERSION, GeneratorConfig, from_dict
from student.run_layout import MODEL_CONFIG, TRAIN_STATE, CheckpointLayoutError

if TYPE_CHECKING:
    from student.model.generator import TriplaneGenerator


class EvalInputError(ValueError):
    """Bad input to an evaluation; the message names the file or value and what would be accepted."""


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint folder described from its JSON files alone (no weights loaded)."""

    path: Path
    run_name: str  # the run directory's name ("00002-cpu"), or the folder's own name outside a run
    run_dir: Path | None  # the run directory holding `stats.jsonl`, when the checkpoint sits in one
    step: int | None  # training step, None when unknown
    train_seconds: float | None  # training wall-clock when the checkpoint was written
    config: GeneratorConfig

    @property
    def stats_path(self) -> Path | None:
        return run_layout.RunDir(self.run_dir).stats if self.run_dir is not None else None


def find_checkpoint(ckpt: Path | None, runs: Path) -> Path:
    """`ckpt` as given, or the newest checkpoint of a run folder / of the newest run under `runs`."""
    try:
        return run_layout.resolve_checkpoint(ckpt, root=runs)
    except CheckpointLayoutError as e:
        raise EvalInputError(str(e)) from None


def describe_checkpoint(path: str | Path) -> CheckpointInfo:
    """Read `config.json` (and the trainer's `train_state.json` when present) of a checkpoint folder."""
    path = Path(path)
    try:
        run_layout.check_model_files(path)
        meta = run_layout.read_json_object(path / MODEL_CONFIG)
        step, seconds = run_layout.checkpoint_step(path)
    except CheckpointLayoutError as e:
        raise EvalInputError(str(e)) from None
    if meta.get("schema_version") != SCHEMA_VERSION or "generator" not in meta:
        raise EvalInputError(
            f"{path / MODEL_CONFIG}: schema {meta.get('schema_version')!r}, kind {meta.get('kind')!r}; "
            f"expected a generator checkpoint of schema {SCHEMA_VERSION}"
        )
    try:
        config = from_dict(GeneratorConfig, meta["generator"], "generator")
    except ValueError as e:
        raise EvalInputError(f"{path / MODEL_CONFIG}: {e}") from None
    run = run_layout.run_of_checkpoint(path)
    run_dir = run.path if run is not None else None
    return CheckpointInfo(path, run_dir.name if run_dir else path.name, run_dir, step, seconds, config)


@dataclass(frozen=True)
class PromptSets:
    """The prompts to evaluate and what the shards tell about them."""

    train: list[str]  # prompts trained on (the corpus, else the shards' prompts sorted)
    heldout: list[str]  # prompts never trained on
    known: dict[str, torch.Tensor] = field(default_factory=dict)  # prompt -> (D,) embedding stored in the shards
    teacher: str | None = None  # the shards' teacher, None without shards
    text_encoder: tuple[str, int] | None = None  # the shards' (encoder name, dim), None without shards


def read_prompt_sets(shards: Path | None, prompts: Path | None, heldout: Path | None) -> PromptSets:
    """Training prompts from a corpus and/or a shard directory, held-out prompts from a corpus.

    With a corpus, it lists the training prompts and the shards only supply the embeddings they hold. A
    held-out prompt that is also a training prompt (or in the shards) is refused: its score would measure
    memorisation, not generalisation.
    """
    if shards is None and prompts is None:
        raise EvalInputError("no training prompts: pass --shards DIR (the shards trained on) and/or --prompts FILE")
    known: dict[str, torch.Tensor] = {}
    teacher = encoder = None
    if shards is not None:
        info = _scan(shards)
        known = dict(zip(info.prompts, info.embeddings.float(), strict=True))
        teacher, encoder = info.teacher, (info.text_encoder, info.text_dim)
    train = _read_corpus(prompts) if prompts is not None else sorted(known)
    held = _read_corpus(heldout) if heldout is not None else []
    leaked = [p for p in held if p in known or p in set(train)]
    if leaked:
        raise EvalInputError(
            f"held-out prompt(s) {', '.join(map(repr, leaked[:5]))}{' ...' if len(leaked) > 5 else ''} "
            f"of {heldout} are training prompts too; a held-out file must list prompts never trained on"
        )
    return PromptSets(train, held, known, teacher, encoder)


def _scan(shards: Path):
    from pipeline.dataset import describe_dataset
    from pipeline.shards import list_shards

    try:
        paths = list_shards(shards)
        if not paths:
            raise EvalInputError(f"shard directory {str(shards)!r} holds no .tar shards")
        return describe_dataset(shards, paths)
    except (FileNotFoundError, ValueError) as e:
        raise EvalInputError(str(e)) from None


def _read_corpus(path: Path) -> list[str]:
    from pipeline.prompts import read_corpus

    try:
        return read_corpus(path).prompts
    except (OSError, ValueError) as e:
        raise EvalInputError(str(e)) from None


def check_encoder(sets: PromptSets, name: str, dim: int) -> None:
    """The shards' text encoder must be the checkpoint's: their embeddings are what it was trained on."""
    if sets.text_encoder is not None and sets.text_encoder != (name, dim):
        shard_name, shard_dim = sets.text_encoder
        raise EvalInputError(
            f"the shards were encoded with {shard_name!r} ({shard_dim}-d) but the checkpoint expects {name!r} "
            f"({dim}-d); pass the shards the checkpoint was trained on"
        )


def embed_prompts(
    prompts: list[str], known: dict[str, torch.Tensor], encode: Callable[[list[str]], torch.Tensor]
) -> torch.Tensor:
    """(P, D) float32 embeddings: the shards' own where they hold the prompt, the rest encoded in one call.

    Reusing the stored embeddings evaluates the student on exactly the conditioning it was trained on.
    """
    if not prompts:
        raise EvalInputError("no prompts to embed")
    missing = [p for p in dict.fromkeys(prompts) if p not in known]
    encoded = dict(zip(missing, encode(missing).float(), strict=True)) if missing else {}
    table = known | encoded
    dims = {table[p].shape for p in prompts}
    if len(dims) != 1:
        raise EvalInputError(f"the shards' embeddings and the encoder's differ in shape: {sorted(dims)}")
    return torch.stack([table[p].float() for p in prompts])


def load_trained_generator(path: Path, ema: TriplaneGenerator) -> TriplaneGenerator | None:
    """The trained, non-averaged generator G of a training checkpoint, built like `ema` (its G_ema); None when
    the folder holds no trainer state (an exported model). Only G's tensors are read."""
    from student.model.generator import TriplaneGenerator

    state_path = Path(path) / TRAIN_STATE
    try:
        state = run_layout.read_trained_generator_state(path)
        if state is None:
            return None
        G = TriplaneGenerator(ema.config)
        G.load_state_dict(state)
    except CheckpointLayoutError as e:
        raise EvalInputError(str(e)) from None
    except Exception as e:  # safetensors raises its own error type besides OSError / RuntimeError
        raise EvalInputError(f"{state_path}: the trained generator does not load ({type(e).__name__}: {e})") from None
    return G.to(ema.device).eval()
