"""Weight files: the ldm -> diffusers VAE map, strict loading, the original checkpoint's groups, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from teacher_dump.mvdream.config import MultiViewUNetConfig
from teacher_dump.mvdream.original_config import MVDREAM_DDIM, SD21_4VIEW_UNET, SD21_VAE
from teacher_dump.mvdream.vae_convert import convert_ldm_vae
from teacher_dump.mvdream.weights import (
    SCHEDULE_BUFFERS,
    load_strict,
    read_state_dict,
    split_original_checkpoint,
)

GOLDEN = Path(__file__).resolve().parent / "golden"  # MVDream golden data, docs/mvdream.md §Golden data


def _tsv(name: str) -> list[list[str]]:
    return [row.split("\t") for row in (GOLDEN / "layout" / name).read_text().splitlines()[1:]]


def test_vae_converter_reproduces_the_reference_key_map_with_shapes():
    rows = _tsv("vae_key_map.tsv")
    assert len(rows) == 248
    ldm = {
        orig.removeprefix("first_stage_model."): torch.empty(json.loads(shape), device="meta")
        for orig, _, shape, _ in rows
    }
    converted = {key: list(t.shape) for key, t in convert_ldm_vae(ldm).items()}
    assert converted == {new: json.loads(shape) for _, new, _, shape in rows}


def test_vae_converter_names_foreign_keys():
    ldm = {"encoder.down.0.block.0.norm1.weight": torch.zeros(4), "encoder.mid.attn_2.q.weight": torch.zeros(4)}
    with pytest.raises(ValueError, match=r"not part of an ldm VAE 1: encoder\.mid\.attn_2\.q\.weight"):
        convert_ldm_vae(ldm)
    with pytest.raises(ValueError, match="no encoder.down"):
        convert_ldm_vae({"decoder.conv_in.weight": torch.zeros(4)})


def test_single_file_defaults_are_the_published_configs():
    assert MultiViewUNetConfig.from_json(GOLDEN / "layout" / "unet_config.json") == SD21_4VIEW_UNET
    vae = json.loads((GOLDEN / "layout" / "vae_config.json").read_text())
    assert all(vae[k] == v for k, v in SD21_VAE.items())
    ddim = json.loads((GOLDEN / "layout" / "scheduler_config.json").read_text())
    assert all(ddim[k] == v for k, v in MVDREAM_DDIM.items())


def test_original_checkpoint_groups_match_the_reference_key_list():
    keys = [row[0] for row in _tsv("original_ckpt_keys.tsv")]
    sd = {k: torch.empty(0, device="meta") for k in keys}
    sd["cond_stage_model.model.token_embedding.weight"] = torch.empty(0, device="meta")
    parts = split_original_checkpoint(sd)
    assert (len(parts.unet), len(parts.vae)) == (690, 248)
    assert "camera_embed.0.weight" in parts.unet and "encoder.mid.attn_1.q.weight" in parts.vae
    assert set(keys) - {f"model.diffusion_model.{k}" for k in parts.unet} - {
        f"first_stage_model.{k}" for k in parts.vae
    } == set(SCHEDULE_BUFFERS)


def test_original_checkpoint_errors_name_the_keys():
    unet = {"model.diffusion_model.out.2.bias": torch.zeros(1)}
    vae = {"first_stage_model.quant_conv.bias": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected keys .* 2: model_ema\.decay, something"):
        split_original_checkpoint({**unet, **vae, "something": torch.zeros(1), "model_ema.decay": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"no model\.diffusion_model\.\* keys"):
        split_original_checkpoint({"out.2.bias": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"no first_stage_model\.\* keys"):
        split_original_checkpoint(unet)


def test_strict_loading_lists_missing_unexpected_and_misshapen_keys():
    module = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    sd = {k: v.clone() for k, v in module.state_dict().items()}
    sd["9.weight"] = sd.pop("1.weight")
    sd["0.bias"] = torch.zeros(5)
    with pytest.raises(ValueError) as err:
        load_strict(module, sd, "UNet")
    msg = str(err.value)
    assert "UNet state dict does not match the model" in msg
    assert "missing keys 1: 1.weight" in msg
    assert "unexpected keys 1: 9.weight" in msg
    assert "shape mismatches (file vs model) 1: 0.bias (5,) vs (3,)" in msg


def test_strict_loading_copies_every_tensor():
    module = torch.nn.Linear(2, 3)
    sd = {"weight": torch.arange(6.0).reshape(3, 2).half(), "bias": torch.ones(3)}
    load_strict(module, sd, "x")
    assert module.weight.dtype == torch.float32
    assert module.weight.sum().item() == 15.0 and module.bias.sum().item() == 3.0


def test_read_state_dict_reads_safetensors_and_weights_only_pickles(tmp_path):
    sd = {"a": torch.arange(3.0)}
    save_file(sd, tmp_path / "w.safetensors")
    torch.save(sd, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        torch.testing.assert_close(read_state_dict(tmp_path / name)["a"], sd["a"])


def test_read_state_dict_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        read_state_dict(tmp_path / "missing.ckpt")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported weights file type 'w.npz'"):
        read_state_dict(tmp_path / "w.npz")
    torch.save({"state_dict": {"a": torch.zeros(1)}}, tmp_path / "wrapped.pt")
    with pytest.raises(ValueError, match=r"not a flat state dict of tensors \(found \['dict'\]\)"):
        read_state_dict(tmp_path / "wrapped.pt")
    torch.save({"a": torch.zeros(1), "f": MultiViewUNetConfig}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="cannot read .*code.pt as a weights-only torch checkpoint"):
        read_state_dict(tmp_path / "code.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="cut.pt"):
        read_state_dict(tmp_path / "cut.pt")
