"""Typed, frozen configuration of the student: one dataclass per component, nested into a run config.

Everything here is saved with each checkpoint (`config.json`), so a checkpoint is self-describing: the
generator is rebuilt from `GeneratorConfig` alone, including the text encoder it expects and the camera
defaults of the teacher views it was trained on. Presets live in `student/presets.py`; `--key=value`
overrides in `student/overrides.py`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from pipeline.cameras import DEFAULT_FOVY_DEG, DEFAULT_RADIUS, Cameras, orbit_cameras

# Bump when a saved config or checkpoint layout changes incompatibly; `from_pretrained` refuses others.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class MappingConfig:
    """z (+ projected text embedding, + optionally the camera) -> w, as StyleGAN2-ADA's conditional mapping."""

    z_dim: int = 512
    w_dim: int = 512
    embed_dim: int = 512  # width of the projected text (and camera) embedding, normalised before concat
    num_layers: int = 2  # EG3D's mapping depth (training/triplane.py: mapping_kwargs num_layers=2)
    lr_multiplier: float = 0.01  # StyleGAN2's mapping lr multiplier
    camera_cond: bool = False  # EG3D conditions w on the camera; optional here
    camera_swap_prob: float = 0.5  # EG3D's gpc_reg_prob: condition on a random other camera this often
    # Truncation pulls w towards the mean w of *this prompt* (over this many z), not StyleGAN2's global w_avg,
    # which for a conditional model would pull every prompt towards the average prompt.
    truncation_samples: int = 64
    # Map the standard normal z onto a Gaussian fitted to the anchored latents before the mapping network
    # (student/model/latent_prior.py); needs anchor.weight > 0. False = z is used as drawn (N(0, I)).
    latent_prior: bool = False


@dataclass(frozen=True)
class SynthesisConfig:
    """StyleGAN2 synthesis network producing three feature planes of `plane_channels` each."""

    plane_resolution: int = 256
    plane_channels: int = 32
    channel_base: int = 32768  # channels at resolution r: min(channel_base // r, channel_max), as StyleGAN2
    channel_max: int = 512


@dataclass(frozen=True)
class DecoderConfig:
    """Tri-plane feature -> density and features (EG3D's OSGDecoder)."""

    hidden: int = 64
    feature_channels: int = 32  # EG3D decodes 32 features; the first 3 are the raw RGB
    # sigma = density_scale * softplus(raw + density_shift); EG3D uses softplus(raw - 1). A smaller shift
    # with a larger scale starts training from a thin fog (docs/student.md §Differences from EG3D).
    density_scale: float = 1.0
    density_shift: float = -1.0
    colour_widen: float = 0.001  # EG3D's widened sigmoid: sigmoid(x) * (1 + 2e) - e
    # How the three planes' features meet: "mean" (EG3D) or "mean_product", the mean beside the per-channel
    # product (K-Planes' Hadamard product). A sum of three disks is the rounded-cube intersection of three
    # cylinders; a product of three Gaussians is a round ball (docs/student.md §Architecture).
    aggregate: str = "mean"

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"decoder.aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")


AGGREGATES = ("mean", "mean_product")  # DecoderConfig.aggregate
BACKGROUNDS = ("white", "shards", "learned")  # RenderConfig.background


@dataclass(frozen=True)
class RenderConfig:
    """Neural rendering of the low-resolution feature image.

    background: what empty space composites onto in the raw image (the other feature channels onto 1):
      "white"   pure white, as the procedural teacher draws (the default);
      "shards"  each training view's own background colour, recorded by the dump (`background.npy`); at
                generation `background_rgb`, the dataset's median, filled from the shards;
      "learned" one RGB colour the generator learns (initialised white).
    MVDream's views are near-white but not uniform, so "white" would be an assumption about them.
    """

    resolution: int = 64
    num_stratified: int = 48
    num_importance: int = 48
    background: str = "white"
    background_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class SuperResConfig:
    """StyleGAN2 blocks from the rendered feature image to the output resolution (2x per block)."""

    output_resolution: int = 256
    channel_base: int = 16384  # EG3D's 64->256 super-resolution: 128 channels at 128^2, 64 at 256^2
    channel_max: int = 128
    # Pixels of the rendered feature image repeated at each edge before super-resolving and cropped after, so
    # the convolutions' zero padding cannot draw a frame into the image (0 = EG3D's behaviour).
    edge_pad: int = 0
    # Where the rendered opacity (upsampled) is below this, the output fades to the background: empty space is
    # exactly background-coloured, as in the teacher views, while the object keeps the super-resolved detail.
    # 0 = off (EG3D: the super-resolved image is used as it is).
    background_gate: float = 0.0


@dataclass(frozen=True)
class CameraDefaults:
    """The teacher's camera distribution, stored so generation and evaluation reproduce it."""

    radius: float = DEFAULT_RADIUS
    fovy_deg: float = DEFAULT_FOVY_DEG
    num_views: int = 4
    resolution: int = 0  # teacher view resolution; 0 = read from the shards
    elevation_range: tuple[float, float] = (0.0, 30.0)

    def middle_orbit(
        self,
        num_views: int,
        azimuth_start_deg: float = 0.0,
        *,
        azimuth_step_deg: float | None = None,
        resolution: int = 64,
    ) -> Cameras:
        """`num_views` cameras around the object at the middle of the teacher's elevations, at its radius and fov:
        the fixed views that previews, evaluations and the default mapping camera look from. Evenly spaced in
        azimuth, or `azimuth_step_deg` apart."""
        elevation = sum(self.elevation_range) / 2
        return orbit_cameras(
            num_views, elevation, azimuth_start_deg, azimuth_step_deg=azimuth_step_deg, radius=self.radius,
            fovy_deg=self.fovy_deg, resolution=resolution,
        )  # fmt: skip


@dataclass(frozen=True)
class GeneratorConfig:
    text_encoder: str = ""  # "" = the encoder named in the shards
    text_dim: int = 0  # 0 = the dimension recorded in the shards
    mapping: MappingConfig = field(default_factory=MappingConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    superres: SuperResConfig = field(default_factory=SuperResConfig)
    camera: CameraDefaults = field(default_factory=CameraDefaults)


@dataclass(frozen=True)
class DiscriminatorConfig:
    channel_base: int = 32768
    channel_max: int = 512
    cmap_dim: int = 512  # width of the conditioning projection (StyleGAN2-ADA's cmap)
    mapping_layers: int = 2
    mbstd_group: int = 4  # StyleGAN2's minibatch-stddev group size
    # EG3D conditions D on the camera; it makes z carry per-seed pose (docs/student.md §Differences from EG3D).
    camera_cond: bool = True
    mapping_lr_multiplier: float = 0.01  # StyleGAN2-ADA's D mapping; larger lets the conditioning move in short runs
    # Also feed D each pixel's world ray direction as 3 input channels (needs camera_cond). The projection head
    # alone must learn cos(4 (yaw - azimuth))-like features to tell a cube that never turns from one that does;
    # with the rays beside the pixels, the convolutions can relate edges to world directions directly.
    ray_input: bool = False

    def __post_init__(self) -> None:
        if self.ray_input and not self.camera_cond:
            raise ValueError("discriminator.ray_input needs discriminator.camera_cond (the rays come from the camera)")


@dataclass(frozen=True)
class LossConfig:
    r1_gamma: float = 1.0  # EG3D uses 0.3-5 depending on the data set
    r1_interval: int = 16  # lazy R1 (StyleGAN2 §B)
    density_reg: float = 0.25  # EG3D's density smoothness L1 weight
    density_reg_interval: int = 4
    density_reg_points: int = 1000  # points per sample
    density_reg_eps: float = 0.008  # perturbation in world units (EG3D: 1/256 of its box; ours is 2 wide)
    mismatch_weight: float = 1.0  # (real image, wrong text) scored as fake
    # Mismatched texts: "random" = another sample's prompt; "nearest" = the in-batch prompt whose embedding is
    # closest (a hard negative, e.g. same shape in another colour) among those that differ.
    mismatch_pairing: str = "random"
    # Paired latents (MSGAN, Mao et al. 2019): samples 2j and 2j+1 share prompt and camera but not z, and G pays
    # pair_diversity * relu(pair_diversity_target - mean |image_2j - image_2j+1|). 0 = off.
    pair_diversity: float = 0.0
    pair_diversity_target: float = 0.05
    # What the pair difference is measured on: "image" (the final RGB) or "opacity" (the raw-resolution
    # silhouette: only shape, scale and pose move it, not shade or texture).
    pair_diversity_space: str = "image"

    def __post_init__(self) -> None:
        if self.mismatch_pairing not in ("random", "nearest"):
            raise ValueError(f"loss.mismatch_pairing must be 'random' or 'nearest', got {self.mismatch_pairing!r}")
        if self.pair_diversity_space not in ("image", "opacity"):
            raise ValueError(
                f"loss.pair_diversity_space must be 'image' or 'opacity', got {self.pair_diversity_space!r}"
            )
        if self.pair_diversity < 0 or self.pair_diversity_target < 0:
            raise ValueError(
                f"loss.pair_diversity and loss.pair_diversity_target must be >= 0, got "
                f"{self.pair_diversity}, {self.pair_diversity_target}"
            )


@dataclass(frozen=True)
class OptimConfig:
    batch_size: int = 32
    views_per_sample: int = 1  # teacher views of one sample rendered with the same z per step
    # Samples of one prompt per batch group (1 = batches drawn at random). With g > 1 a batch is B/g prompts, g
    # teacher seeds each, laid out so each of D's minibatch-stddev groups is one prompt: reals spread as the
    # teacher's seeds do, fakes as G's latents do, so D sees a prompt's collapsed variety (docs/student.md).
    prompt_group: int = 1
    lr_g: float = 0.0025
    lr_d: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    ema_kimg: float = 10.0  # StyleGAN2-ADA: EMA half-life in thousands of images
    ema_rampup: float = 0.05  # half-life at most this fraction of the images seen so far
    # fp32 | bf16 | fp16: autocast of the G and D forward passes; weights, R1 and the density regulariser stay
    # fp32, fp16 adds loss scaling (student/train/mixed_precision.py)
    precision: str = "fp32"


@dataclass(frozen=True)
class AnchorConfig:
    """Anchored latents (student/train/anchors.py, docs/student.md §Anchored latents): the even-position fakes
    take a latent tied to their teacher sample and pay `weight` * L1(render, the sample's view)."""

    weight: float = 0.0  # 0 = off
    # "encoder": z = E(another view of the sample, its camera); "code": a learned z per sample (GLO)
    latent: str = "encoder"
    lr: float = 0.002  # Adam lr of the encoder or of the codes
    channels: int = 128  # the encoder's widest layer
    resolution: int = 0  # the views the encoder reads are resized to this (a power of two); 0 = the output size
    # weight of KL(encoder's Gaussian || N(0, I)) per sample, summed over z's dims (a VAE's prior term; encoder only)
    kl: float = 0.001
    # weight of L1(anchored render's opacity, the teacher view's silhouette against its background)
    silhouette: float = 0.0
    # with mapping.latent_prior: the per-step decay of the prior's moving fit to the anchored latents
    prior_decay: float = 0.99

    def __post_init__(self) -> None:
        if not 0 <= self.prior_decay < 1:
            raise ValueError(f"anchor.prior_decay must be in [0, 1), got {self.prior_decay}")
        if self.latent not in ("encoder", "code"):
            raise ValueError(f"anchor.latent must be 'encoder' or 'code', got {self.latent!r}")
        if self.silhouette < 0:
            raise ValueError(f"anchor.silhouette must be >= 0, got {self.silhouette}")
        if self.weight < 0 or self.lr <= 0 or self.channels < 1 or self.kl < 0 or self.resolution < 0:
            raise ValueError(
                f"anchor.weight, anchor.kl and anchor.resolution must be >= 0, anchor.lr > 0 and anchor.channels >= 1, "
                f"got {self.weight}, {self.kl}, {self.resolution}, {self.lr}, {self.channels}"
            )


@dataclass(frozen=True)
class DataConfig:
    num_workers: int = 2  # loader processes per trainer worker
    # A sample that cannot be read stops training with one line naming it (False), or is skipped, counted in
    # stats.jsonl and reported at the end (True; `et3d-train --skip-corrupt`).
    skip_corrupt: bool = False


@dataclass(frozen=True)
class ScheduleConfig:
    steps: int = 0  # total optimisation steps; 0 = no limit
    minutes: float = 0.0  # total training wall-clock across resumes; 0 = no limit
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3  # older checkpoints of the run are deleted
    preview_every: int = 500
    eval_every: int = 500  # 0 = no periodic oracle evaluation


@dataclass(frozen=True)
class EvalConfig:
    train_prompts: int = 16  # fixed training prompts evaluated (the first ones, sorted)
    heldout_file: str = "data/prompts/heldout.txt"  # "" = no held-out evaluation
    seeds: int = 2  # z seeds per prompt
    preview_prompts: int = 4


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "paper"
    seed: int = 0
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready nested dict (tuples become lists)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Rebuild a config dataclass from `to_dict` output; unknown or missing keys raise with their path."""
    if not isinstance(data, dict):
        raise ValueError(f"config {where or cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"config {where or cls.__name__}: unknown keys {unknown}; known: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ValueError(f"config {where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and not isinstance(tp, types.GenericAlias) and not isinstance(value, tp):
        raise ValueError(f"config {where}: expected {tp.__name__}, got {value!r}")
    return value
