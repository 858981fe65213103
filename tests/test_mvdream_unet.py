"""The multi-view UNet: reference layout at full size, cross-view attention, config and input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from teacher_dump.mvdream.config import MultiViewUNetConfig
from teacher_dump.mvdream.loading import unet_from_state_dict
from teacher_dump.mvdream.unet import MultiViewUNet, timestep_embedding

GOLDEN = Path(__file__).resolve().parent / "golden"  # MVDream golden data, docs/mvdream.md §Golden data


@pytest.fixture(scope="module")
def tiny_unet() -> MultiViewUNet:
    config = MultiViewUNetConfig.from_json(GOLDEN / "tiny_unet.json")
    return unet_from_state_dict(config, load_file(GOLDEN / "tiny_unet.safetensors"))


@pytest.fixture(scope="module")
def cfg_case() -> dict[str, torch.Tensor]:
    io = load_file(GOLDEN / "tiny_unet_io.safetensors")
    return {k.removeprefix("cfg."): v for k, v in io.items() if k.startswith("cfg.")}


def test_full_size_layout_matches_reference_keys_and_shapes():
    config = MultiViewUNetConfig.from_json(GOLDEN / "layout" / "unet_config.json")
    with torch.device("meta"):  # 867 M parameters: shapes only
        unet = MultiViewUNet(config)
    rows = (GOLDEN / "layout" / "unet_keys.tsv").read_text().splitlines()[1:]
    expected = {key: json.loads(shape) for key, shape in (row.split("\t") for row in rows)}
    got = {key: list(t.shape) for key, t in unet.state_dict().items()}
    assert got == expected
    checks = json.loads((GOLDEN / "layout" / "checks.json").read_text())
    assert sum(p.numel() for p in unet.parameters()) == checks["unet_n_params"] == 867_572_164
    assert len(got) == checks["unet_n_tensors"] == 690


def test_views_of_one_object_attend_to_each_other_and_only_to_each_other(tiny_unet, cfg_case):
    c = cfg_case  # 2 objects x 4 views
    with torch.no_grad():
        base = tiny_unet(c["x"], c["timesteps"], c["context"], c["camera"], 4)
        x = c["x"].clone()
        x[0] += 1.0
        moved = (tiny_unet(x, c["timesteps"], c["context"], c["camera"], 4) - base).abs().amax(dim=(1, 2, 3))
        per_view = tiny_unet(c["x"], c["timesteps"], c["context"], c["camera"], 1)
    assert moved[0] > 0.5
    assert moved[1:4].min() > 1e-3  # the other views of object 0 see view 0
    assert moved[4:].max() == 0.0  # object 1 is untouched
    assert (per_view - base).abs().max() > 1e-3  # num_frames=1 removes the cross-view attention


def test_camera_changes_the_output(tiny_unet, cfg_case):
    c = cfg_case
    with torch.no_grad():
        base = tiny_unet(c["x"], c["timesteps"], c["context"], c["camera"], 4)
        swapped = c["camera"][[0, 3, 2, 1, 4, 5, 6, 7]]
        diff = (tiny_unet(c["x"], c["timesteps"], c["context"], swapped, 4) - base).abs().amax(dim=(1, 2, 3))
    assert diff[1] > 1e-2 and diff[3] > 1e-2
    assert diff[4:].max() == 0.0


def test_timestep_embedding_is_cos_first():
    emb = timestep_embedding(torch.tensor([0.0, 981.0]), 8)
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(4) / 4)
    torch.testing.assert_close(emb[1, :4], torch.cos(981.0 * freqs))


def test_bfloat16_forward_tracks_float32(tiny_unet, cfg_case):
    c = cfg_case
    with torch.no_grad():
        ref = tiny_unet(c["x"], c["timesteps"], c["context"], c["camera"], 4)
        low = MultiViewUNet(tiny_unet.config)
        low.load_state_dict(tiny_unet.state_dict())
        out = low.to(torch.bfloat16)(c["x"], c["timesteps"], c["context"], c["camera"], 4)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"use_scale_shift_norm": True}, "unsupported UNet config values {'use_scale_shift_norm': True}"),
        ({"num_heads": 8}, "unsupported UNet config values {'num_heads': 8}"),
        ({"bogus": 1}, "unknown UNet config keys ['bogus']"),
        ({"attention_resolutions": [1, 4]}, "name downsampling factors [4] that no level has"),
        ({"model_channels": 48}, "channel width 48 is not a multiple of the 32 GroupNorm groups"),
        ({"num_head_channels": 24}, "attention width 32 is not a multiple of num_head_channels 24"),
        ({"context_dim": 0}, "{'context_dim': 0}"),
    ],
)
def test_config_errors_name_the_bad_value(change, message):
    raw = json.loads((GOLDEN / "tiny_unet.json").read_text())
    with pytest.raises(ValueError) as err:
        MultiViewUNetConfig.from_dict({**raw, **change})
    assert message in str(err.value)


def test_config_lists_missing_keys_and_round_trips():
    raw = json.loads((GOLDEN / "tiny_unet.json").read_text())
    config = MultiViewUNetConfig.from_dict(raw)
    assert MultiViewUNetConfig.from_dict(config.to_dict()) == config
    assert config.attention_channels == [32, 64] and config.downsampling_factor == 2
    del raw["model_channels"], raw["context_dim"]
    with pytest.raises(ValueError, match=r"lacks required keys \['context_dim', 'model_channels'\]"):
        MultiViewUNetConfig.from_dict(raw)
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        MultiViewUNetConfig.from_json(GOLDEN / "nowhere.json")


@pytest.mark.parametrize(
    ("num_frames", "shape_change", "message"),
    [
        (3, {}, "num_frames 3 does not divide the batch of 8 views"),
        (4, {"x": (8, 4, 15, 16)}, "latent size (15, 16) is not a multiple of 2"),
        (4, {"context": (8, 77, 16)}, "'context': (8, 77, 16)"),
        (4, {"camera": (8, 12)}, "'camera': (8, 12)"),
        (4, {"timesteps": (4,)}, "'timesteps': (4,)"),
    ],
)
def test_forward_rejects_bad_inputs(tiny_unet, cfg_case, num_frames, shape_change, message):
    inputs = {k: torch.zeros(shape_change.get(k, tuple(v.shape))) for k, v in cfg_case.items() if k != "out"}
    with pytest.raises(ValueError) as err:
        tiny_unet(inputs["x"], inputs["timesteps"], inputs["context"], inputs["camera"], num_frames)
    assert message in str(err.value)
