"""The learned latent prior (`generator.mapping.latent_prior`, student/model/latent_prior.py): a Gaussian fit of
the anchored latents that the generator maps every standard normal z onto. That a run with it resumes exactly is
tested with the other anchored runs (tests/test_anchors.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from support.student_data import tiny_plan

from student.model.generator import TriplaneGenerator
from student.model.latent_prior import MIN_VARIANCE, LatentPrior, moments
from student.train.plan import TrainPlan, resolve_against_data
from student.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # `one_thread` and `shards` are in tests/conftest.py


def with_prior(plan: TrainPlan, anchor_weight: float = 10.0, decay: float = 0.9) -> TrainPlan:
    cfg = plan.config
    mapping = dataclasses.replace(cfg.generator.mapping, latent_prior=True)
    cfg = dataclasses.replace(
        cfg,
        generator=dataclasses.replace(cfg.generator, mapping=mapping),
        anchor=dataclasses.replace(cfg.anchor, weight=anchor_weight, latent="encoder", prior_decay=decay),
    )
    return dataclasses.replace(plan, config=cfg)


def test_the_prior_starts_standard_and_fits_the_moments_it_is_fed():
    z_dim = 4
    prior = LatentPrior(z_dim)
    noise = torch.randn(5, z_dim, generator=torch.Generator().manual_seed(0))
    assert torch.equal(prior(noise), noise)  # N(0, I): the plain prior
    rng = torch.Generator().manual_seed(1)
    true_mean = torch.tensor([3.0, -1.0, 0.0, 0.5])
    mix = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.8, 0.3, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.1]])
    true_cov = mix @ mix.T
    for _ in range(300):
        z = true_mean + torch.randn(256, z_dim, generator=rng) @ mix.T  # (256, 4) ~ N(true_mean, true_cov)
        prior.update(*moments(z), decay=0.95)
    assert torch.allclose(prior.mean, true_mean, atol=0.05)
    assert torch.allclose(prior.covariance(), true_cov, atol=0.05)
    assert torch.allclose(prior.scale @ prior.scale.T, true_cov, atol=0.05)
    # Its draws then have the fitted moments.
    draws = prior(torch.randn(20000, z_dim, generator=rng))
    assert torch.allclose(draws.mean(0), true_mean, atol=0.05)
    assert torch.allclose(torch.cov(draws.T), true_cov, atol=0.08)


def test_a_collapsed_direction_keeps_a_floor_of_variance():
    prior = LatentPrior(3)
    z = torch.tensor([[1.0, 2.0, 0.0], [3.0, -2.0, 0.0]])  # the third coordinate never varies
    prior.update(*moments(z), decay=0.0)
    assert torch.allclose(prior.mean, torch.tensor([2.0, 0.0, 0.0]))
    eigenvalues = torch.linalg.eigvalsh(prior.scale @ prior.scale.T)
    assert eigenvalues.min() >= MIN_VARIANCE * 0.999 and eigenvalues.min() < 2 * MIN_VARIANCE


def test_the_generator_maps_z_through_its_prior_and_saves_it(shards, tmp_path):
    plan = with_prior(tiny_plan(shards, tmp_path / "run"))
    cfg = resolve_against_data(plan.config, plan.dataset)
    plain_mapping = dataclasses.replace(cfg.generator.mapping, latent_prior=False)
    plain = TriplaneGenerator(dataclasses.replace(cfg.generator, mapping=plain_mapping))
    assert plain.prior is None and not any("prior" in k for k in plain.state_dict())  # old checkpoints load
    G = TriplaneGenerator(cfg.generator).eval()
    z_dim = cfg.generator.mapping.z_dim
    emb = torch.randn(2, cfg.generator.text_dim, generator=torch.Generator().manual_seed(0))
    z = torch.randn(2, z_dim, generator=torch.Generator().manual_seed(1))
    start = G.latent_w(emb, z)
    with torch.no_grad():
        G.prior.update(torch.full((z_dim,), 2.0), torch.full((z_dim, z_dim), 4.0) + 0.25 * torch.eye(z_dim), 0.0)
    assert torch.allclose(G.prior_z(z), 2.0 + 0.5 * z, atol=1e-4)  # covariance 0.25 I around mean 2
    moved = G.latent_w(emb, z)
    assert not torch.allclose(moved, start)
    with torch.no_grad():
        assert torch.allclose(moved, G.mapping(2.0 + 0.5 * z, emb, G.default_mapping_camera(2)), atol=1e-5)
    loaded = TriplaneGenerator.from_pretrained(G.save_pretrained(tmp_path / "model"))
    assert torch.equal(loaded.prior.scale, G.prior.scale) and torch.equal(loaded.prior.mean, G.prior.mean)
    assert torch.allclose(loaded.latent_w(emb, z), moved)


def test_training_fits_the_prior_to_the_anchored_latents_and_g_ema_carries_it(shards, tmp_path):
    trainer = Trainer(with_prior(tiny_plan(shards, tmp_path / "run")), progress_bar=False)
    prior = trainer.G.prior
    z_dim = prior.mean.shape[0]
    draws = []
    original = trainer._anchored_z

    def recording(*args, **kwargs):
        own, kl = original(*args, **kwargs)
        draws.append(own.detach().clone())
        return own, kl

    trainer._anchored_z = recording
    stream = iter(trainer.stream)
    for step in range(1, 9):
        trainer.step(next(stream), step)
    assert not torch.equal(prior.second_moment, torch.eye(z_dim))  # it moved off N(0, I)
    # The fit is the moving average (decay 0.9 per step) of each step's anchored draws' moments.
    mean, second = torch.zeros(z_dim), torch.eye(z_dim)
    for z in draws:
        m, s = moments(z)
        mean, second = mean.lerp(m, 0.1), second.lerp(s, 0.1)
    assert torch.allclose(prior.mean, mean, atol=1e-5) and torch.allclose(prior.second_moment, second, atol=1e-5)
    for name in ("mean", "second_moment", "scale"):  # copied into G_ema, not averaged
        assert torch.equal(getattr(trainer.G_ema.prior, name), getattr(prior, name))


def test_a_learned_prior_needs_anchored_latents(shards, tmp_path):
    plan = with_prior(tiny_plan(shards, tmp_path / "run"), anchor_weight=0.0)
    with pytest.raises(ValueError, match="latent_prior=true fits the prior to anchored latents"):
        resolve_against_data(plan.config, plan.dataset)
    with pytest.raises(ValueError, match="prior_decay must be in"):
        dataclasses.replace(plan.config.anchor, prior_decay=1.0)
