"""Reading weight files and loading them strictly, with errors that name the bad keys.

Two on-disk layouts hold MVDream's UNet under the same key names (docs/mvdream.md
§Key layouts): the diffusers folder's ``unet/diffusion_pytorch_model.safetensors`` (bare keys) and the
original single-file ``sd-v2.1-base-4view.pt`` (``model.diffusion_model.`` + key, next to the VAE,
the OpenCLIP text tower and the noise-schedule buffers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

_SAFETENSORS_SUFFIXES = (".safetensors",)
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model."
# The 12 noise-schedule buffers of MVDream's LatentDiffusionInterface (docs/mvdream.md §Key layouts): recomputed by
# the DDIM scheduler from its config, so they are read past.
SCHEDULE_BUFFERS = frozenset(
    {
        "betas",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
    }
)
_LIST_LIMIT = 20  # keys named per error line; the count is always given


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, or of a torch pickle read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in _SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        return load_file(str(path))
    if suffix not in _PICKLE_SUFFIXES:
        accepted = ", ".join(_SAFETENSORS_SUFFIXES + _PICKLE_SUFFIXES)
        raise ValueError(f"unsupported weights file type {path.name!r}; accepted suffixes: {accepted}")
    # weights_only refuses arbitrary pickled code: a checkpoint holds tensors, never modules.
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated file or one holding pickled objects: name the file, keep it short
        raise ValueError(f"cannot read {path} as a weights-only torch checkpoint: {type(e).__name__}: {e}") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        kinds = sorted({type(v).__name__ for v in loaded.values()}) if isinstance(loaded, dict) else [type(loaded)]
        raise ValueError(f"{path} is not a flat state dict of tensors (found {kinds}); MVDream's checkpoint is one")
    return loaded


def name_keys(keys: list[str] | set[str]) -> str:
    """``N: k1, k2, ...`` (sorted, at most `_LIST_LIMIT` named)."""
    keys = sorted(keys)
    more = f", ... ({len(keys) - _LIST_LIMIT} more)" if len(keys) > _LIST_LIMIT else ""
    return f"{len(keys)}: {', '.join(keys[:_LIST_LIMIT])}{more}"


def load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str, assign: bool = False) -> None:
    """Load `state_dict` into `module`: every key used, none missing, every shape equal.

    assign=False copies into the module's tensors (converting dtypes); assign=True makes the file's
    tensors the parameters (for a module built on the meta device).
    """
    expected = module.state_dict()
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    wrong_shape = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state_dict))
        if state_dict[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {name_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {name_keys(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatches (file vs model) {name_keys(wrong_shape)}")
    if problems:
        raise ValueError(f"{what} state dict does not match the model: " + "; ".join(problems))
    module.load_state_dict(state_dict, strict=True, assign=assign)


@dataclass(frozen=True)
class OriginalCheckpoint:
    """The parts of MVDream's single-file checkpoint this project uses.

    unet: UNet tensors with the ``model.diffusion_model.`` prefix stripped (bare MVDream keys)
    vae:  VAE tensors with the ``first_stage_model.`` prefix stripped (ldm names, see `vae_convert`)
    """

    unet: dict[str, torch.Tensor]
    vae: dict[str, torch.Tensor]


def split_original_checkpoint(state_dict: dict[str, torch.Tensor]) -> OriginalCheckpoint:
    """Sort the keys of the original checkpoint into its groups (docs/mvdream.md §Key layouts).

    The OpenCLIP text tower (``cond_stage_model.*``) and the schedule buffers are read past: the text
    encoder comes from a transformers folder and the schedule from the scheduler config. Any other
    key means this is not an MVDream checkpoint, and is named in the error.
    """
    unet, vae, stray = {}, {}, []
    for key, value in state_dict.items():
        if key.startswith(UNET_PREFIX):
            unet[key[len(UNET_PREFIX) :]] = value
        elif key.startswith(VAE_PREFIX):
            vae[key[len(VAE_PREFIX) :]] = value
        elif not key.startswith(TEXT_PREFIX) and key not in SCHEDULE_BUFFERS:
            stray.append(key)
    if not unet:
        raise ValueError(f"no {UNET_PREFIX}* keys: this is not an original MVDream checkpoint")
    if stray:
        raise ValueError(
            f"unexpected keys in the original MVDream checkpoint {name_keys(stray)}; expected only "
            f"{UNET_PREFIX}*, {VAE_PREFIX}*, {TEXT_PREFIX}* and the schedule buffers {sorted(SCHEDULE_BUFFERS)}"
        )
    if not vae:
        raise ValueError(f"no {VAE_PREFIX}* keys: the original MVDream checkpoint holds its VAE under that prefix")
    return OriginalCheckpoint(unet=unet, vae=vae)
