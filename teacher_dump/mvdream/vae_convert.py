"""Rename the original checkpoint's ldm VAE keys to diffusers `AutoencoderKL` keys.

MVDream's single file stores SD-2.1's VAE under ldm names (``encoder.down.0.block.1.norm1``,
``decoder.up.3.upsample.conv``, ``mid.attn_1.q`` as 1x1 convolutions); the diffusers folder stores
the same weights under `AutoencoderKL` names (docs/mvdream.md §Key layouts, the full map
with shapes in ``tests/golden/layout/vae_key_map.tsv``). Two differences matter beyond renaming:
ldm numbers decoder levels from the lowest resolution up, diffusers from the top down, and the
mid-block attention's 1x1-conv weights (O, I, 1, 1) become linear weights (O, I).
"""

from __future__ import annotations

import re

import torch

from teacher_dump.mvdream.weights import name_keys

_RESNET_RENAMES = {"nin_shortcut": "conv_shortcut"}
_ATTENTION_RENAMES = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_SAME = re.compile(r"(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)|(post_)?quant_conv\.(weight|bias)")
_NORM_OUT = re.compile(r"(encoder|decoder)\.norm_out\.(weight|bias)")
_LEVEL = re.compile(
    r"(?P<part>encoder\.down|decoder\.up)\.(?P<level>\d+)\.(?P<kind>block|downsample|upsample)\.(?P<rest>.+)"
)
_MID_RESNET = re.compile(r"(?P<part>encoder|decoder)\.mid\.block_(?P<index>[12])\.(?P<rest>.+)")
_MID_ATTENTION = re.compile(
    r"(?P<part>encoder|decoder)\.mid\.attn_1\.(?P<name>norm|q|k|v|proj_out)\.(?P<param>weight|bias)"
)


def _resnet_rest(rest: str) -> str:
    """``0.norm1.weight`` style tail of a resnet key, with ldm's shortcut name translated."""
    head, _, param = rest.rpartition(".")
    head = ".".join(_RESNET_RENAMES.get(part, part) for part in head.split("."))
    return f"{head}.{param}"


def diffusers_vae_key(key: str, num_levels: int) -> str:
    """The `AutoencoderKL` name of one ldm VAE key (prefix already stripped).

    num_levels: number of resolution levels (``len(block_out_channels)``), needed to reverse the
    decoder's level order. Raises ValueError for a key that is not part of an ldm VAE.
    """
    if _SAME.fullmatch(key):
        return key
    if m := _NORM_OUT.fullmatch(key):
        return f"{m[1]}.conv_norm_out.{m[2]}"
    if m := _LEVEL.fullmatch(key):
        level = int(m["level"])
        if level >= num_levels:
            raise ValueError(f"VAE key {key!r} names level {level} but the VAE has {num_levels} levels")
        if m["part"] == "encoder.down":
            prefix = f"encoder.down_blocks.{level}"
        else:  # ldm's decoder.up.0 is the full-resolution level, diffusers' up_blocks.0 the lowest
            prefix = f"decoder.up_blocks.{num_levels - 1 - level}"
        if m["kind"] == "block":
            return f"{prefix}.resnets.{_resnet_rest(m['rest'])}"
        sampler = "downsamplers" if m["kind"] == "downsample" else "upsamplers"
        return f"{prefix}.{sampler}.0.{m['rest']}"
    if m := _MID_RESNET.fullmatch(key):
        return f"{m['part']}.mid_block.resnets.{int(m['index']) - 1}.{_resnet_rest(m['rest'])}"
    if m := _MID_ATTENTION.fullmatch(key):
        return f"{m['part']}.mid_block.attentions.0.{_ATTENTION_RENAMES[m['name']]}.{m['param']}"
    raise ValueError(f"{key!r} is not an ldm VAE key")


def _num_levels(keys: list[str]) -> int:
    levels = {int(m["level"]) for k in keys if (m := _LEVEL.fullmatch(k)) and m["part"] == "encoder.down"}
    if not levels:
        raise ValueError("no encoder.down.<level>.* keys: this is not an ldm VAE state dict")
    return max(levels) + 1


def convert_ldm_vae(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ldm-named VAE tensors (``first_stage_model.`` stripped) -> `AutoencoderKL` state dict."""
    num_levels = _num_levels(list(state_dict))
    out, unknown = {}, []
    for key, value in state_dict.items():
        try:
            new_key = diffusers_vae_key(key, num_levels)
        except ValueError:
            unknown.append(key)
            continue
        if _MID_ATTENTION.fullmatch(key) and value.ndim == 4:
            value = value[:, :, 0, 0]  # (O, I, 1, 1) conv -> (O, I) linear
        out[new_key] = value
    if unknown:
        raise ValueError(f"keys that are not part of an ldm VAE {name_keys(unknown)}")
    return out
