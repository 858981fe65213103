"""The text-encoder interface and its name -> class registry."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TextEmbedding:
    """Encoder output for B prompts.

    pooled: (B, D) float32, one vector per prompt (what the shards store)
    tokens: (B, L, Dt) float32 per-token features, or None for encoders without them
    mask:   (B, L) bool, True on real (non-padding) tokens, or None
    """

    pooled: torch.Tensor
    tokens: torch.Tensor | None = None
    mask: torch.Tensor | None = None


class TextEncoder(ABC):
    """Encodes prompts. Subclasses set `name`, `dim` (pooled width) and `max_tokens`."""

    name: str = ""
    dim: int = 0
    max_tokens: int = 0
    precisions: tuple[str, ...] = ("fp32",)  # weight precisions the constructor takes; the first is exact
    precision: str = "fp32"  # the one this instance runs in

    @abstractmethod
    def encode(self, prompts: list[str]) -> TextEmbedding:
        """Embed a batch of prompts (no gradient)."""

    @abstractmethod
    def count_tokens(self, prompt: str) -> int:
        """Number of tokens the prompt takes, special tokens included, before truncation."""

    def check_prompts(self, prompts: list[str]) -> list[str]:
        """Warnings for prompts that will be truncated (empty list when all fit)."""
        warnings = []
        for p in prompts:
            n = self.count_tokens(p)
            if n > self.max_tokens:
                warnings.append(f"{self.name} takes {self.max_tokens} tokens; {p[:40]!r}... has {n} and is truncated")
        return warnings


_REGISTRY: dict[str, str] = {
    # name -> "module:Class", imported on first use so that `minilm` never imports transformers.
    "minilm": "pipeline.text.minilm:MiniLMEncoder",
    "clip": "pipeline.text.clip:CLIPEncoder",
}


def available_text_encoders() -> list[str]:
    return sorted(_REGISTRY)


def load_text_encoder(
    name: str = "minilm", path: str | None = None, device: str | torch.device = "cpu", precision: str = "fp32"
) -> TextEncoder:
    """Build a registered text encoder. `path` is the model folder where the encoder needs one;
    `precision` one of the class's `precisions` ("auto": the fastest it has, its last)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown text encoder {name!r}; available: {', '.join(available_text_encoders())}")
    module, cls_name = _REGISTRY[name].split(":")
    cls: Callable[..., TextEncoder] = getattr(importlib.import_module(module), cls_name)
    precision = cls.precisions[-1] if precision == "auto" else precision
    if precision not in cls.precisions:
        raise ValueError(f"text encoder {name!r} runs in {list(cls.precisions)}, not {precision!r}")
    if precision == "fp32":
        return cls(path=path, device=device)
    return cls(path=path, device=device, precision=precision)
