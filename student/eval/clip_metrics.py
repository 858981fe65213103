"""CLIP score and CLIP R-precision of a generator's renders, the DF415 protocol of ATT3D / AToM / LATTE3D.

Every prompt is rendered for a few latents from a few views around the object; each render is embedded by a
CLIP image tower and compared with the CLIP text embeddings of *all* evaluated prompts
(docs/measuring.md §CLIP metrics):

- CLIP score: the mean cosine similarity of a render with its own prompt (papers print 100 x this);
- R-precision: the fraction of renders whose own prompt is the single most similar of all prompts (a tie is
  a miss), chance = 1 / number of prompts.

The CLIP model comes from a local folder in the transformers layout (`CLIPModel.save_pretrained` plus its
processor), since weights cannot be downloaded here; tests use a tiny random one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from student.eval.oracle_accuracy import EVAL_SEED
from student.model.generator import TriplaneGenerator

# A processor folder holds one of these: transformers >= 5 writes the first, older releases (and most CLIP
# checkpoints on the Hub) the second.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


@dataclass(frozen=True)
class ClipConfig:
    views: int = 4  # renders per sample, evenly around the object at the middle training elevation
    seeds: int = 2  # latents per prompt
    azimuth_start_deg: float = 0.0
    chunk: int = 8  # samples rendered together
    batch: int = 32  # images embedded together
    seed: int = EVAL_SEED  # the latents

    def __post_init__(self) -> None:
        if min(self.views, self.seeds, self.chunk, self.batch) < 1:
            raise ValueError(f"views, seeds, chunk and batch must be >= 1, got {self}")


class ClipModel:
    """A transformers CLIP model and processor from a local folder; embeddings of images and texts."""

    def __init__(self, folder: str | Path, device: torch.device | str = "cpu"):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"CLIP model {str(folder)!r} is not a folder (want a transformers CLIP folder)")
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"CLIP model folder {str(folder)!r} has no config.json")
        if not any((folder / name).is_file() for name in PROCESSOR_FILES):
            raise FileNotFoundError(
                f"CLIP model folder {str(folder)!r} has no {' or '.join(PROCESSOR_FILES)}: save the CLIPProcessor "
                "beside the model (processor.save_pretrained(folder))"
            )
        # ~3 s import (docs/measuring.md §Reference numbers), paid only with --clip
        from transformers import CLIPModel, CLIPProcessor

        self.folder = folder
        self.device = torch.device(device)
        self.processor = CLIPProcessor.from_pretrained(str(folder))
        self.model = CLIPModel.from_pretrained(str(folder)).to(self.device).eval()

    @torch.no_grad()
    def embed_images(self, images: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, E) projected image embeddings (not normalised), float32 on the CPU."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"].to(self.device)
        pooled = self.model.vision_model(pixel_values=pixels).pooler_output  # (N, hidden)
        return self.model.visual_projection(pooled).float().cpu()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """N prompts -> (N, E) projected text embeddings (not normalised), float32 on the CPU."""
        tokens = self.processor.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        out = self.model.text_model(
            input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
        )
        return self.model.text_projection(out.pooler_output).float().cpu()


@dataclass(frozen=True)
class ClipResult:
    score: float  # mean cosine of a render with its own prompt, in [-1, 1]
    r_precision: float  # fraction of renders ranking their own prompt first
    per_prompt_score: dict[str, float]
    per_prompt_r_precision: dict[str, float]
    images: int
    prompts: int

    def to_json(self) -> dict:
        return {
            "score": self.score,
            "score_x100": 100 * self.score,
            "r_precision": self.r_precision,
            "chance_r_precision": 1 / self.prompts,
            "images": self.images,
            "prompts": self.prompts,
            "per_prompt_score": self.per_prompt_score,
            "per_prompt_r_precision": self.per_prompt_r_precision,
        }


def cosine_similarities(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """(N, E) image and (P, E) text embeddings -> (N, P) cosine similarities."""
    if images.ndim != 2 or texts.ndim != 2 or images.shape[1] != texts.shape[1]:
        raise ValueError(f"need (N, E) and (P, E) embeddings, got {tuple(images.shape)} and {tuple(texts.shape)}")
    a = torch.nn.functional.normalize(images.double(), dim=1)
    b = torch.nn.functional.normalize(texts.double(), dim=1)
    return a @ b.T


def _own(similarity: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,) similarity of each image with its own prompt."""
    if labels.shape != similarity.shape[:1]:
        raise ValueError(f"{labels.shape[0]} labels for {similarity.shape[0]} images")
    return similarity.gather(1, labels.long()[:, None])[:, 0]


def clip_score(similarity: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cosine of each image (N, P similarities) with its own prompt labels (N,)."""
    return float(_own(similarity, labels).mean())


def r_precision_hits(similarity: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the own prompt is strictly more similar than every other prompt (ties are misses)."""
    own = _own(similarity, labels)
    others = similarity.scatter(1, labels.long()[:, None], float("-inf"))  # (N, P) own prompt masked out
    return own > others.max(dim=1).values


def r_precision(similarity: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images (N, P similarities) whose own prompt (labels (N,)) ranks first among all P."""
    return float(r_precision_hits(similarity, labels).double().mean())


def clip_metrics(
    image_emb: torch.Tensor, labels: torch.Tensor, prompts: Sequence[str], text_emb: torch.Tensor
) -> ClipResult:
    """Image embeddings (N, E) of renders of prompts[labels] (N,), text embeddings (P, E) of the P prompts."""
    if text_emb.shape[0] != len(prompts):
        raise ValueError(f"{text_emb.shape[0]} text embeddings for {len(prompts)} prompts")
    sim = cosine_similarities(image_emb, text_emb)  # (N, P)
    own, hits = _own(sim, labels), r_precision_hits(sim, labels)
    per_score, per_r = {}, {}
    for i, prompt in enumerate(prompts):
        mine = labels == i
        if mine.any():
            per_score[prompt] = float(own[mine].mean())
            per_r[prompt] = float(hits[mine].double().mean())
    return ClipResult(
        score=float(own.mean()),
        r_precision=float(hits.double().mean()),
        per_prompt_score=per_score,
        per_prompt_r_precision=per_r,
        images=int(labels.shape[0]),
        prompts=len(prompts),
    )


@torch.no_grad()
def render_clip_views(
    G: TriplaneGenerator,
    emb: torch.Tensor,
    config: ClipConfig = ClipConfig(),
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embeddings (P, D) -> (P, S, V, H, W, 3) uint8 renders: S latents per prompt, V views around each."""
    resolution = G.config.superres.output_resolution
    cams = G.config.camera.middle_orbit(config.views, config.azimuth_start_deg, resolution=resolution)
    p, s, device = emb.shape[0], config.seeds, G.device
    z = torch.randn(p * s, G.config.mapping.z_dim, generator=torch.Generator().manual_seed(config.seed))
    text = emb.float().repeat_interleave(s, dim=0)  # (P*S, D)
    was_training = G.training
    G.eval()
    out = []
    try:
        for start in range(0, p * s, config.chunk):
            n = min(config.chunk, p * s - start)
            planes = G.planes(text[start : start + n].to(device), z[start : start + n].to(device))
            out.append(G.render_uint8(planes, cams.c2w, cams.fovy_deg, resolution))  # (n, V, H, W, 3)
            if progress is not None:
                progress(n)
    finally:
        G.train(was_training)
    views = torch.cat(out).numpy()  # (P*S, V, H, W, 3)
    return views.reshape(p, s, *views.shape[1:])


def score_clip_views(views: np.ndarray, prompts: Sequence[str], clip: ClipModel, config: ClipConfig) -> ClipResult:
    """CLIP metrics of renders (P, S, V, H, W, 3) uint8 of the P `prompts` (`render_clip_views`)."""
    if views.ndim != 6 or views.shape[0] != len(prompts):
        raise ValueError(f"views must be (P={len(prompts)}, S, V, H, W, 3), got {views.shape}")
    images = views.reshape(-1, *views.shape[-3:])  # (P*S*V, H, W, 3), prompt-major
    labels = torch.arange(len(prompts)).repeat_interleave(views.shape[1] * views.shape[2])  # (P*S*V,)
    batches = [clip.embed_images(images[i : i + config.batch]) for i in range(0, len(images), config.batch)]
    return clip_metrics(torch.cat(batches), labels, list(prompts), clip.embed_texts(list(prompts)))


def evaluate_clip(
    G: TriplaneGenerator,
    prompts: Sequence[str],
    emb: torch.Tensor,
    clip: ClipModel,
    config: ClipConfig = ClipConfig(),
    progress: Callable[[int], None] | None = None,
) -> ClipResult:
    """CLIP score and R-precision of G's renders of `prompts` (P,) with generator text embeddings `emb` (P, D)."""
    if emb.shape[0] != len(prompts) or not prompts:
        raise ValueError(f"{emb.shape[0]} embeddings for {len(prompts)} prompts: need equal, >= 1")
    return score_clip_views(render_clip_views(G, emb, config, progress), prompts, clip, config)
