"""A minimal BERT encoder in plain PyTorch: enough to run sentence-transformers' MiniLM-L6 checkpoint.

Why not transformers' `BertModel`: importing transformers costs ~3 s, which would dominate the cold
start of `et3d-gen`. The math is BERT's (post-LayerNorm blocks, exact-erf GELU, additive padding
mask); tests compare it with sentence-transformers on the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def from_dict(cls, d: dict) -> BertConfig:
        if d.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"only hidden_act 'gelu' is supported, got {d.get('hidden_act')!r}")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


class BertLayer(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        h = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.intermediate = nn.Linear(h, cfg.intermediate_size)
        self.output = nn.Linear(cfg.intermediate_size, h)
        self.out_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape  # (B, L, H)
        split = lambda t: t.view(b, n, self.heads, h // self.heads).transpose(1, 2)  # noqa: E731 (B, heads, L, d)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, heads, L, d)
        x = self.attn_norm(x + self.attn_out(attn.transpose(1, 2).reshape(b, n, h)))
        return self.out_norm(x + self.output(F.gelu(self.intermediate(x))))


class BertEncoder(nn.Module):
    """Token ids (B, L) + mask (B, L) -> last hidden states (B, L, H)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.word(ids) + self.position(pos)[None] + self.token_type.weight[0])  # (B, L, H)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def load_hf_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Load a transformers `BertModel` state dict (optionally `bert.`-prefixed), strictly; the pooler is unused."""
        sd = {k.removeprefix("bert."): v for k, v in sd.items() if not k.removeprefix("bert.").startswith("pooler.")}
        sd.pop("embeddings.position_ids", None)
        renamed = {
            "embeddings.word_embeddings.weight": "word.weight",
            "embeddings.position_embeddings.weight": "position.weight",
            "embeddings.token_type_embeddings.weight": "token_type.weight",
            "embeddings.LayerNorm.weight": "norm.weight",
            "embeddings.LayerNorm.bias": "norm.bias",
        }
        parts = {
            "attention.self.query": "query",
            "attention.self.key": "key",
            "attention.self.value": "value",
            "attention.output.dense": "attn_out",
            "attention.output.LayerNorm": "attn_norm",
            "intermediate.dense": "intermediate",
            "output.dense": "output",
            "output.LayerNorm": "out_norm",
        }
        for i in range(len(self.layers)):
            for src, dst in parts.items():
                for p in ("weight", "bias"):
                    renamed[f"encoder.layer.{i}.{src}.{p}"] = f"layers.{i}.{dst}.{p}"
        unexpected = sorted(set(sd) - set(renamed))
        missing = sorted(set(renamed) - set(sd))
        if unexpected or missing:
            raise ValueError(f"BERT state dict mismatch: missing {missing[:8]}, unexpected {unexpected[:8]}")
        self.load_state_dict({renamed[k]: v for k, v in sd.items()}, strict=True)
