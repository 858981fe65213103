"""Training state: what a checkpoint holds and restores, so a resumed run continues bit for bit.

A checkpoint directory (written atomically with `pipeline.atomic.atomic_dir`; file names in `student/run_layout.py`)
holds the EMA generator (loadable by `TriplaneGenerator.from_pretrained`), G, D and both Adam states (tensors
only, never pickle), the step, images seen, training clocks, data position, Adam hyper-parameters, the
precision and the fp16 loss scales, and the resolved run config.

Randomness needs no saved generator state: every step draws from an rng seeded by (seed, rank, step)
(`step_rng`), and the data order is fixed by (seed, epoch) plus the saved data position.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from pipeline.atomic import atomic_dir
from student.config import SCHEMA_VERSION, TrainConfig, to_dict
from student.model.generator import TriplaneGenerator
from student.run_layout import (
    CHECKPOINT_RUN_CONFIG,
    TRAIN_META,
    TRAIN_STATE,
    TRAIN_STATE_G,
    check_training_files,
    read_json_object,
    save_training_prompts,
)
from student.train.anchors import SampleCodes
from student.train.batch_stream import DataPosition
from student.train.mixed_precision import LossScaling


@dataclass(frozen=True)
class Progress:
    step: int = 0  # optimisation steps completed
    nimg: int = 0  # real images shown to D, all workers together
    elapsed_s: float = 0.0  # training wall-clock, summed over resumed sessions
    cpu_s: float = 0.0  # CPU time of the training process, summed likewise (load-independent effort)
    data: DataPosition = DataPosition()  # this worker's position in its own shards


def step_rng(seed: int, rank: int, step: int, device: torch.device | str = "cpu", stream: int = 0) -> torch.Generator:
    """A generator for one step of one worker. Stream 0 (on the model's device) draws z, sample jitter and the
    regularisers; stream 1 (CPU) picks the teacher views. Distinct streams get unrelated seeds."""
    digest = hashlib.sha256(f"{seed}|{rank}|{step}|{stream}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "big") >> 1)


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().cpu().contiguous() for k, v in tensors.items()}


def _optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = opt.state_dict()
    tensors = {}
    for index, state in sd["state"].items():
        for name, value in state.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"optimizer state {name!r} is a {type(value).__name__}, expected a tensor")
            tensors[f"{prefix}{index}.{name}"] = value.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def _optimizer_state(prefix: str, tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, name = key[len(prefix) :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    path: Path,
    *,
    G: TriplaneGenerator,
    G_ema: TriplaneGenerator,
    D: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    progress: Progress,
    run_config: TrainConfig,
    loss_scaling: LossScaling | None = None,
    training_prompts: tuple[list[str], torch.Tensor] | None = None,
    data_by_rank: Sequence[DataPosition] | None = None,
    anchor: tuple[nn.Module | None, torch.optim.Optimizer | None] = (None, None),
) -> Path:
    """Write one complete checkpoint directory atomically; returns its path.

    `training_prompts` (prompts (P,), embeddings (P, D)) is recorded for generation's out-of-reach warning.
    `data_by_rank`: every data-parallel worker's data position, by rank (workers read different shards, so each
    resumes from its own); default: `progress.data`, a single worker's. `anchor`: the module anchored
    latents come from (view encoder or per-sample codes, the codes saved with their rows' sample keys) and its
    optimiser; (None, None) without anchored latents.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g_tensors, g_groups = _optimizer_tensors("opt_g.", opt_g)
    d_tensors, d_groups = _optimizer_tensors("opt_d.", opt_d)
    tensors = {**_prefixed(TRAIN_STATE_G, G.state_dict()), **_prefixed("D.", D.state_dict()), **g_tensors, **d_tensors}
    meta = {
        "schema_version": SCHEMA_VERSION,
        "step": progress.step,
        "nimg": progress.nimg,
        "elapsed_s": progress.elapsed_s,
        "cpu_s": progress.cpu_s,
        "data_by_rank": [{"epoch": p.epoch, "batch": p.batch} for p in (data_by_rank or [progress.data])],
        "opt_g_param_groups": g_groups,
        "opt_d_param_groups": d_groups,
        "precision": run_config.optim.precision,
        "loss_scaling": loss_scaling.state_dict() if loss_scaling is not None else {},
    }
    net, opt = anchor
    if net is not None:
        a_tensors, a_groups = _optimizer_tensors("opt_anchor.", opt)
        tensors.update({**_prefixed("anchor.", net.state_dict()), **a_tensors})
        meta.update({"anchor_latent": type(net).__name__, "opt_anchor_param_groups": a_groups})
        if isinstance(net, SampleCodes):
            meta["code_keys"] = net.keys
    with atomic_dir(path) as tmp:
        G_ema.save_pretrained(tmp)
        if training_prompts is not None:
            save_training_prompts(tmp, *training_prompts)
        save_file(tensors, str(tmp / TRAIN_STATE))
        (tmp / TRAIN_META).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / CHECKPOINT_RUN_CONFIG).write_text(json.dumps(to_dict(run_config), indent=2) + "\n")
    return path


def load_checkpoint(
    path: Path,
    *,
    G: TriplaneGenerator,
    G_ema: TriplaneGenerator,
    D: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    loss_scaling: LossScaling | None = None,
    rank: int = 0,
    world: int = 1,
    anchor: tuple[nn.Module | None, torch.optim.Optimizer | None] = (None, None),
) -> Progress:
    """Restore models, optimiser states and fp16 loss scales in place from a checkpoint directory; returns where
    training stood, with worker `rank`'s own data position. The optimisers keep the hyper-parameters they were
    built with (the resumed run's config). Anchored latents: per-sample codes are matched by sample key; what
    the checkpoint does not hold (codes of other samples; everything, from a run without them or with the other
    kind) starts fresh."""
    path = Path(path)
    check_training_files(path)
    meta = read_json_object(path / TRAIN_META)
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: training state schema {meta.get('schema_version')!r}, this code reads {SCHEMA_VERSION}"
        )
    tensors = load_file(str(path / TRAIN_STATE))
    G.load_state_dict({k[len(TRAIN_STATE_G) :]: v for k, v in tensors.items() if k.startswith(TRAIN_STATE_G)})
    D.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("D.")})
    G_ema.load_state_dict(TriplaneGenerator.from_pretrained(path).state_dict())
    for prefix, opt in (("opt_g.", opt_g), ("opt_d.", opt_d)):
        _restore_optimizer(opt, prefix, tensors, meta)
    if loss_scaling is not None:
        loss_scaling.load_state_dict(meta.get("loss_scaling", {}))
    if anchor[0] is not None:
        _load_anchor(path, meta, tensors, *anchor)
    data = _resume_position(meta, rank, world)
    return Progress(int(meta["step"]), int(meta["nimg"]), float(meta["elapsed_s"]), float(meta["cpu_s"]), data)


def _restore_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Load an optimiser's moments and step counts. The optimiser as built keeps the run config's
    hyper-parameters (lr, betas), which `--optim.lr_g=` and friends may have changed on resume."""
    wanted = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
    opt.load_state_dict(_optimizer_state(prefix, tensors, meta[f"{prefix[:-1]}_param_groups"]))
    for group, hyper in zip(opt.param_groups, wanted, strict=True):
        group.update(hyper)


def _load_anchor(
    path: Path, meta: dict, tensors: dict[str, torch.Tensor], net: nn.Module, opt: torch.optim.Optimizer
) -> None:
    """Restore the anchored latents' module and its Adam moments (codes by sample key; their moments only when
    the rows are the same samples)."""
    kind = type(net).__name__
    if meta.get("anchor_latent") != kind:
        tqdm.write(f"{path.name} holds no anchored latents from a {kind}: they start fresh")
        return
    state = {k[len("anchor.") :]: v for k, v in tensors.items() if k.startswith("anchor.")}
    if isinstance(net, SampleCodes):
        matched = net.load_by_key(meta["code_keys"], state["table"])
        if list(meta["code_keys"]) != net.keys:
            tqdm.write(f"anchored latents: {matched} of {len(net.keys)} samples' codes restored, the rest start fresh")
            return
    else:
        net.load_state_dict(state)
    _restore_optimizer(opt, "opt_anchor.", tensors, meta)


def _resume_position(meta: dict, rank: int, world: int) -> DataPosition:
    """Worker `rank`'s data position. With as many workers as wrote the checkpoint each resumes exactly where it
    was. With another count the shards are dealt out differently, so no position carries over: every worker
    starts the epoch after the furthest one reached (no sample is seen twice within an epoch)."""
    by_rank = meta["data_by_rank"] if "data_by_rank" in meta else [meta["data"]]  # older: one worker's "data"
    saved = [DataPosition(int(p["epoch"]), int(p["batch"])) for p in by_rank]
    if len(saved) == world:
        return saved[rank]
    epoch = max(p.epoch for p in saved) + 1
    if rank == 0:
        tqdm.write(
            f"resuming {len(saved)} data-parallel worker(s)' checkpoint with {world}: the shards are dealt out "
            f"anew, so the data order restarts at epoch {epoch}"
        )
    return DataPosition(epoch, 0)


def read_run_config(path: Path) -> dict:
    """The resolved run config stored in a checkpoint directory (a dict; rebuild with `config.from_dict`).
    Raises CheckpointLayoutError (a ValueError) for a folder a run cannot resume from."""
    check_training_files(Path(path))
    return read_json_object(Path(path) / CHECKPOINT_RUN_CONFIG)
