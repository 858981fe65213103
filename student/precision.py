"""Numeric precision of the student's forward passes: fp32, or autocast to bf16 / fp16 around them.

Weights stay fp32 (the optimiser's master copy); `torch.autocast` runs matrix multiplies and convolutions in
the lower precision and keeps reductions in fp32. Used by the trainer (`--optim.precision`) and by generation
(`--precision`). fp16 needs loss scaling in training (student/train/mixed_precision.py); bf16 does not.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Importing this module does not import torch, so that `et3d-gen` can validate `--precision` instantly.
PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str, option: str = "precision") -> str:
    """Return `precision` if it is one of PRECISIONS; otherwise raise naming the option and the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"{option} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """A context running its forward pass in `precision` on `device` (a no-op for fp32)."""
    import torch

    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def full_precision(device: torch.device | str) -> contextlib.AbstractContextManager:
    """A context that switches autocast off inside an autocast region: for the regularisers kept in fp32."""
    import torch

    return torch.autocast(device_type=torch.device(device).type, enabled=False)
