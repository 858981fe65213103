"""The GAN trainer: teacher views from shards vs student renders at the same cameras.

One iteration (`Trainer.step`): draw z, render the batch at the teacher's cameras once, take a generator step
against the (frozen) discriminator, then a discriminator step on the same renders detached (one render per
iteration, docs/student.md §Training), the real views, mismatched texts and, every `r1_interval` steps, R1;
then update the EMA generator. Everything random in a step comes from `step_rng(seed, rank, step)` and
the data order from the saved data position, so an interrupted and resumed run reproduces an uninterrupted one
exactly.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.atomic import atomic_write_json
from pipeline.cameras import Cameras
from pipeline.dataset import load_indexes
from pipeline.shard_reader import ShardBatch
from student.config import to_dict
from student.model.discriminator import Discriminator, resize
from student.model.generator import TriplaneGenerator
from student.model.latent_prior import moments
from student.precision import autocast, full_precision
from student.run_layout import RunDir, run_checkpoints
from student.train.allocator import keep_freed_memory
from student.train.anchors import (
    SampleCodes,
    anchored_positions,
    build_anchor_net,
    kl_to_prior,
    reconstruction_loss,
    sample_posterior,
    silhouette_loss,
)
from student.train.batch_stream import BatchStream, DataPosition, rank_shards
from student.train.collectives import all_reduce_grads, all_reduce_mean, any_rank, check_in_sync, gather_ints
from student.train.ema import ema_beta, update_ema
from student.train.interrupt import GracefulStop
from student.train.loss import (
    density_smoothness,
    discriminator_loss,
    generator_loss,
    mismatch_loss,
    r1_penalty,
)
from student.train.mixed_precision import LossScaling
from student.train.monitor import Monitor
from student.train.plan import TrainPlan
from student.train.state import Progress, load_checkpoint, save_checkpoint, step_rng
from student.train.stats import first_non_finite


class CorruptDataError(RuntimeError):
    """A sample could not be read; training stopped (without `data.skip_corrupt`), the last checkpoint kept."""


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped without writing a checkpoint of the broken state."""


def select_views(
    batch: ShardBatch, k: int, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """k distinct random views of each sample (of those the loader decoded): images (B, k, 3, H, W) in [0, 1],
    c2w (B, k, 4, 4), fovy (B, k), background (B, k, 3)."""
    b, v = batch.fovy.shape
    if not 1 <= k <= v:
        raise ValueError(f"optim.views_per_sample must lie in [1, {v}], got {k}")
    pick = torch.rand(b, v, generator=rng).argsort(dim=1)[:, :k]  # (B, k)
    images = batch.images()  # (B, V, 3, H, W)
    index = pick.view(b, k, 1, 1, 1).expand(b, k, *images.shape[2:])
    return (
        images.gather(1, index),
        batch.cameras.gather(1, pick.view(b, k, 1, 1).expand(b, k, 4, 4)),
        batch.fovy.gather(1, pick),
        batch.background.gather(1, pick.view(b, k, 1).expand(b, k, 3)),
    )


def interleave_groups(prompts: list[str], group: int) -> torch.Tensor | None:
    """(B,) order that turns runs of `group` samples of one prompt (p p p p q q q q ...) into D's minibatch-stddev
    layout (p q ... p q ...: group members i, i + B/group, ...); None when the batch is not such runs (a sample
    was skipped as corrupt), which then trains as drawn."""
    b = len(prompts)
    if group < 2 or b % group or any(len(set(prompts[i : i + group])) != 1 for i in range(0, b, group)):
        return None
    return torch.arange(b).view(b // group, group).t().reshape(-1)


def pair_sources(batch: int, device: torch.device) -> torch.Tensor:
    """(B,) index of the real sample whose prompt and camera each fake takes: 0, 0, 2, 2, 4, 4, ...

    Pairs sit at adjacent indices so that no minibatch-stddev group of the discriminator (samples i, i + N/G,
    ...) holds both members of a pair: the fake groups then look like the real ones, four different prompts."""
    if batch % 2:
        raise ValueError(f"loss.pair_diversity needs an even batch size, got {batch}")
    return torch.arange(batch, device=device) // 2 * 2


def pair_spread(images: torch.Tensor) -> torch.Tensor:
    """images (B, V, 3, H, W) or opacities (B, V, H, W), samples 2j, 2j+1 paired -> (B/2,) mean |difference| of
    each pair."""
    return (images[0::2] - images[1::2]).abs().flatten(1).mean(dim=1)


def nearest_other_prompt(emb: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """emb (B, D) -> (B,) index of the sample whose prompt differs and whose embedding is closest (cosine); a
    sample whose batch holds only its own prompt gets itself (the caller masks such pairs out)."""
    unit = torch.nn.functional.normalize(emb, dim=1)
    sim = unit @ unit.t()  # (B, B)
    same = torch.tensor([[p == q for q in prompts] for p in prompts], device=emb.device)
    sim = sim.masked_fill(same, float("-inf"))
    best = sim.argmax(dim=1)
    alone = torch.isinf(sim).all(dim=1)
    return torch.where(alone, torch.arange(len(prompts), device=emb.device), best)


class Trainer:
    def __init__(
        self,
        plan: TrainPlan,
        *,
        rank: int = 0,
        world: int = 1,
        device: torch.device | str = "cpu",
        progress_bar: bool = True,
    ) -> None:
        # Subnormal floats in the transmittance products slowed the CPU backward pass by ~50%
        # (docs/student.md §Training).
        torch.set_flush_denormal(True)
        # Reuse the freed activations of the last step instead of faulting in fresh pages (train/allocator.py).
        keep_freed_memory()
        self.plan, self.cfg, self.rank, self.world = plan, plan.config, rank, world
        self.device = torch.device(device)
        self.progress_bar = progress_bar and rank == 0
        cfg = self.cfg
        init_rng = torch.Generator().manual_seed(cfg.seed)  # identical initial weights on every worker
        self.G = TriplaneGenerator(cfg.generator, rng=init_rng).to(self.device).train()
        self.D = Discriminator(
            cfg.discriminator, cfg.generator.superres.output_resolution, cfg.generator.text_dim, rng=init_rng
        ).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=o.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=o.betas)
        # Anchored latents (student/train/anchors.py): the view encoder, or a code per sample of all workers' shards.
        self.anchor_net: torch.nn.Module | None = None
        self.opt_anchor: torch.optim.Optimizer | None = None
        if cfg.anchor.weight > 0:
            codes = cfg.anchor.latent == "code"
            keys = [key for index in load_indexes(plan.shards) for key in index["keys"]] if codes else []
            z_dim = cfg.generator.mapping.z_dim
            self.anchor_net = build_anchor_net(cfg.anchor, keys, self._encoder_resolution(), z_dim, init_rng)
            self.anchor_net = self.anchor_net.to(self.device)
            self.opt_anchor = torch.optim.Adam(self.anchor_net.parameters(), lr=cfg.anchor.lr, betas=o.betas)
        self.scaling = LossScaling(o.precision, self.device)
        self.progress = Progress()
        if plan.resume_from is not None:
            self.progress = load_checkpoint(
                plan.resume_from, G=self.G, G_ema=self.G_ema, D=self.D, opt_g=self.opt_g, opt_d=self.opt_d,
                loss_scaling=self.scaling, rank=rank, world=world, anchor=(self.anchor_net, self.opt_anchor),
            )  # fmt: skip
        self.stream = BatchStream(
            rank_shards(plan.shards, rank, world),
            o.batch_size,
            seed=cfg.seed,
            num_workers=cfg.data.num_workers,
            views_per_sample=o.views_per_sample + self._encoder_views(),
            prompt_group=o.prompt_group,
            start=self.progress.data,
        )
        self.last_checkpoint: Path | None = plan.resume_from
        self.skipped_corrupt = 0  # samples skipped as unreadable in this session (data.skip_corrupt)

    # --- one iteration -------------------------------------------------------------------------------------
    def step(self, batch: ShardBatch, step: int) -> dict[str, float]:
        """One G step and one D step on `batch`; returns the scalar losses. Raises NonFiniteLossError."""
        cfg, loss_cfg, dev = self.cfg, self.cfg.loss, self.device
        rng = step_rng(cfg.seed, self.rank, step, dev)  # z, jitter, regularisers (on the model's device)
        order = interleave_groups(batch.prompts, cfg.optim.prompt_group)
        if order is not None:
            batch = batch.reordered(order)
        k = cfg.optim.views_per_sample
        picked = select_views(batch, k + self._encoder_views(), step_rng(cfg.seed, self.rank, step, "cpu", 1))
        real, c2w, fovy, background = (x[:, :k] for x in picked)  # the views rendered and shown to D
        b = fovy.shape[0]
        real, c2w, fovy, emb = real.to(dev), c2w.to(dev), fovy.to(dev), batch.emb.to(dev)
        labels = Cameras(c2w.reshape(b * k, 4, 4), fovy.reshape(b * k), 1).eg3d_label()  # (BK, 25)
        text = emb.repeat_interleave(k, dim=0)  # (B, D) -> (BK, D)
        d_camera = labels if cfg.discriminator.camera_cond else None
        # The fakes' conditions: the real samples' own, or with paired latents sample 2j's for 2j and 2j+1.
        paired = loss_cfg.pair_diversity > 0
        source = pair_sources(b, dev) if paired else torch.arange(b, device=dev)  # (B,)
        f_emb, f_c2w, f_fovy = emb[source], c2w[source], fovy[source]
        f_view = (source.repeat_interleave(k) * k + torch.arange(b * k, device=dev) % k) if paired else None
        f_text = text if f_view is None else text[f_view]  # (BK, D)
        f_labels = labels if f_view is None else labels[f_view]  # (BK, 25)
        f_camera = f_labels if cfg.discriminator.camera_cond else None

        # Generator step. D's weights are frozen; its input gradients flow into G.
        self.D.requires_grad_(False)
        z = self.G.prior_z(self.G.sample_z(b, rng))  # (B, z_dim) as the mapping reads it (from the learned prior)
        anchored, own, kl = None, None, None
        if self.anchor_net is not None:  # even-position fakes take their sample's anchored z instead
            anchored = anchored_positions(b, dev)  # (A,)
            own, kl = self._anchored_z(batch, picked, source[anchored], rng)  # (A, z_dim), scalar or None
            z = z.index_copy(0, anchored, own.to(z.dtype))
        with self._autocast():
            w = self.G.mapping(z, f_emb, self._mapping_camera(f_labels[::k], rng))
            planes = self.G.synthesis(w)
            fake = self.G.render_views(planes, f_c2w, f_fovy, rng=rng, background=background[source])
            fake_img, fake_raw = fake.image.flatten(0, 1), fake.raw.flatten(0, 1)  # (BK, 3, H, W), (BK, 3, h, w)
            g_logits = self.D(fake_img, fake_raw, f_text, f_camera)
        loss_g = generator_loss(g_logits.float())
        values = {"loss/G": loss_g.item()}
        total_g = loss_g
        if paired:
            measured = fake.image if loss_cfg.pair_diversity_space == "image" else fake.opacity  # (B, V, ...)
            spread = pair_spread(measured)  # (B/2,)
            total_g = total_g + loss_cfg.pair_diversity * (loss_cfg.pair_diversity_target - spread).clamp_min(0).mean()
            values["G/pair_spread"] = spread.mean().item()
        if anchored is not None:
            rows = (anchored.unsqueeze(1) * k + torch.arange(k, device=dev)).flatten()  # (A*K,) their views
            recon = reconstruction_loss(fake_img[rows], fake_raw[rows], real[source[anchored]].flatten(0, 1))
            total_g = total_g + cfg.anchor.weight * recon
            values["loss/anchor"] = recon.item()
            # The silhouette match is logged for every anchored run, and trained when anchor.silhouette > 0.
            shown = source[anchored]  # (A,) the samples whose views the anchored fakes reproduce
            sil = silhouette_loss(
                fake.opacity.flatten(0, 1)[rows], real[shown].flatten(0, 1), background[shown.cpu()].flatten(0, 1)
            )
            if cfg.anchor.silhouette > 0:
                total_g = total_g + cfg.anchor.silhouette * sil
            values["loss/silhouette"] = sil.item()
        if kl is not None:
            total_g = total_g + cfg.anchor.kl * kl
            values["loss/anchor_kl"] = kl.item()
        if loss_cfg.density_reg > 0 and step % loss_cfg.density_reg_interval == 0:
            with full_precision(dev):  # differences of nearby densities: fp32, whatever the training precision
                planes32 = planes.float()
                reg = density_smoothness(
                    lambda p: self.G.field(planes32, p)[0],
                    b, loss_cfg.density_reg_points, loss_cfg.density_reg_eps, rng, dev,
                )  # fmt: skip
            total_g = total_g + reg * (loss_cfg.density_reg * loss_cfg.density_reg_interval)  # lazy: scaled by interval
            values["loss/density"] = reg.item()
        self._check(values, step)
        self.opt_g.zero_grad(set_to_none=True)
        g_optimizers = [self.opt_g]
        if self.anchor_net is not None:
            self.opt_anchor.zero_grad(set_to_none=True)
            g_optimizers.append(self.opt_anchor)
        self.scaling.backward("G", total_g)
        all_reduce_grads(self.G, self.world)
        if self.anchor_net is not None:
            all_reduce_grads(self.anchor_net, self.world)
        self.scaling.step("G", *g_optimizers)
        if self.G.prior is not None:  # the learned prior follows the anchored latents (student/model/latent_prior.py)
            mean, second_moment = all_reduce_mean(list(moments(own)), self.world)
            self.G.prior.update(mean, second_moment, cfg.anchor.prior_decay)

        # Discriminator step on the same renders, detached.
        self.D.requires_grad_(True)
        fake_img, fake_raw = fake_img.detach().float(), fake_raw.detach().float()
        with self._autocast():
            fake_logits = self.D(fake_img, fake_raw, f_text, f_camera).float()
        do_r1 = loss_cfg.r1_gamma > 0 and step % loss_cfg.r1_interval == 0
        real_img = resize(real.flatten(0, 1), fake_img.shape[-1])  # (BK, 3, H, W); no-op at the output size
        # The real raw image: the view filtered down to the rendering resolution (EG3D's filtered_resizing).
        real_raw = resize(real_img, fake_raw.shape[-1])
        # Separate leaves, so that R1 penalises the gradient with respect to each input of the dual D (EG3D).
        real_img, real_raw = real_img.detach().requires_grad_(do_r1), real_raw.detach().requires_grad_(do_r1)
        # R1 differentiates D's output with respect to its input: that pass runs in fp32 (StyleGAN2-ADA likewise
        # keeps its gradient penalty out of reduced precision); the other real passes use the training precision.
        with full_precision(dev) if do_r1 else self._autocast():
            real_features = self.D.features(real_img, real_raw, d_camera)
            real_logits = self.D.score(real_features, self.D.condition(text, d_camera)).float()
        total_d = discriminator_loss(real_logits, fake_logits)
        values.update(
            {"loss/D": total_d.item(), "D/real": real_logits.mean().item(), "D/fake": fake_logits.mean().item()}
        )
        if loss_cfg.mismatch_weight > 0:
            if loss_cfg.mismatch_pairing == "nearest":
                perm = nearest_other_prompt(emb, batch.prompts)
            else:
                perm = torch.randperm(b, generator=rng, device=dev)
            valid = torch.tensor(
                [batch.prompts[i] != batch.prompts[j] for i, j in enumerate(perm.tolist())], device=dev
            )
            other = perm.repeat_interleave(k) * k + torch.arange(b * k, device=dev) % k  # (BK,) same view, other text
            with full_precision(dev) if do_r1 else self._autocast():
                mismatched = self.D.score(real_features, self.D.condition(text[other], d_camera)).float()
            mis = mismatch_loss(mismatched, valid.repeat_interleave(k))
            total_d = total_d + loss_cfg.mismatch_weight * mis
            values["loss/mismatch"] = mis.item()
        if do_r1:
            r1 = r1_penalty(real_logits, [real_img, real_raw])
            total_d = total_d + r1 * (loss_cfg.r1_gamma / 2 * loss_cfg.r1_interval)  # lazy: scaled by interval
            values["loss/r1"] = r1.item()
        self._check(values, step)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaling.backward("D", total_d)
        all_reduce_grads(self.D, self.world)
        self.scaling.step("D", self.opt_d)

        images = b * k * self.world
        nimg = self.progress.nimg + images
        update_ema(self.G_ema, self.G, ema_beta(images, nimg, cfg.optim.ema_kimg, cfg.optim.ema_rampup))
        return values

    def _encoder_views(self) -> int:
        """Teacher views per sample decoded beyond those rendered: one for the view encoder of anchored latents."""
        a = self.cfg.anchor
        return 1 if a.weight > 0 and a.latent == "encoder" else 0

    def _encoder_resolution(self) -> int:
        """The size of the views the view encoder reads: `anchor.resolution`, or the output size."""
        return self.cfg.anchor.resolution or self.cfg.generator.superres.output_resolution

    def _anchored_z(
        self, batch: ShardBatch, picked: tuple[torch.Tensor, ...], samples: torch.Tensor, rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Anchored latents (A, z_dim) of batch samples `samples` (A,) and their KL to the prior (None for codes):
        their codes, or a draw from the encoding of their extra view (the last of `picked`, select_views'
        output), which G is then asked to reproduce from the others."""
        if isinstance(self.anchor_net, SampleCodes):
            return self.anchor_net([batch.keys[i] for i in samples.tolist()]), None
        images, c2w, fovy, _ = (x[:, -1] for x in picked)  # (B, 3, H, W), (B, 4, 4), (B,)
        image = resize(images[samples.cpu()].to(self.device), self._encoder_resolution())
        label = Cameras(c2w[samples.cpu()], fovy[samples.cpu()], 1).eg3d_label().to(self.device)  # (A, 25)
        with self._autocast():
            mean, log_var = (x.float() for x in self.anchor_net(image, label))
        return sample_posterior(mean, log_var, rng), kl_to_prior(mean, log_var)

    def _autocast(self):
        """The forward passes' precision (`optim.precision`); a fresh context each time it is entered."""
        return autocast(self.cfg.optim.precision, self.device)

    def _mapping_camera(self, labels: torch.Tensor, rng: torch.Generator) -> torch.Tensor | None:
        """The camera w is conditioned on: the rendered one, or with camera_swap_prob a random other one from the
        batch (EG3D's generator pose conditioning regularisation, gpc_reg_prob)."""
        m = self.cfg.generator.mapping
        if not m.camera_cond:
            return None
        b = labels.shape[0]
        swap = torch.rand(b, generator=rng, device=self.device) < m.camera_swap_prob
        other = labels[torch.randperm(b, generator=rng, device=self.device)]
        return torch.where(swap.unsqueeze(1), other, labels)

    def _check(self, values: dict[str, float], step: int) -> None:
        bad = first_non_finite(values)
        if bad is not None:
            where = self.last_checkpoint or "none written yet"
            raise NonFiniteLossError(f"{bad[0]} = {bad[1]} at step {step}; last good checkpoint: {where}")

    # --- the loop ------------------------------------------------------------------------------------------
    def data_positions(self) -> list[DataPosition]:
        """Every worker's data position, by rank (a collective: all workers call it at the same step)."""
        mine = (self.stream.position.epoch, self.stream.position.batch)
        return [DataPosition(*p) for p in gather_ints(mine, self.world, self.device)]

    def save(self, data_by_rank: list[DataPosition] | None = None) -> Path:
        """Write the checkpoint of the current step (main worker); `data_by_rank` from `data_positions`, which a
        single worker may leave out."""
        if data_by_rank is None:
            if self.world != 1:
                raise ValueError("a data-parallel checkpoint needs every worker's data position (data_positions())")
            data_by_rank = [self.progress.data]
        run_dir = self.plan.run_dir
        path = RunDir(run_dir).checkpoint(self.progress.step)
        save_checkpoint(
            path, G=self.G, G_ema=self.G_ema, D=self.D, opt_g=self.opt_g, opt_d=self.opt_d,
            progress=self.progress, run_config=self.cfg, loss_scaling=self.scaling,
            training_prompts=(self.plan.dataset.prompts, self.plan.dataset.embeddings), data_by_rank=data_by_rank,
            anchor=(self.anchor_net, self.opt_anchor),
        )  # fmt: skip
        self.last_checkpoint = path
        for _, old in run_checkpoints(run_dir)[: -self.cfg.schedule.keep_checkpoints]:
            shutil.rmtree(old)
        return path

    def _next_batch(self, batches: Iterator[ShardBatch], monitor: Monitor | None) -> ShardBatch:
        """The next batch with samples; corrupt samples stop training or, with data.skip_corrupt, are counted."""
        while True:
            batch = next(batches)
            if batch.corrupt:
                if not self.cfg.data.skip_corrupt:
                    where = self.last_checkpoint or "none written yet"
                    raise CorruptDataError(
                        f"{batch.corrupt[0]}; at step {self.progress.step}, last checkpoint: {where} "
                        "(--skip-corrupt skips such samples)"
                    )
                self.skipped_corrupt += len(batch.corrupt)
                if monitor is not None:
                    monitor.skipped(self.progress, batch.corrupt)
            if len(batch):
                return batch

    def _budget_spent(self, elapsed: float) -> bool:
        s = self.cfg.schedule
        return (s.steps > 0 and self.progress.step >= s.steps) or (s.minutes > 0 and elapsed >= s.minutes * 60)

    def train(self) -> Progress:
        """Train until the step or time budget is spent or a stop is requested; checkpoint at exit."""
        main = self.rank == 0
        monitor = Monitor(self.plan, self.G_ema) if main else None
        if main:
            self.plan.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(RunDir(self.plan.run_dir).config, to_dict(self.cfg))
            if self.progress.step == 0:
                monitor.evaluate(self.progress)
        sched, started, elapsed0 = self.cfg.schedule, time.monotonic(), self.progress.elapsed_s
        cpu_started, cpu0 = time.process_time(), self.progress.cpu_s
        saved_step = self.progress.step if self.plan.resume_from is not None else -1
        bar = tqdm(total=sched.steps or None, initial=self.progress.step, unit="step", disable=not self.progress_bar)
        with GracefulStop() as stop:
            batches = iter(self.stream)
            while not any_rank(
                self._budget_spent(elapsed0 + time.monotonic() - started) or bool(stop.requested),
                self.world,
                self.device,
            ):
                step_started = time.monotonic()
                values = self.step(self._next_batch(batches, monitor), self.progress.step)
                self.progress = Progress(
                    step=self.progress.step + 1,
                    nimg=self.progress.nimg + self.cfg.optim.batch_size * self.cfg.optim.views_per_sample * self.world,
                    elapsed_s=elapsed0 + time.monotonic() - started,
                    cpu_s=cpu0 + time.process_time() - cpu_started,
                    data=self.stream.position,
                )
                bar.update(1)
                step = self.progress.step
                due = bool(sched.checkpoint_every) and step % sched.checkpoint_every == 0
                positions = self.data_positions() if due else None  # a collective: every worker takes part
                saved_step = step if due else saved_step
                if not main:
                    continue
                monitor.log(self.progress, values, time.monotonic() - step_started)
                bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in values.items() if k.startswith("loss/")})
                if sched.eval_every and step % sched.eval_every == 0:
                    monitor.evaluate(self.progress)
                if sched.preview_every and step % sched.preview_every == 0:
                    monitor.preview(self.progress)
                if positions is not None:
                    self.save(positions)
        bar.close()
        check_in_sync(self.G, self.world)
        check_in_sync(self.D, self.world)
        positions = self.data_positions() if saved_step != self.progress.step else None
        if main:
            if positions is not None:
                self.save(positions)
            monitor.finish(self.progress, stop.requested, self.last_checkpoint)
        return self.progress
