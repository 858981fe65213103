"""The original single-file checkpoint path loads the same weights as the diffusers folder and gives
identical outputs: every UNet key under ``model.diffusion_model.``, a real tiny VAE under its ldm
names in ``first_stage_model.``, plus the OpenCLIP and schedule keys a real file carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from teacher_dump.mvdream.parity import assemble_tiny_folder
from teacher_dump.mvdream.pipeline import MVDreamPipeline
from teacher_dump.mvdream.weights import SCHEDULE_BUFFERS
from teacher_dump.teachers.base import build_teacher

GOLDEN = Path(__file__).resolve().parent / "golden"  # MVDream golden data, docs/mvdream.md §Golden data


def _to_ldm_vae(vae: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers-named VAE -> ldm names through the reference's own key map (not the project's converter)."""
    rows = [row.split("\t") for row in (GOLDEN / "layout" / "vae_key_map.tsv").read_text().splitlines()[1:]]
    to_ldm = {new: (orig, len(json.loads(shape))) for orig, new, shape, _ in rows}
    out = {}
    for key, value in vae.items():
        orig, ndim = to_ldm[key]
        out[orig] = value.reshape(*value.shape, *[1] * (ndim - value.ndim))  # linear -> 1x1 conv
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("single")
    folder = assemble_tiny_folder(GOLDEN, root / "tiny")
    rng = torch.Generator().manual_seed(0)
    checkpoint = {f"model.diffusion_model.{k}": v for k, v in load_file(GOLDEN / "tiny_unet.safetensors").items()}
    vae = _to_ldm_vae(load_file(folder / "vae" / "diffusion_pytorch_model.safetensors"))
    assert len(vae) == 176 and all(k.startswith("first_stage_model.") for k in vae)
    checkpoint |= vae
    checkpoint |= {
        "cond_stage_model.model.token_embedding.weight": torch.randn(520, 32, generator=rng),
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": torch.randn(96, 32, generator=rng),
        "cond_stage_model.model.logit_scale": torch.ones(()),
    }
    checkpoint |= {name: torch.rand(1000, generator=rng) for name in SCHEDULE_BUFFERS}
    torch.save(checkpoint, root / "tiny-4view.pt")
    save_file(checkpoint, root / "tiny-4view.safetensors")
    return {"folder": folder, "pt": root / "tiny-4view.pt", "safetensors": root / "tiny-4view.safetensors"}


def _single(files: dict[str, Path], kind: str) -> MVDreamPipeline:
    return MVDreamPipeline.from_single_file(
        files[kind],
        files["folder"],
        unet_config=GOLDEN / "tiny_unet.json",
        vae_config=files["folder"] / "vae" / "config.json",
    )


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_single_file_loads_the_folders_weights_and_outputs(files, kind):
    folder_pipe = MVDreamPipeline.from_pretrained(files["folder"])
    single = _single(files, kind)
    for name in ("unet", "vae"):
        a, b = getattr(folder_pipe, name).state_dict(), getattr(single, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    noise = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    kwargs = {"latents": noise, "num_inference_steps": 2, "guidance_scale": 5.0, "elevation": 15.0, "resolution": 64}
    want, got = folder_pipe(["a cute owl"], **kwargs), single(["a cute owl"], **kwargs)
    assert torch.equal(want.images, got.images) and torch.equal(want.latents, got.latents)
    assert want.images.std() > 0.01


def test_single_file_teacher_matches_the_folder_teacher(files):
    settings = {"resolution": 64, "num_inference_steps": 2, "device": "cpu"}
    from_folder = build_teacher("mvdream", path=files["folder"], **settings)
    from_file = build_teacher(
        "mvdream",
        path=files["pt"],
        text_encoder_path=files["folder"],
        unet_config=GOLDEN / "tiny_unet.json",
        vae_config=files["folder"] / "vae" / "config.json",
        **settings,
    )
    a, b = from_folder.generate(["a cute owl"], [5]), from_file.generate(["a cute owl"], [5])
    assert (a.views == b.views).all() and (a.cameras == b.cameras).all()
    assert from_file.config()["model"] == "tiny-4view.pt"
    assert from_file.config()["weights_fingerprint"] != from_folder.config()["weights_fingerprint"]


def test_single_file_errors(files, tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found: .*missing.ckpt"):
        MVDreamPipeline.from_single_file(tmp_path / "missing.ckpt", files["folder"])
    with pytest.raises(FileNotFoundError, match="text-encoder folder not found: .*no_text"):
        _single({**files, "folder": tmp_path / "no_text"}, "pt")
    sd = load_file(files["safetensors"])
    del sd["model.diffusion_model.out.2.bias"]
    save_file(sd, tmp_path / "cut.safetensors")
    with pytest.raises(ValueError, match="UNet state dict does not match the model: missing keys 1: out.2.bias"):
        _single({**files, "cut": tmp_path / "cut.safetensors"}, "cut")
    sd = load_file(files["safetensors"])
    sd["first_stage_model.decoder.up.0.extra.weight"] = torch.zeros(1)
    save_file(sd, tmp_path / "extra.safetensors")
    with pytest.raises(ValueError, match=r"not part of an ldm VAE 1: decoder\.up\.0\.extra\.weight"):
        _single({**files, "extra": tmp_path / "extra.safetensors"}, "extra")
    with pytest.raises(ValueError, match=r"shape mismatches .* camera_embed\.0\.weight"):
        MVDreamPipeline.from_single_file(files["pt"], files["folder"])  # published sizes vs the tiny file
