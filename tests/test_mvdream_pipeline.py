"""MVDreamPipeline on the golden tiny folder: reference prompt encoding and CFG batch, batching,
seeds, the reported cameras, and loading / argument errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from pipeline.cameras import DEFAULT_FOVY_DEG, DEFAULT_RADIUS, mvdream_camera_matrices
from teacher_dump.mvdream.parity import assemble_tiny_folder
from teacher_dump.mvdream.pipeline import MVDreamPipeline, parse_dtype

GOLDEN = Path(__file__).resolve().parent / "golden"  # MVDream golden data, docs/mvdream.md §Golden data
RES = 64  # tiny VAE: 4 levels -> factor 8; tiny UNet: 2 levels -> latent side multiple of 2


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return assemble_tiny_folder(GOLDEN, tmp_path_factory.mktemp("mvdream") / "tiny")


@pytest.fixture(scope="module")
def pipe(folder) -> MVDreamPipeline:
    return MVDreamPipeline.from_pretrained(folder)


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_file(GOLDEN / "tiny_pipeline_io.safetensors")


def _run(pipe: MVDreamPipeline, prompts: list[str], seeds: list[int], **kwargs):
    kwargs = {"num_inference_steps": 2, "guidance_scale": 5.0, "resolution": RES, **kwargs}
    return pipe(prompts, [torch.Generator().manual_seed(s) for s in seeds], **kwargs)


def test_prompt_encoding_matches_reference(pipe, io):
    ids = pipe.tokenizer(["a cute owl", ""], padding="max_length", max_length=77, truncation=True).input_ids
    assert ids[0] == io["prompt_input_ids"][0].tolist() and ids[1] == io["negative_input_ids"][0].tolist()
    torch.testing.assert_close(pipe.encode_prompt(["a cute owl"]), io["prompt_embeds"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pipe.encode_prompt([""]), io["negative_prompt_embeds"], atol=1e-5, rtol=1e-5)


def test_unet_sees_the_reference_cfg_batch_and_timesteps(pipe, io):
    calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda _, args: calls.append(list(args)))
    try:
        out = pipe(
            ["a cute owl"],
            latents=io["latents_init"][None],
            num_inference_steps=4,
            guidance_scale=5.0,
            elevation=15.0,
            resolution=RES,
        )
    finally:
        hook.remove()
    assert [float(c[1][0]) for c in calls] == io["timesteps"].tolist() == [751.0, 501.0, 251.0, 1.0]
    x, timesteps, context, camera, num_frames = calls[0]
    assert num_frames == 4
    torch.testing.assert_close(x, io["step0.x"])
    torch.testing.assert_close(timesteps, io["step0.timesteps"])
    torch.testing.assert_close(context, io["step0.context"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(camera, io["step0.camera"], atol=1e-6, rtol=0)
    torch.testing.assert_close(out.latents[0], io["latents_final"], atol=1e-4, rtol=1e-4)
    assert out.images.shape == (1, 4, RES, RES, 3) and out.prompt_embeds.shape == (1, 77, 32)


def test_generator_noise_is_plain_randn_of_the_seed(pipe):
    a = _run(pipe, ["a cute owl"], [7])
    noise = torch.randn((1, 4, 4, RES // 8, RES // 8), generator=torch.Generator().manual_seed(7))
    b = pipe(["a cute owl"], latents=noise, num_inference_steps=2, guidance_scale=5.0, resolution=RES)
    assert torch.equal(a.images, b.images)
    c = _run(pipe, ["a cute owl"], [8])
    assert (a.images - c.images).abs().max() > 0.05


def test_a_batch_equals_its_samples_run_alone(pipe):
    both = _run(pipe, ["a cute owl", "a red car"], [1, 2], elevation=[0.0, 30.0], azimuth_start=[0.0, 256.2])
    for i, (prompt, seed, elev, azim) in enumerate([("a cute owl", 1, 0.0, 0.0), ("a red car", 2, 30.0, 256.2)]):
        alone = _run(pipe, [prompt], [seed], elevation=elev, azimuth_start=azim)
        torch.testing.assert_close(both.images[i], alone.images[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(both.cameras[i], alone.cameras[0])
    assert (both.images[0] - both.images[1]).abs().max() > 0.05


def test_cameras_are_mvdreams_at_the_render_radius(pipe):
    # Start 256.2 makes the reference arange return a 5th, wrap-around azimuth; 4 views come back.
    out = _run(pipe, ["a cute owl"], [0], elevation=15.0, azimuth_start=256.2, num_inference_steps=1)
    expected = mvdream_camera_matrices(4, 15.0, 256.2)[:4]
    assert mvdream_camera_matrices(4, 15.0, 256.2).shape[0] == 5
    expected[:, :3, 3] *= DEFAULT_RADIUS
    np.testing.assert_allclose(out.cameras[0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(out.cameras[0, :, :3, 3].norm(dim=-1).numpy(), [DEFAULT_RADIUS] * 4, rtol=1e-6)
    assert out.fovy.tolist() == [[DEFAULT_FOVY_DEG] * 4]
    views = out.views_uint8()
    assert views.dtype == np.uint8 and views.shape == (1, 4, RES, RES, 3)
    assert np.array_equal(views, (out.images * 255).round().numpy().astype(np.uint8))


def test_views_and_resolution_are_free_parameters(pipe):
    out = _run(pipe, ["a cute owl"], [3], num_views=2, resolution=32, num_inference_steps=1)
    assert out.images.shape == (1, 2, 32, 32, 3) and out.latents.shape == (1, 2, 4, 4, 4)


def test_dpm_solver_runs_deterministically_with_one_unet_call_per_step(pipe):
    calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda _, args: calls.append(float(args[1][0])))
    try:
        a = _run(pipe, ["a cute owl", "a red car"], [1, 2], scheduler="dpm++", num_inference_steps=5)
    finally:
        hook.remove()
    assert len(calls) == 5 and calls == sorted(calls, reverse=True) and len(set(calls)) == 5, calls
    assert a.images.shape == (2, 4, RES, RES, 3) and a.latents.shape == (2, 4, 4, RES // 8, RES // 8)
    assert torch.isfinite(a.latents).all() and a.images.min() >= 0 and a.images.max() <= 1
    b = _run(pipe, ["a cute owl", "a red car"], [1, 2], scheduler="dpm++", num_inference_steps=5)
    assert torch.equal(a.images, b.images) and torch.equal(a.latents, b.latents)
    alone = _run(pipe, ["a red car"], [2], scheduler="dpm++", num_inference_steps=5)
    torch.testing.assert_close(a.images[1], alone.images[0], atol=1e-5, rtol=1e-5)
    ddim = _run(pipe, ["a cute owl", "a red car"], [1, 2], num_inference_steps=5)
    assert (a.latents - ddim.latents).abs().mean() > 1e-3, "dpm++ must not silently fall back to DDIM"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheduler": "euler"}, "unknown scheduler 'euler'; accepted: ddim, dpm++"),
        ({"resolution": 60}, "resolution 60 must be a positive multiple of 16"),
        ({"num_views": 0}, "num_views must be >= 1, got 0"),
        ({"num_inference_steps": 0}, "num_inference_steps must be in [1, 1000], got 0"),
        ({"elevation": [0.0, 1.0]}, "elevation needs one value or one per prompt (1), got 2"),
        ({"seeds": [1, 2]}, "need one rng per prompt (1), got 2"),
        ({"prompts": "a cute owl"}, "prompts must be a non-empty list of strings"),
        ({"latents": torch.zeros(1, 4, 4, 8, 8)}, "pass exactly one of rngs"),
    ],
)
def test_call_errors_name_the_bad_value(pipe, kwargs, message):
    prompts, seeds = kwargs.pop("prompts", ["a cute owl"]), kwargs.pop("seeds", [0])
    with pytest.raises(ValueError) as err:
        _run(pipe, prompts, seeds, **kwargs)
    assert message in str(err.value)


def test_latents_of_the_wrong_shape_are_rejected(pipe):
    with pytest.raises(ValueError, match=r"latents must be \(B, V, C, h, w\) = \(1, 4, 4, 8, 8\), got \(4, 4, 8, 8\)"):
        pipe(["a cute owl"], latents=torch.zeros(4, 4, 8, 8), resolution=RES)


def test_dtype_parsing_and_cpu_float16(folder):
    assert parse_dtype("fp16") == torch.float16 and parse_dtype(torch.bfloat16) == torch.bfloat16
    with pytest.raises(ValueError, match="unsupported dtype 'int8'"):
        parse_dtype("int8")
    with pytest.raises(ValueError, match="float16 needs a CUDA device, got cpu"):
        MVDreamPipeline.from_pretrained(folder, dtype="float16")


def test_loading_errors_name_the_path(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="MVDream folder not found: .*nowhere"):
        MVDreamPipeline.from_pretrained(tmp_path / "nowhere")

    other = shutil.copytree(folder, tmp_path / "sd")
    index = json.loads((other / "model_index.json").read_text())
    (other / "model_index.json").write_text(
        json.dumps({**index, "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})
    )
    with pytest.raises(ValueError, match="holds a 'StableDiffusionPipeline' with unet 'UNet2DConditionModel'"):
        MVDreamPipeline.from_pretrained(other)

    broken = shutil.copytree(folder, tmp_path / "broken")
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no unet weights in .*broken/unet: expected one of"):
        MVDreamPipeline.from_pretrained(broken)
    no_tokenizer = shutil.copytree(folder, tmp_path / "no_tokenizer")
    shutil.rmtree(no_tokenizer / "tokenizer")
    with pytest.raises(FileNotFoundError, match="tokenizer folder not found: .*no_tokenizer/tokenizer"):
        MVDreamPipeline.from_pretrained(no_tokenizer)


def test_unet_weights_with_wrong_keys_are_listed(folder, tmp_path):
    bad = shutil.copytree(folder, tmp_path / "bad")
    sd = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    sd["camera_embed.9.weight"] = sd.pop("camera_embed.2.weight")
    save_file(sd, bad / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(ValueError) as err:
        MVDreamPipeline.from_pretrained(bad)
    assert "missing keys 1: camera_embed.2.weight; unexpected keys 1: camera_embed.9.weight" in str(err.value)

    scheduler = bad / "scheduler" / "scheduler_config.json"
    scheduler.write_text(json.dumps({"_class_name": "EulerDiscreteScheduler"}))
    shutil.copy(folder / "unet" / "diffusion_pytorch_model.safetensors", bad / "unet")
    with pytest.raises(ValueError, match="configures a 'EulerDiscreteScheduler'; MVDream samples with DDIMScheduler"):
        MVDreamPipeline.from_pretrained(bad)
