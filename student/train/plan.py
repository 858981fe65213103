"""What one `et3d-train` invocation will do: the resolved config, the data, the run directory, the resume point.

Resolution order: the preset, then `--key=value` overrides, then what the shards record (text encoder and
dimension, view count, resolution, camera distribution: elevation range, radius and field of view), learned
from the dump's `dataset.json` and the shards' indexes (`pipeline/dataset.py`), never from the views. A run resumes by default from the newest
checkpoint of the newest run of the same preset under `--out`, in that run's directory and with its saved
config (overrides still apply on top); otherwise it starts `runs/train/<NNNNN>-<preset>/`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.dataset import DatasetInfo, describe_dataset
from pipeline.shards import list_shards
from student.config import TrainConfig, from_dict, to_dict
from student.overrides import apply_overrides
from student.precision import check_precision
from student.presets import get_preset
from student.run_layout import find_latest_checkpoint, next_run_dir
from student.train.state import read_run_config


@dataclass(frozen=True)
class TrainPlan:
    config: TrainConfig
    shards: list[Path]
    dataset: DatasetInfo
    run_dir: Path
    resume_from: Path | None
    workers: int

    def describe(self) -> str:
        d = self.dataset
        lines = [
            f"run dir:      {self.run_dir}" + ("" if self.run_dir.exists() else " (new)"),
            f"resume from:  {self.resume_from or 'nothing (fresh start)'}",
            f"data:         {len(self.shards)} shard(s), {d.num_samples} samples, {len(d.prompts)} prompts, "
            f"teacher {d.teacher}, {d.num_views} views at {d.resolution}px",
            f"text encoder: {d.text_encoder} ({d.text_dim}-d)",
            f"cameras:      elevation {d.cameras.elevation_range[0]:g}..{d.cameras.elevation_range[1]:g} deg, "
            f"radius {d.cameras.radius:g}, fovy {d.cameras.fovy_deg:g} deg; background {list(d.background)}",
            f"workers:      {self.workers} data-parallel x {self.config.data.num_workers} loader processes",
            "config:",
            json.dumps(to_dict(self.config), indent=2),
        ]
        return "\n".join(lines)


def resolve_against_data(cfg: TrainConfig, info: DatasetInfo) -> TrainConfig:
    """Fill the text encoder and camera defaults from the shards; conflicting explicit values raise."""
    gen = cfg.generator
    for name, want, have in (
        ("text_encoder", gen.text_encoder, info.text_encoder),
        ("text_dim", gen.text_dim, info.text_dim),
    ):
        if want and want != have:
            raise ValueError(f"generator.{name}={want!r} but the shards were encoded with {have!r}")
    camera = gen.camera
    if camera.resolution and camera.resolution != info.resolution:
        raise ValueError(
            f"generator.camera.resolution={camera.resolution} but the shards hold {info.resolution}px views"
        )
    if not 1 <= cfg.optim.views_per_sample <= info.num_views:
        raise ValueError(
            f"optim.views_per_sample={cfg.optim.views_per_sample} but the shards hold {info.num_views} views"
        )
    if cfg.anchor.weight > 0 and cfg.anchor.latent == "encoder" and cfg.optim.views_per_sample >= info.num_views:
        raise ValueError(
            f"anchor.latent='encoder' encodes one more view of each sample than the {cfg.optim.views_per_sample} it "
            f"renders, but the shards hold {info.num_views}: lower optim.views_per_sample or use anchor.latent=code"
        )
    if gen.mapping.latent_prior and cfg.anchor.weight == 0:
        raise ValueError(
            "generator.mapping.latent_prior=true fits the prior to anchored latents: set anchor.weight > 0 too"
        )
    group = cfg.optim.prompt_group
    if group < 1 or cfg.optim.batch_size % group:
        raise ValueError(f"optim.prompt_group={group} must be >= 1 and divide optim.batch_size={cfg.optim.batch_size}")
    if group > 1 and group != cfg.discriminator.mbstd_group:
        raise ValueError(
            f"optim.prompt_group={group} must equal discriminator.mbstd_group={cfg.discriminator.mbstd_group}: "
            "each minibatch-stddev group is one prompt's samples"
        )
    if group > 1 and cfg.loss.pair_diversity > 0:
        raise ValueError(
            f"optim.prompt_group={group} cannot be combined with loss.pair_diversity={cfg.loss.pair_diversity}: "
            "paired latents give fake 2j + 1 the condition of sample 2j, so a minibatch-stddev group of fakes is no "
            "longer one prompt; set one of them off (--loss.pair_diversity=0 or --optim.prompt_group=1)"
        )
    cams = info.cameras
    camera = dataclasses.replace(
        camera,
        radius=cams.radius,
        fovy_deg=cams.fovy_deg,
        elevation_range=cams.elevation_range,
        num_views=info.num_views,
        resolution=info.resolution,
    )
    render = gen.render
    if render.background == "shards":  # generation and previews show the dataset's typical background
        render = dataclasses.replace(render, background_rgb=info.background)
    gen = dataclasses.replace(gen, text_encoder=info.text_encoder, text_dim=info.text_dim, camera=camera, render=render)
    return dataclasses.replace(cfg, generator=gen)


def make_plan(
    *,
    data: Path,
    out: Path,
    preset: str,
    overrides: list[str],
    resume: bool | Path = True,
    workers: int = 1,
) -> TrainPlan:
    """resume: True = newest checkpoint of this preset under `out` if any; False = fresh run; a path = that one."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    shards = list_shards(data)
    if not shards:
        raise FileNotFoundError(f"no shards (*.tar) in {data}; make them with `make dump`")
    info = describe_dataset(data, shards)
    checkpoint = Path(resume) if isinstance(resume, Path) else find_latest_checkpoint(out, preset) if resume else None
    if checkpoint is not None:
        base = from_dict(TrainConfig, read_run_config(checkpoint))
        run_dir = checkpoint.parent.parent  # <run>/checkpoints/<step>
    else:
        base = get_preset(preset)
        run_dir = next_run_dir(out, preset)
    cfg = resolve_against_data(apply_overrides(base, overrides), info)
    check_precision(cfg.optim.precision, "--optim.precision")
    return TrainPlan(cfg, shards, info, run_dir, checkpoint, workers)
