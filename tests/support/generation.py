"""Stand-ins shared by the generation tests: analytic density fields and a tiny text encoder.

No tests here.
"""

from __future__ import annotations

import hashlib

import torch

from pipeline.text.base import TextEmbedding, TextEncoder


class SphereField:
    """Density ``peak`` inside a ball (smooth edge of width ``edge``), colour = a gradient in x.

    sigma(p) = peak * sigmoid((radius - |p - centre|) / edge): exactly peak / 2 on the sphere, so the
    level set at peak / 2 is the sphere itself. rgb = ((x + 1) / 2, 0.25, 0.75).
    """

    def __init__(self, radius=0.5, centre=(0.0, 0.0, 0.0), peak=100.0, edge=0.02):
        self.radius, self.peak, self.edge = radius, peak, edge
        self.centre = torch.tensor(centre, dtype=torch.float32)
        self.calls = 0  # points queried, to show how much coarse-to-fine saves

    def query(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += len(points)
        r = (points - self.centre).norm(dim=-1)  # (P,)
        sigma = self.peak * torch.sigmoid((self.radius - r) / self.edge)
        red = ((points[:, 0] + 1) / 2).clamp(0, 1)
        rgb = torch.stack([red, torch.full_like(r, 0.25), torch.full_like(r, 0.75)], dim=-1)  # (P, 3)
        return sigma, rgb


class HashTextEncoder(TextEncoder):
    """A deterministic toy encoder: a unit vector seeded by the prompt's sha256; a token is a word, plus 2."""

    def __init__(self, name: str = "minilm", dim: int = 384, max_tokens: int = 8):
        self.name, self.dim, self.max_tokens = name, dim, max_tokens

    def count_tokens(self, prompt: str) -> int:
        return len(prompt.split()) + 2  # [CLS] and [SEP], as BERT counts them

    def encode(self, prompts: list[str]) -> TextEmbedding:
        rows = []
        for p in prompts:
            seed = int.from_bytes(hashlib.sha256(p.encode()).digest()[:8], "little")
            rows.append(torch.randn(self.dim, generator=torch.Generator().manual_seed(seed)))
        pooled = torch.nn.functional.normalize(torch.stack(rows), dim=-1)
        return TextEmbedding(pooled=pooled)


def use_hash_encoder(monkeypatch, dim: int = 384) -> None:
    """Make `pipeline.text.load_text_encoder` return a HashTextEncoder of `dim` under the requested name."""
    import pipeline.text

    def load(name: str, path: str | None = None, device="cpu", precision: str = "fp32") -> HashTextEncoder:
        return HashTextEncoder(name, dim)

    monkeypatch.setattr(pipeline.text, "load_text_encoder", load)


class CapsuleField:
    """A thin rod: density ``peak`` within ``radius`` of the segment a-b (smooth edge), uniform grey."""

    def __init__(self, a, b, radius=0.03, peak=100.0, edge=0.005):
        self.a, self.b = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
        self.radius, self.peak, self.edge = radius, peak, edge

    def query(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self.b - self.a
        t = ((points - self.a) @ ab / (ab @ ab)).clamp(0, 1)  # (P,)
        dist = (points - (self.a + t[:, None] * ab)).norm(dim=-1)  # (P,)
        sigma = self.peak * torch.sigmoid((self.radius - dist) / self.edge)
        return sigma, torch.full((len(points), 3), 0.5)


def save_tiny_generator(directory, rgb_logits: tuple[float, float, float] | None = None):
    """A random `tiny`-preset generator conditioned like minilm (384-d), saved to `directory`; returns it.

    rgb_logits: added to the decoder's colour biases, to tint every sample (e.g. (3, -3, -3): red).
    """
    from dataclasses import replace

    from student.model.generator import TriplaneGenerator
    from student.presets import tiny

    cfg = replace(tiny().generator, text_encoder="minilm", text_dim=384)
    generator = TriplaneGenerator(cfg, rng=torch.Generator().manual_seed(0))
    if rgb_logits is not None:
        out = generator.decoder.out  # features follow the density channel; the first three are RGB
        with torch.no_grad():
            out.bias[1:4] += torch.tensor(rgb_logits) / out.bias_gain
    return generator.save_pretrained(directory)
