"""Assemble MVDream's components from either published layout (docs/mvdream.md §Key layouts).

* a diffusers-format folder: ``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``,
  ``tokenizer/``, ``scheduler/`` (the layout ``convert_mvdream_to_diffusers.py`` writes);
* the original single file (``sd-v2.1-base-4view.pt`` or a safetensors copy) plus a folder holding
  ``text_encoder/`` and ``tokenizer/`` (e.g. SD-2.1's), because MVDream's frozen OpenCLIP text tower
  is SD-2.1's, which the folder layout stores as a transformers `CLIPTextModel` (docs/mvdream.md
  §Key layouts, §Text encoder).

diffusers and transformers are imported here, inside `teacher_dump`, and only when a model loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from teacher_dump.mvdream.config import MultiViewUNetConfig
from teacher_dump.mvdream.original_config import MVDREAM_DDIM, SD21_4VIEW_UNET, SD21_VAE
from teacher_dump.mvdream.unet import MultiViewUNet
from teacher_dump.mvdream.vae_convert import convert_ldm_vae
from teacher_dump.mvdream.weights import load_strict, read_state_dict, split_original_checkpoint

if TYPE_CHECKING:
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

PIPELINE_CLASS = "MVDreamPipeline"
UNET_CLASS = "MultiViewUNetModel"
_WEIGHT_NAMES = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
}


@dataclass(frozen=True)
class MVDreamComponents:
    """Everything a sampler needs, on the CPU in float32 (or the file's dtype for the UNet).

    unet_weights: the file the UNet came from (identifies the model, e.g. in a teacher's config)
    """

    unet: MultiViewUNet
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler_config: dict[str, Any]
    unet_weights: Path


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def _weights_file(folder: Path, component: str) -> Path:
    for name in _WEIGHT_NAMES[component]:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no {component} weights in {folder}: expected one of {list(_WEIGHT_NAMES[component])}")


def unet_from_state_dict(config: MultiViewUNetConfig, state_dict: dict[str, torch.Tensor]) -> MultiViewUNet:
    """A UNet holding exactly `state_dict` (strict), in eval mode without gradients.

    Built on the meta device and filled by assignment: no random init of ~0.9 B parameters and no
    second copy of the weights in memory. Parameters keep the file's dtype until the caller casts.
    """
    with torch.device("meta"):
        unet = MultiViewUNet(config)
    load_strict(unet, state_dict, "UNet", assign=True)
    return unet.eval().requires_grad_(False)


def vae_from_state_dict(config: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> AutoencoderKL:
    """A diffusers `AutoencoderKL` from its config and an `AutoencoderKL`-named state dict (strict)."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    load_strict(vae, state_dict, "VAE")
    return vae.eval().requires_grad_(False)


def load_text_encoder(folder: str | Path) -> tuple[CLIPTextModel, CLIPTokenizer]:
    """transformers `CLIPTextModel` + `CLIPTokenizer` from ``folder/text_encoder`` and ``folder/tokenizer``."""
    from transformers import CLIPTextModel, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    folder = _require_dir(Path(folder), "text-encoder folder")
    encoder_dir = _require_dir(folder / "text_encoder", "text_encoder folder")
    tokenizer_dir = _require_dir(folder / "tokenizer", "tokenizer folder")
    # from_pretrained(dir) builds a working tokenizer in transformers 5 (vocab_file= does not,
    # docs/design.md §Text encoders).
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar per dump worker is noise
    try:
        encoder, info = CLIPTextModel.from_pretrained(str(encoder_dir), dtype=torch.float32, output_loading_info=True)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    bad = {k: sorted(map(str, info[k])) for k in ("missing_keys", "mismatched_keys") if info[k]}
    if bad:
        raise ValueError(f"text encoder weights in {encoder_dir} do not match its config: {bad}")
    return encoder.eval().requires_grad_(False), tokenizer


def _check_model_index(folder: Path) -> None:
    index = _read_json(folder / "model_index.json")
    found = index.get("_class_name")
    unet_entry = index.get("unet")
    unet_class = unet_entry[1] if isinstance(unet_entry, list) and len(unet_entry) == 2 else unet_entry
    if found != PIPELINE_CLASS or unet_class != UNET_CLASS:
        raise ValueError(
            f"{folder} holds a {found!r} with unet {unet_class!r} (model_index.json), not an MVDream model: "
            f"expected _class_name {PIPELINE_CLASS!r} and unet {UNET_CLASS!r}"
        )


def _scheduler_config(raw: dict[str, Any], source: Path | str) -> dict[str, Any]:
    found = raw.get("_class_name", "DDIMScheduler")
    if found != "DDIMScheduler":
        raise ValueError(f"{source} configures a {found!r}; MVDream samples with DDIMScheduler")
    # The reference pipeline forces these two on any loaded config (docs/mvdream.md §Sampler).
    return {**raw, "steps_offset": 1, "clip_sample": False}


def load_folder(folder: str | Path) -> MVDreamComponents:
    """Components of a diffusers-format MVDream folder; every UNet and VAE key used, none missing."""
    folder = _require_dir(Path(folder), "MVDream folder")
    _check_model_index(folder)
    unet_dir = _require_dir(folder / "unet", "unet folder")
    vae_dir = _require_dir(folder / "vae", "vae folder")
    unet_config = MultiViewUNetConfig.from_json(unet_dir / "config.json")
    unet_weights = _weights_file(unet_dir, "unet")
    unet = unet_from_state_dict(unet_config, read_state_dict(unet_weights))
    vae = vae_from_state_dict(_read_json(vae_dir / "config.json"), read_state_dict(_weights_file(vae_dir, "vae")))
    text_encoder, tokenizer = load_text_encoder(folder)
    scheduler_path = folder / "scheduler" / "scheduler_config.json"
    scheduler = _scheduler_config(_read_json(scheduler_path), scheduler_path)
    return MVDreamComponents(unet, vae, text_encoder, tokenizer, scheduler, unet_weights)


def load_single_file(
    path: str | Path,
    text_encoder_path: str | Path,
    unet_config: MultiViewUNetConfig | str | Path | None = None,
    vae_config: dict[str, Any] | str | Path | None = None,
) -> MVDreamComponents:
    """Components from the original checkpoint (UNet + ldm VAE) and a text-encoder folder.

    The file carries no config: `unet_config` and `vae_config` (objects or JSON files) default to
    the published sd-v2.1-base-4view sizes (`original_config`). The scheduler is MVDream's
    training DDIM schedule.
    """
    _require_dir(Path(text_encoder_path), "text-encoder folder")  # checked first: it is the usual slip
    if unet_config is None:
        unet_config = SD21_4VIEW_UNET
    elif not isinstance(unet_config, MultiViewUNetConfig):
        unet_config = MultiViewUNetConfig.from_json(unet_config)
    if vae_config is None:
        vae_config = SD21_VAE
    elif not isinstance(vae_config, dict):
        vae_config = _read_json(Path(vae_config))
    parts = split_original_checkpoint(read_state_dict(path))
    unet = unet_from_state_dict(unet_config, parts.unet)
    vae = vae_from_state_dict(vae_config, convert_ldm_vae(parts.vae))
    text_encoder, tokenizer = load_text_encoder(text_encoder_path)
    return MVDreamComponents(unet, vae, text_encoder, tokenizer, dict(MVDREAM_DDIM), Path(path))
