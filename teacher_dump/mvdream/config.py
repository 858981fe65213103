"""The multi-view UNet's configuration, with MVDream's own (ldm) key names.

The names are those of `unet/config.json` in a diffusers-format MVDream folder and of the
`unet_config.params` block of MVDream's yaml (docs/mvdream.md §Key layouts), so a
config read from either source round-trips without renaming.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

# Keys the reference accepts whose value this implementation supports only at the reference default
# (docs/mvdream.md §UNet: absent keys take the reference defaults). Any other value is rejected, never ignored.
_FIXED_KEYS: dict[str, Any] = {
    "dims": 2,
    "conv_resample": True,
    "num_heads": -1,
    "use_scale_shift_norm": False,
    "resblock_updown": False,
    "ip_dim": 0,
    "legacy": False,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": True,
}
# Training-only switches (gradient checkpointing, dropout): they do not change an eval forward.
_TRAINING_ONLY_KEYS = frozenset({"use_checkpoint", "dropout"})
# GroupNorm(32, C) everywhere (docs/mvdream.md §UNet), so every channel count must split into 32 groups.
NORM_GROUPS = 32


@dataclass(frozen=True)
class MultiViewUNetConfig:
    """Sizes of an MVDream multi-view UNet; the real model's values are in `tests/golden/layout/unet_config.json`."""

    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_resolutions: tuple[int, ...]  # downsampling factors (1, 2, 4, ...) whose levels get attention
    num_head_channels: int  # width of one attention head; heads = channels // num_head_channels
    transformer_depth: int
    context_dim: int  # width of the text tokens the cross-attention reads
    camera_dim: int = 16  # a flattened 4x4 camera-to-world matrix (docs/mvdream.md §UNet)
    in_channels: int = 4
    out_channels: int = 4
    image_size: int = 32  # recorded by the reference, unused by the network (docs/mvdream.md §UNet)

    def __post_init__(self) -> None:
        positive = ("model_channels", "num_res_blocks", "num_head_channels", "transformer_depth")
        positive += ("context_dim", "camera_dim", "in_channels", "out_channels")
        bad = {name: getattr(self, name) for name in positive if getattr(self, name) < 1}
        if bad:
            raise ValueError(f"UNet config values must be >= 1, got {bad}")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(f"channel_mult must be a non-empty list of positive ints, got {list(self.channel_mult)}")
        factors = [2**level for level in range(len(self.channel_mult))]
        stray = sorted(set(self.attention_resolutions) - set(factors))
        if stray:
            raise ValueError(
                f"attention_resolutions {list(self.attention_resolutions)} name downsampling factors {stray} "
                f"that no level has; with channel_mult {list(self.channel_mult)} the factors are {factors}"
            )
        for width in self.level_channels:
            if width % NORM_GROUPS:
                raise ValueError(f"channel width {width} is not a multiple of the {NORM_GROUPS} GroupNorm groups")
        for width in self.attention_channels:
            if width % self.num_head_channels:
                raise ValueError(
                    f"attention width {width} is not a multiple of num_head_channels {self.num_head_channels}"
                )

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels

    @property
    def level_channels(self) -> list[int]:
        return [self.model_channels * mult for mult in self.channel_mult]

    @property
    def attention_channels(self) -> list[int]:
        """Widths of every attention level, the middle block (always attended) included."""
        widths = [w for level, w in enumerate(self.level_channels) if 2**level in self.attention_resolutions]
        return [*widths, self.level_channels[-1]]

    @property
    def downsampling_factor(self) -> int:
        """A latent side must be a multiple of this: one stride-2 step between consecutive levels."""
        return 2 ** (len(self.channel_mult) - 1)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MultiViewUNetConfig:
        """Build from MVDream/ldm-named keys; ``_``-prefixed metadata (``_class_name``...) is skipped.

        Unknown keys, missing required keys and unsupported values of reference-only switches raise
        ValueError naming them.
        """
        own = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if not k.startswith("_")}
        unknown = sorted(set(values) - own - set(_FIXED_KEYS) - _TRAINING_ONLY_KEYS)
        if unknown:
            raise ValueError(f"unknown UNet config keys {unknown}; accepted: {sorted(own | set(_FIXED_KEYS))}")
        unsupported = {k: values[k] for k in _FIXED_KEYS if k in values and values[k] != _FIXED_KEYS[k]}
        if unsupported:
            wanted = {k: _FIXED_KEYS[k] for k in unsupported}
            raise ValueError(f"unsupported UNet config values {unsupported}; this implementation needs {wanted}")
        required = {f.name for f in fields(cls) if f.default is MISSING}
        missing = sorted(required - set(values))
        if missing:
            raise ValueError(f"UNet config lacks required keys {missing}")
        kwargs = {k: values[k] for k in own if k in values}
        for key in ("channel_mult", "attention_resolutions"):
            kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path: str | Path) -> MultiViewUNetConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"UNet config file not found: {path}")
        return cls.from_dict(json.loads(path.read_text()))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["channel_mult"] = list(self.channel_mult)
        out["attention_resolutions"] = list(self.attention_resolutions)
        return out
