"""Presets, `--key=value` overrides and config round trips."""

from __future__ import annotations

import dataclasses

import pytest

from student.config import TrainConfig, from_dict, to_dict
from student.overrides import apply_overrides, flat_keys
from student.presets import PRESETS, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json_dicts(name):
    cfg = get_preset(name)
    assert cfg.preset == name
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


def test_paper_preset_is_eg3d_scale():
    g = get_preset("paper").generator
    assert (g.synthesis.plane_resolution, g.synthesis.plane_channels) == (256, 32)
    assert (g.render.resolution, g.render.num_stratified, g.render.num_importance) == (64, 48, 48)
    assert (g.superres.output_resolution, g.mapping.z_dim, g.mapping.w_dim) == (256, 512, 512)


def test_cpu_preset_renders_at_32_and_super_resolves_to_the_64px_views():
    g = get_preset("cpu").generator
    assert (g.render.resolution, g.superres.output_resolution) == (32, 64)


def test_overrides_parse_each_type_and_leave_the_original_untouched():
    base = get_preset("cpu")
    cfg = apply_overrides(
        base,
        ["--optim.lr_g=0.001", "--optim.batch_size=8", "--generator.mapping.camera_cond=true", "--optim.betas=0,0.9",
         "--eval.heldout_file=x.txt", "--schedule.minutes=2.5"],
    )  # fmt: skip
    assert cfg.optim.lr_g == 0.001 and cfg.optim.batch_size == 8 and cfg.generator.mapping.camera_cond is True
    assert cfg.optim.betas == (0.0, 0.9) and cfg.eval.heldout_file == "x.txt" and cfg.schedule.minutes == 2.5
    assert base.optim.lr_g == 0.0025 and base.generator.mapping.camera_cond is False


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--optim.lr_gg=1", r"unknown config key 'optim.lr_gg'; did you mean --optim.lr_g"),
        ("--generator.render=3", r"unknown config key 'generator.render'"),
        ("--optim.batch_size=eight", r"'optim.batch_size': cannot parse 'eight' as int"),
        ("--generator.mapping.camera_cond=maybe", r"cannot parse 'maybe' as bool"),
        ("--optim.betas=0.1", r"expected 2 comma-separated values"),
        ("--optim.lr_g", r"not of the form --key=value"),
    ],
)
def test_bad_overrides_are_rejected_with_a_clear_message(arg, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(get_preset("tiny"), [arg])


def test_every_leaf_field_is_an_override_key():
    keys = flat_keys(get_preset("tiny"))
    assert "generator.render.num_importance" in keys and "loss.r1_gamma" in keys and "schedule.minutes" in keys
    assert len(keys) == len(set(keys)) > 50


@pytest.mark.parametrize("source, target", [("cpu", "tiny"), ("paper", "cpu")])
def test_list_keys_output_turns_one_preset_into_another(source, target):
    # Every line `et3d-train --list-keys` prints is an override that applies: fed back, a preset's listing
    # rebuilds that preset exactly from any other.
    from typer.testing import CliRunner

    from student.train.cli import app

    result = CliRunner().invoke(app, ["--preset", source, "--list-keys"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.split()
    assert len(lines) == len(flat_keys(get_preset(source))) and all(line.startswith("--") for line in lines)
    assert apply_overrides(get_preset(target), lines) == get_preset(source)


def test_from_dict_rejects_unknown_and_mistyped_fields():
    data = to_dict(get_preset("tiny"))
    data["optim"]["momentum"] = 0.9
    with pytest.raises(ValueError, match=r"config optim: unknown keys \['momentum'\]"):
        from_dict(TrainConfig, data)
    data = to_dict(get_preset("tiny"))
    data["optim"]["batch_size"] = "4"
    with pytest.raises(ValueError, match=r"optim.batch_size: expected int"):
        from_dict(TrainConfig, data)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_preset("tiny").optim.lr_g = 1.0
