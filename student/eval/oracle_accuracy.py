"""Oracle accuracy of a generator: render fixed (prompt, z, camera) sets and ask the attribute oracle.

An `EvalSet` fixes everything random (latents and cameras drawn from the teacher's orbit distribution
with explicit generators), so scores at different training steps differ only because the model did.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.cameras import OrbitSampler
from pipeline.procedural import AttributeOracle, OracleScores, parse_prompt
from student.config import CameraDefaults
from student.model.generator import TriplaneGenerator

EVAL_SEED = 1234  # the eval latents and cameras; never the training stream


@dataclass(frozen=True)
class EvalSet:
    """N = len(prompts) * seeds samples, sample i = (prompts[i // seeds], seed i % seeds)."""

    name: str
    prompts: tuple[str, ...]  # (N,) the prompt of each sample
    targets: tuple[tuple[str, str], ...]  # (N,) (colour, shape) each sample should show
    emb: torch.Tensor  # (N, D) text embeddings
    z: torch.Tensor  # (N, z_dim)
    c2w: torch.Tensor  # (N, V, 4, 4)
    fovy: torch.Tensor  # (N, V)
    resolution: int  # rendered output side

    def __len__(self) -> int:
        return len(self.prompts)


def spread(items: list[str], n: int) -> list[str]:
    """n items evenly spaced through a sorted list (so a few prompts still cover every colour and
    shape): how training-time and report evaluations pick their prompts."""
    if n >= len(items):
        return list(items)
    return [items[round(i * len(items) / n)] for i in range(n)]


def make_eval_set(
    name: str,
    prompts: list[str],
    emb: torch.Tensor,
    *,
    seeds: int,
    z_dim: int,
    camera: CameraDefaults,
    resolution: int,
    base_seed: int = EVAL_SEED,
) -> EvalSet:
    """Procedural prompts (P,) with embeddings (P, D) -> an EvalSet of P * seeds samples.

    Cameras are V-view orbits with elevation in `camera.elevation_range` and a random azimuth start,
    as the teacher draws them. Raises PromptError for a prompt outside the procedural vocabulary.
    """
    if emb.shape[0] != len(prompts) or seeds < 1:
        raise ValueError(f"{emb.shape[0]} embeddings for {len(prompts)} prompts, seeds {seeds}: need equal, >= 1")
    specs = [parse_prompt(p) for p in prompts]
    rng = torch.Generator().manual_seed(base_seed)
    sampler = OrbitSampler(
        num_views=camera.num_views,
        elevation_range=camera.elevation_range,
        radius=camera.radius,
        fovy_deg=camera.fovy_deg,
        resolution=resolution,
    )
    n = len(prompts) * seeds
    z = torch.randn(n, z_dim, generator=rng)
    orbits = [sampler.sample(rng)[0] for _ in range(n)]
    return EvalSet(
        name=name,
        prompts=tuple(p for p in prompts for _ in range(seeds)),
        targets=tuple((s.colour, s.shape) for s in specs for _ in range(seeds)),
        emb=emb.float().repeat_interleave(seeds, dim=0),
        z=z,
        c2w=torch.stack([o.c2w.float() for o in orbits]),
        fovy=torch.stack([o.fovy_deg.float() for o in orbits]),
        resolution=resolution,
    )


@torch.no_grad()
def render_eval_set(G: TriplaneGenerator, eval_set: EvalSet, chunk: int = 8) -> torch.Tensor:
    """(N, V, H, W, 3) uint8 renders of every sample of the set, deterministic, in chunks of `chunk`."""
    device = G.device
    out = []
    for start in range(0, len(eval_set), chunk):
        sl = slice(start, start + chunk)
        planes = G.planes(eval_set.emb[sl].to(device), eval_set.z[sl].to(device))
        out.append(G.render_uint8(planes, eval_set.c2w[sl], eval_set.fovy[sl], eval_set.resolution))
    return torch.cat(out)


def oracle_accuracy(
    G: TriplaneGenerator, eval_set: EvalSet, oracle: AttributeOracle | None = None, chunk: int = 8
) -> OracleScores:
    """Colour / shape / both accuracy of G's renders of `eval_set`, judged by the attribute oracle."""
    oracle = oracle or AttributeOracle()
    was_training = G.training
    G.eval()
    try:
        views = render_eval_set(G, eval_set, chunk)
    finally:
        G.train(was_training)
    return oracle.score(views, eval_set.c2w, eval_set.fovy, list(eval_set.targets))
