"""The background is handled, not assumed: views on grey are recorded as grey, and the student composites
onto white, onto each view's recorded colour, or onto one it learns (generator.render.background)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from support.student_data import make_procedural_shards, one_torch_thread, tiny_plan

from pipeline.dataset import describe_dataset
from pipeline.shards import write_dataset_info
from student.model.generator import TriplaneGenerator
from student.render.compositing import composite
from student.train.plan import make_plan, resolve_against_data
from student.train.trainer import Trainer

GREY = (128, 128, 128)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def grey_shards(tmp_path_factory):
    return make_procedural_shards(tmp_path_factory.mktemp("grey") / "shards", background=GREY)


def with_background(plan, mode: str):
    cfg = plan.config
    render = dataclasses.replace(cfg.generator.render, background=mode)
    cfg = dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, render=render))
    return dataclasses.replace(plan, config=resolve_against_data(cfg, plan.dataset))


def test_empty_space_composites_onto_the_background_given():
    depths = torch.linspace(1, 2, 5).expand(2, 3, 5)
    zero = torch.zeros(2, 3, 5)
    feats = torch.rand(2, 3, 5, 4)
    background = torch.tensor([0.5, 0.25, 0.75, 1.0]).expand(2, 3, 4)
    out = composite(depths, zero, feats, depths[..., 0], depths[..., -1], background)
    assert torch.equal(out.features, background) and torch.equal(out.opacity, torch.zeros(2, 3))
    assert torch.equal(composite(depths, zero, feats, depths[..., 0], depths[..., -1]).features, torch.ones(2, 3, 4))


def test_grey_views_are_recorded_grey_and_fill_the_config(grey_shards, tmp_path):
    info = describe_dataset(grey_shards)
    assert info.background == (round(128 / 255, 4),) * 3
    batch = next(iter(Trainer(tiny_plan(grey_shards, tmp_path / "run")).stream))
    torch.testing.assert_close(batch.background, torch.full_like(batch.background, 128 / 255))
    plan = with_background(tiny_plan(grey_shards, tmp_path / "run"), "shards")
    assert plan.config.generator.render.background_rgb == info.background  # what generation composites onto
    assert with_background(
        tiny_plan(grey_shards, tmp_path / "run"), "white"
    ).config.generator.render.background_rgb == (
        1.0,
        1.0,
        1.0,
    )


def test_the_raw_image_shows_the_chosen_background_where_the_student_is_transparent(grey_shards, tmp_path):
    plan = with_background(tiny_plan(grey_shards, tmp_path / "run"), "shards")
    G = TriplaneGenerator(plan.config.generator, rng=torch.Generator().manual_seed(0)).eval()
    white = TriplaneGenerator(dataclasses.replace(plan.config.generator, render=dataclasses.replace(
        plan.config.generator.render, background="white")), rng=torch.Generator().manual_seed(0)).eval()  # fmt: skip
    white.load_state_dict(G.state_dict())
    planes = G.planes(torch.ones(1, G.text_dim), rng=torch.Generator().manual_seed(1))
    cams = G.cfg.camera.middle_orbit(2)
    c2w, fovy = cams.c2w[None], cams.fovy_deg[None]
    per_view = torch.tensor([[[0.5, 0.5, 0.5], [0.2, 0.4, 0.6]]])  # (1, 2, 3)
    with torch.no_grad():
        on_white = white.render_views(planes, c2w, fovy)
        on_grey = G.render_views(planes, c2w, fovy, background=per_view)
        default = G.render_views(planes, c2w, fovy)  # no per-view colour: the dataset's median
    transparent = (1 - on_white.opacity).unsqueeze(2)  # (1, 2, 1, h, w)
    assert float(transparent.mean()) > 0.05  # enough empty space for the check to mean something
    expected = on_white.raw - transparent * (1 - per_view[..., None, None])
    torch.testing.assert_close(on_grey.raw, expected, atol=1e-5, rtol=0)
    median = torch.tensor(plan.config.generator.render.background_rgb).view(1, 1, 3, 1, 1)
    torch.testing.assert_close(default.raw, on_white.raw - transparent * (1 - median), atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["shards", "learned"])
def test_a_student_trains_on_grey_views_with_each_background_choice(grey_shards, tmp_path, mode):
    plan = with_background(tiny_plan(grey_shards, tmp_path / "run", steps=2, checkpoint_every=0, preview_every=0), mode)
    trainer = Trainer(plan, progress_bar=False)
    before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    batches = iter(trainer.stream)
    losses = [trainer.step(next(batches), s) for s in range(2)]
    assert all(torch.isfinite(torch.tensor(list(v.values()))).all() for v in losses)
    if mode == "learned":
        assert "background" in before and not torch.equal(before["background"], trainer.G.state_dict()["background"])
    else:
        assert "background" not in before  # only the learned choice adds a parameter


def test_an_unknown_background_is_refused(grey_shards, tmp_path):
    plan = with_background(tiny_plan(grey_shards, tmp_path / "run"), "black")
    with pytest.raises(ValueError, match="^render.background must be one of white, shards, learned, got 'black'$"):
        TriplaneGenerator(plan.config.generator)


def test_the_camera_distribution_the_dump_declared_reaches_the_checkpoint_config(grey_shards, tmp_path):
    cameras = {"elevation_range": [5.0, 25.0], "radius": 2.5, "fovy_deg": 35.0}
    write_dataset_info(grey_shards, {"teacher": "procedural", "cameras": cameras})
    try:
        plan = make_plan(data=grey_shards, out=tmp_path / "runs", preset="tiny", overrides=[], resume=False)
    finally:
        (grey_shards / "dataset.json").unlink()
    camera = plan.config.generator.camera
    assert (camera.elevation_range, camera.radius, camera.fovy_deg) == ((5.0, 25.0), 2.5, 35.0)
    orbit = camera.middle_orbit(4)  # what previews, eval and the default mapping camera look from
    position = orbit.c2w[:, :3, 3]
    assert torch.allclose(position.norm(dim=-1), torch.tensor(2.5))
    elevation = torch.rad2deg(torch.asin(position[:, 2] / 2.5))
    assert torch.allclose(elevation, torch.tensor(15.0), atol=1e-4) and torch.allclose(
        orbit.fovy_deg, torch.tensor(35.0)
    )
