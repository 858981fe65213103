"""MVDream's transformer: self-attention across all views of an object, cross-attention per view.

This is the one architectural change besides the camera embedding that turns SD-2.1's UNet into
MVDream's (docs/mvdream.md §UNet): the tokens of the F views of one object are
concatenated view-major before self-attention, so every view attends to every other. The text
cross-attention and the feed-forward stay per view. Parameter names follow the reference state dict
(``proj_in``, ``transformer_blocks.0.attn1.to_q``, ``ff.net.0.proj``, ``ff.net.2``, ``proj_out``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from teacher_dump.mvdream.config import NORM_GROUPS


class Attention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections (docs/mvdream.md §UNet).

    torch's `scaled_dot_product_attention` computes softmax(q k^T / sqrt(d)) v, the reference's
    formula; on GPU it picks a fused (flash / memory-efficient) kernel.
    """

    def __init__(self, query_dim: int, context_dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim)])  # `to_out.1` is a Dropout upstream

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        # x: (B, L, C) queries, context: (B, M, C_ctx) keys/values -> (B, L, C)
        b, l, _ = x.shape
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)  # (B, L|M, heads*d)
        q, k, v = (t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, h, L|M, d)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, L, d)
        return self.to_out[0](out.transpose(1, 2).reshape(b, l, -1))


class GEGLU(nn.Module):
    """``proj`` to twice the hidden width, then value * GELU(gate) with exact (erf) GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward with 4x hidden width; ``net.1`` is the reference's Dropout slot."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class MultiViewTransformerBlock(nn.Module):
    """Cross-view self-attention, per-view text cross-attention, feed-forward; pre-norm residuals."""

    def __init__(self, dim: int, context_dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.attn1 = Attention(dim, dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, context_dim, heads, dim_head)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        # x: (N*F, L, C) with the F views of an object contiguous; context: (N*F, 77, C_ctx)
        nf, l, c = x.shape
        x = x.reshape(nf // num_frames, num_frames * l, c)  # (N, F*L, C): views concatenated view-major
        h = self.norm1(x)
        x = self.attn1(h, h) + x
        x = x.reshape(nf, l, c)  # (N*F, L, C)
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer3D(nn.Module):
    """GroupNorm (eps 1e-6, docs/mvdream.md §UNet) -> linear ``proj_in`` -> blocks -> ``proj_out`` -> + input."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(NORM_GROUPS, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [MultiViewTransformerBlock(inner, context_dim, heads, dim_head) for _ in range(depth)]
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        # x: (N*F, C, H, W), context: (N*F, 77, C_ctx) -> (N*F, C, H, W)
        nf, c, height, width = x.shape
        h = self.norm(x).permute(0, 2, 3, 1).reshape(nf, height * width, c)  # (N*F, H*W, C)
        h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, context, num_frames)
        h = self.proj_out(h).reshape(nf, height, width, c).permute(0, 3, 1, 2)  # (N*F, C, H, W)
        return h + x
