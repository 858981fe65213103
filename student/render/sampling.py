"""Depths along rays: stratified samples, then importance samples from the coarse weights (NeRF §5.2, EG3D §4).

Both take an optional generator: with one, samples are jittered (training); without, they sit at bin centres
and at deterministic quantiles, so evaluation renders are reproducible (EG3D leaves jitter on at evaluation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def stratified_depths(
    near: torch.Tensor, far: torch.Tensor, num: int, rng: torch.Generator | None = None
) -> torch.Tensor:
    """near, far (B, N) -> depths (B, N, num), one per equal bin of [near, far], sorted."""
    assert near.shape == far.shape, f"near {tuple(near.shape)} != far {tuple(far.shape)}"
    if rng is None:
        u = torch.full((*near.shape, num), 0.5, dtype=near.dtype, device=near.device)
    else:
        u = torch.rand((*near.shape, num), generator=rng, dtype=near.dtype, device=near.device)
    steps = (torch.arange(num, dtype=near.dtype, device=near.device) + u) / num  # (B, N, num) in [0, 1)
    return near.unsqueeze(-1) + (far - near).unsqueeze(-1) * steps


def importance_depths(
    boundaries: torch.Tensor, weights: torch.Tensor, num: int, rng: torch.Generator | None = None
) -> torch.Tensor:
    """Inverse-CDF samples of the piecewise-constant pdf given by `weights` over the bins between `boundaries`.

    boundaries (B, N, S+1) sorted, weights (B, N, S) >= 0 -> depths (B, N, num), detached (the sample
    positions are not differentiated through, as in NeRF and EG3D).
    """
    s = weights.shape[-1]
    assert boundaries.shape == (*weights.shape[:-1], s + 1), f"{tuple(boundaries.shape)} vs {tuple(weights.shape)}"
    boundaries, weights = boundaries.detach(), weights.detach()
    # Widen every peak by one bin and add a floor, so thin surfaces found by the coarse pass are bracketed and
    # empty rays still sample everywhere (mip-NeRF's max-blur filter; EG3D adds a 0.01 floor likewise).
    lead = weights.reshape(-1, 1, s)
    blurred = F.max_pool1d(F.pad(lead, (1, 1), mode="replicate"), 2, stride=1)  # (BN, 1, S+1)
    pdf = 0.5 * (blurred[..., :-1] + blurred[..., 1:]).reshape(weights.shape) + 0.01  # (B, N, S)
    pdf = pdf / pdf.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), pdf.cumsum(dim=-1).clamp(max=1)], dim=-1)  # (B, N, S+1)
    if rng is None:
        u = (torch.arange(num, dtype=pdf.dtype, device=pdf.device) + 0.5) / num
        u = u.expand(*pdf.shape[:-1], num).contiguous()
    else:
        u = torch.rand((*pdf.shape[:-1], num), generator=rng, dtype=pdf.dtype, device=pdf.device)
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, s)  # (B, N, num): bin idx-1 holds u
    c0, c1 = cdf.gather(-1, idx - 1), cdf.gather(-1, idx)
    b0, b1 = boundaries.gather(-1, idx - 1), boundaries.gather(-1, idx)
    frac = ((u - c0) / (c1 - c0).clamp(min=1e-12)).clamp(0, 1)
    return b0 + frac * (b1 - b0)
