"""The training-recipe knobs of the `cpu` preset: paired latents, nearest-text negatives, the D mapping learning
rate, and super-resolution edge padding. Each is checked for what it changes, on tiny sizes."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from support.student_data import tiny_plan

from pipeline.cameras import orbit_cameras
from student.config import LossConfig, SuperResConfig
from student.model.discriminator import Discriminator, ray_directions
from student.model.generator import TriplaneGenerator
from student.model.superres import SuperResolution
from student.presets import tiny
from student.train.trainer import Trainer, nearest_other_prompt, pair_sources, pair_spread


def tiny_generator_config():
    return dataclasses.replace(tiny().generator, text_encoder="test", text_dim=8)


pytestmark = pytest.mark.usefixtures("one_thread")  # `one_thread` and `shards` are in tests/conftest.py


def test_pair_sources_put_pair_members_side_by_side_and_never_in_one_minibatch_std_group():
    source = pair_sources(16, torch.device("cpu"))
    assert source.tolist() == [0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14]
    groups = torch.arange(16).reshape(4, 4).t()  # the discriminator's groups: samples i, i + 4, i + 8, i + 12
    for group in groups:
        assert len(set(source[group].tolist())) == 4, group
    with pytest.raises(ValueError, match="even batch"):
        pair_sources(5, torch.device("cpu"))


def test_pair_spread_is_the_mean_absolute_difference_within_each_pair():
    images = torch.zeros(4, 2, 3, 8, 8)
    images[1] += 0.5  # pair 0 differs by 0.5 everywhere
    images[2, :, 0] = 1.0  # pair 1: one of three channels differs by 1
    spread = pair_spread(images)
    assert torch.allclose(spread, torch.tensor([0.5, 1 / 3]))


def test_nearest_other_prompt_picks_the_closest_different_prompt_and_flags_lone_prompts():
    emb = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    prompts = ["a red cube", "a red cone", "a blue sphere", "a red cube"]
    assert nearest_other_prompt(emb, prompts).tolist() == [1, 0, 1, 1]
    assert nearest_other_prompt(emb[:1], prompts[:1]).tolist() == [0]  # nothing else to pick: itself


def test_loss_config_rejects_unknown_pairing_and_negative_weights():
    with pytest.raises(ValueError, match="mismatch_pairing"):
        LossConfig(mismatch_pairing="hardest")
    with pytest.raises(ValueError, match="pair_diversity"):
        LossConfig(pair_diversity=-1.0)


def test_paired_step_renders_pairs_at_one_camera_and_reports_their_spread(shards, tmp_path):
    plan = tiny_plan(shards, tmp_path / "run")
    cfg = plan.config
    cfg = dataclasses.replace(
        cfg,
        loss=dataclasses.replace(cfg.loss, pair_diversity=1.0, pair_diversity_target=0.5, mismatch_pairing="nearest"),
    )
    trainer = Trainer(dataclasses.replace(plan, config=cfg), progress_bar=False)
    before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    values = trainer.step(next(iter(trainer.stream)), step=1)
    assert 0 < values["G/pair_spread"] < 0.5  # a fresh G's pairs differ, but less than the target: the hinge acts
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values()), values
    assert any(not torch.equal(before[k], v) for k, v in trainer.G.state_dict().items())


def test_d_mapping_lr_multiplier_scales_the_conditioning_layers_only():
    cfg = tiny().discriminator
    slow = Discriminator(cfg, 16, 8, rng=torch.Generator().manual_seed(0))
    fast = Discriminator(
        dataclasses.replace(cfg, mapping_lr_multiplier=0.5), 16, 8, rng=torch.Generator().manual_seed(0)
    )
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    camera = torch.zeros(3, 25) if cfg.camera_cond else None
    # Equalized lr: stored weights are N(0, 1) / multiplier, used times multiplier / sqrt(fan_in). Both networks
    # compute the same function at init; the multiplier scales how far an Adam step moves the effective weights.
    assert torch.allclose(fast.condition(x, camera), slow.condition(x, camera), atol=1e-5)
    assert fast.mapping[0].weight_gain / slow.mapping[0].weight_gain == pytest.approx(0.5 / 0.01)
    assert fast.text_embed.weight_gain == slow.text_embed.weight_gain  # the text projection is not a mapping layer


def test_edge_padding_removes_the_frame_that_zero_padding_draws_around_a_uniform_image():
    """A uniform white feature image (the background) must super-resolve to a uniform image: with zero padding
    the border pixels differ from the interior, with replicate edge padding they do not."""
    features = torch.ones(2, 4, 8, 8)  # (N, F, h, w), everything background
    code = torch.randn(2, 12, generator=torch.Generator().manual_seed(0))

    def border_excess(edge_pad: int) -> float:
        cfg = SuperResConfig(output_resolution=16, channel_base=64, channel_max=8, edge_pad=edge_pad)
        sr = SuperResolution(cfg, 8, 4, 12, rng=torch.Generator().manual_seed(0))
        with torch.no_grad():
            img = sr(features, code)  # (N, 3, 16, 16)
        assert img.shape == (2, 3, 16, 16)
        interior = img[..., 4:-4, 4:-4].mean(dim=(-2, -1), keepdim=True)
        return float((img - interior).abs()[..., :2, :].mean())  # top 2-pixel rows

    assert border_excess(0) > 1e-3
    assert border_excess(2) < 1e-6


def test_ray_directions_from_a_camera_label_are_the_cameras_own_rays():
    cams = orbit_cameras(3, 20.0, 15.0, radius=2.7, fovy_deg=40.0, resolution=8)
    dirs = ray_directions(cams.eg3d_label(), 8)  # (3, 3, 8, 8)
    _, expected = cams.rays()  # (3, 8, 8, 3)
    assert torch.allclose(dirs, expected.permute(0, 3, 1, 2), atol=1e-5)


def test_ray_input_discriminator_reads_the_camera_through_its_pixels():
    cfg = dataclasses.replace(tiny().discriminator, ray_input=True, camera_cond=True)
    D = Discriminator(cfg, 16, 8, rng=torch.Generator().manual_seed(0))
    assert D.from_rgb.weight.shape[1] == 9  # final RGB, raw RGB, ray direction
    image, raw = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 8, 8)
    front, side = (orbit_cameras(2, e, 0.0, resolution=16).eg3d_label() for e in (0.0, 30.0))
    assert not torch.allclose(D.features(image, raw, front), D.features(image, raw, side))
    with pytest.raises(ValueError, match="camera_cond"):
        dataclasses.replace(cfg, camera_cond=False)


def test_background_gate_makes_empty_space_exactly_background_and_keeps_the_object():
    gen_cfg = tiny_generator_config()
    planes = torch.zeros(1, 3, gen_cfg.synthesis.plane_channels, 16, 16)
    cams = orbit_cameras(2, 15.0, 0.0, resolution=16)
    c2w, fovy = cams.c2w.unsqueeze(0), cams.fovy_deg.unsqueeze(0)  # (1, 2, 4, 4), (1, 2)

    def render(gate: float, background: torch.Tensor | None = None) -> torch.Tensor:
        mode = "white" if background is None else "shards"
        cfg = dataclasses.replace(
            gen_cfg,
            superres=dataclasses.replace(gen_cfg.superres, background_gate=gate),
            render=dataclasses.replace(gen_cfg.render, background=mode),
        )
        G = TriplaneGenerator(cfg, rng=torch.Generator().manual_seed(0)).eval()
        G.decoder.cfg = dataclasses.replace(G.decoder.cfg, density_shift=-50.0)  # empty: sigma ~ 0 everywhere
        with torch.no_grad():
            return G.render_views(planes, c2w, fovy, background=background).image  # (1, 2, 3, 16, 16)

    assert (render(0.0) - 1).abs().max() > 1e-3  # the super-resolution tints empty space
    assert (render(0.1) - 1).abs().max() < 1e-4  # gated: white wherever nothing was rendered
    grey = torch.tensor([0.5, 0.55, 0.6]).expand(1, 2, 3)  # each view's recorded background (render.background=shards)
    assert (render(0.1, grey) - grey.reshape(1, 2, 3, 1, 1)).abs().max() < 1e-4


def gaussian_planes(res: int = 64, width: float = 0.4) -> torch.Tensor:
    """(1, 3, 1, res, res): every plane holds exp(-(a^2 + b^2) / width^2) of its two axes, at texel centres."""
    from pipeline.cameras import BOX_HALF

    centres = (torch.arange(res) + 0.5) / res * 2 * BOX_HALF - BOX_HALF  # (res,)
    a, b = torch.meshgrid(centres, centres, indexing="xy")
    g = torch.exp(-(a**2 + b**2) / width**2)  # (res, res)
    return g.expand(1, 3, 1, res, res).clone()


def test_mean_product_aggregate_makes_a_round_field_where_the_mean_makes_a_boxy_one():
    from student.config import DecoderConfig
    from student.model.decoder import TriplaneDecoder
    from student.render.triplane import sample_triplane

    r = 0.5  # the same radius along an axis, a face diagonal and the space diagonal
    points = torch.tensor([[r, 0, 0], [r / 2**0.5, r / 2**0.5, 0], [r / 3**0.5, r / 3**0.5, r / 3**0.5]])
    feats = sample_triplane(gaussian_planes(), points[None])  # (1, 3, 3, 1)
    decoder = TriplaneDecoder(DecoderConfig(hidden=4, feature_channels=3, aggregate="mean_product"), 1)
    mean, product = decoder.aggregate(feats)[0].unbind(-1)  # (3,) each
    assert torch.allclose(product, torch.full((3,), math.exp(-2 * r**2 / 0.4**2)), rtol=0.03), product
    assert mean.max() - mean.min() > 0.1 * mean.max(), mean  # the mean of three plane Gaussians is not radial
    plain = TriplaneDecoder(DecoderConfig(hidden=4, feature_channels=3), 1)
    assert torch.equal(plain.aggregate(feats), feats.mean(dim=1))  # "mean" is EG3D's average, unchanged
    assert decoder.hidden.weight.shape[1] == 2 and plain.hidden.weight.shape[1] == 1
    with pytest.raises(ValueError, match="decoder.aggregate"):
        DecoderConfig(aggregate="max")


def test_mean_product_generator_renders_and_learns(shards, tmp_path):
    plan = tiny_plan(shards, tmp_path / "run")
    gen = plan.config.generator
    cfg = dataclasses.replace(
        plan.config,
        generator=dataclasses.replace(gen, decoder=dataclasses.replace(gen.decoder, aggregate="mean_product")),
    )
    trainer = Trainer(dataclasses.replace(plan, config=cfg), progress_bar=False)
    before = trainer.G.decoder.hidden.weight.detach().clone()
    values = trainer.step(next(iter(trainer.stream)), step=1)
    assert all(math.isfinite(v) for v in values.values()), values
    assert not torch.equal(before, trainer.G.decoder.hidden.weight)


def test_opacity_pair_spread_moves_geometry_only_and_trains(shards, tmp_path):
    G = TriplaneGenerator(tiny_generator_config(), rng=torch.Generator().manual_seed(0))
    cams = orbit_cameras(1, 15.0, 30.0, resolution=16)
    emb = torch.randn(2, 8, generator=torch.Generator().manual_seed(1))
    planes = G.planes(emb[:1].expand(2, -1), rng=torch.Generator().manual_seed(2))
    out = G.render_views(planes, cams.c2w[None].expand(2, -1, -1, -1), cams.fovy_deg[None].expand(2, -1))
    spread = pair_spread(out.opacity)  # (1,): the silhouettes of two latents of one prompt at one camera
    spread.sum().backward()
    assert spread.item() > 0
    assert all(p.grad is None or not p.grad.any() for p in G.superres.parameters())  # colour-only part: untouched
    assert any(p.grad is not None and p.grad.any() for p in G.synthesis.parameters())
    with pytest.raises(ValueError, match="pair_diversity_space"):
        LossConfig(pair_diversity_space="depth")
    plan = tiny_plan(shards, tmp_path / "run")
    loss = dataclasses.replace(plan.config.loss, pair_diversity=1.0, pair_diversity_space="opacity")
    trainer = Trainer(dataclasses.replace(plan, config=dataclasses.replace(plan.config, loss=loss)), progress_bar=False)
    values = trainer.step(next(iter(trainer.stream)), step=1)
    assert 0 < values["G/pair_spread"] < 1 and all(math.isfinite(v) for v in values.values()), values
