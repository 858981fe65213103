"""The attribute oracle scores the teacher's own renders perfectly, at every resolution it is used at."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.cameras import OrbitSampler
from pipeline.procedural import COLOURS, SHAPES, SIZES, UNKNOWN, AttributeOracle, SceneSpec, render_scene, sample_scene


def _renders(specs: list[SceneSpec], resolution: int, seed: int):
    rng = torch.Generator().manual_seed(seed)
    sampler = OrbitSampler(resolution=resolution)
    views, c2w, fovy = [], [], []
    for i, spec in enumerate(specs):
        cams, _, _ = sampler.sample(rng)
        views.append(render_scene(sample_scene(spec, seed * 1000 + i), cams, supersample=2))
        c2w.append(cams.c2w)
        fovy.append(cams.fovy_deg)
    return torch.stack(views), torch.stack(c2w), torch.stack(fovy)


@pytest.fixture(scope="module")
def oracle() -> AttributeOracle:
    return AttributeOracle()


def test_every_colour_shape_pair_is_recognised_at_32_px(oracle: AttributeOracle) -> None:
    sizes = [None, *SIZES]
    specs = [SceneSpec(c, s, sizes[i % len(sizes)]) for i, (c, s) in enumerate((c, s) for c in COLOURS for s in SHAPES)]
    views, c2w, fovy = _renders(specs, 32, seed=1)
    scores = oracle.score(views, c2w, fovy, [(s.colour, s.shape) for s in specs])
    assert (scores.colour, scores.shape, scores.both, scores.count) == (1.0, 1.0, 1.0, len(specs))


@pytest.mark.parametrize("resolution", [64, 256])
def test_recognised_at_higher_resolutions(oracle: AttributeOracle, resolution: int) -> None:
    specs = [SceneSpec(c, SHAPES[i % len(SHAPES)]) for i, c in enumerate(COLOURS)]
    views, c2w, fovy = _renders(specs, resolution, seed=resolution)
    assert oracle.predict(views.numpy(), c2w.numpy(), fovy.numpy()) == [(s.colour, s.shape) for s in specs]


@pytest.mark.slow
def test_many_seeds_every_prompt_form(oracle: AttributeOracle) -> None:
    specs = [SceneSpec(c, s, z) for c in COLOURS for s in SHAPES for z in (None, *SIZES)] * 3
    views, c2w, fovy = _renders(specs, 32, seed=7)
    scores = oracle.score(views, c2w, fovy, [(s.colour, s.shape) for s in specs])
    assert (scores.colour, scores.shape) == (1.0, 1.0)


def test_true_shape_wins_by_a_margin(oracle: AttributeOracle) -> None:
    specs = [SceneSpec("purple", s) for s in SHAPES] * 2
    views, c2w, fovy = _renders(specs, 32, seed=3)
    ious = oracle.shape_ious(views, c2w, fovy)  # (B, S)
    truth = torch.tensor([SHAPES.index(s.shape) for s in specs])
    correct = ious[torch.arange(len(specs)), truth]
    others = ious.scatter(1, truth.unsqueeze(1), 0.0).max(dim=1).values
    assert correct.min() > 0.85
    assert (correct - others).min() > 0.04


def test_blank_images_are_unknown_and_flat_patches_get_their_colour(oracle: AttributeOracle) -> None:
    views = np.full((2, 4, 32, 32, 3), 255, dtype=np.uint8)
    rgb = np.array(COLOURS["cyan"]) * 0.45  # a dimly lit cyan patch
    views[1, :, 8:24, 8:24] = np.round(rgb * 255).astype(np.uint8)
    c2w = np.tile(np.eye(4, dtype=np.float32), (2, 4, 1, 1))
    c2w[..., 2, 3] = 2.7
    fovy = np.full((2, 4), 40.0, dtype=np.float32)
    assert oracle.predict_colours(views) == [UNKNOWN, "cyan"]
    assert oracle.predict(views, c2w, fovy)[0] == (UNKNOWN, UNKNOWN)
    with pytest.raises(ValueError, match="expected views"):
        oracle.shape_ious(views, c2w[:, :2], fovy)
