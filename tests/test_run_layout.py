"""The run folder and checkpoint layout (`student/run_layout.py`): names, the newest checkpoint, bad checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from student import run_layout
from student.eval.inputs import describe_checkpoint
from student.model.discriminator import Discriminator
from student.model.generator import TriplaneGenerator
from student.presets import tiny
from student.run_layout import CheckpointLayoutError, RunDir
from student.train.batch_stream import DataPosition
from student.train.state import Progress, load_checkpoint, read_run_config, save_checkpoint


def test_one_step_pattern_names_and_parses_every_step():
    assert run_layout.step_name(600) == "step-00000600"
    for step in (0, 7, 12_345_678, 123_456_789):  # past 8 digits the name grows and still parses
        assert run_layout.parse_step(run_layout.step_name(step)) == step
    for name in ("step-600", "step-0000060a", "step-00000600.png", ".tmp-step-00000600.x1", "00000600"):
        assert run_layout.parse_step(name) is None, name
    with pytest.raises(ValueError, match=r"^a step is >= 0, got -1$"):
        run_layout.step_name(-1)
    run = RunDir(Path("runs/train/00002-cpu"))
    assert run.checkpoint(600) == Path("runs/train/00002-cpu/checkpoints/step-00000600")
    assert run.preview(600) == Path("runs/train/00002-cpu/previews/step-00000600.png")
    assert (run.stats.name, run.config.name) == ("stats.jsonl", "config.json")
    assert run.preview_index == Path("runs/train/00002-cpu/previews/prompts.txt")


def fake_checkpoint(folder: Path, weights: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / run_layout.MODEL_CONFIG).write_text("{}")
    if weights:
        save_file({"w": torch.zeros(2)}, str(folder / run_layout.MODEL_WEIGHTS))
    return folder


def test_the_newest_checkpoint_is_the_last_complete_step_of_the_highest_numbered_run(tmp_path):
    root = tmp_path / "runs"
    assert run_layout.find_latest_checkpoint(root) is None
    with pytest.raises(CheckpointLayoutError, match=r"^no checkpoint found under .*; train one with `make train`"):
        run_layout.resolve_checkpoint(None, root)
    for step in (5, 10):
        fake_checkpoint(RunDir(root / "00000-cpu").checkpoint(step))
    fake_checkpoint(RunDir(root / "00001-tiny").checkpoint(3))
    fake_checkpoint(RunDir(root / "00001-tiny").checkpoint(40), weights=False)  # partial: no weights
    fake_checkpoint(root / "00002-cpu" / "checkpoints" / ".tmp-step-00000050.abc")  # a crashed atomic write
    (root / "notes").mkdir()
    assert [(n, p) for n, p, _ in run_layout.run_dirs(root)] == [(0, "cpu"), (1, "tiny"), (2, "cpu")]
    assert [s for s, _ in run_layout.run_checkpoints(root / "00001-tiny")] == [3]
    assert run_layout.run_checkpoints(root / "00002-cpu") == []
    assert run_layout.find_latest_checkpoint(root) == RunDir(root / "00001-tiny").checkpoint(3)
    assert run_layout.find_latest_checkpoint(root, "cpu") == RunDir(root / "00000-cpu").checkpoint(10)
    assert run_layout.find_latest_checkpoint(root, "paper") is None
    # A user may point at the runs root or at one run; a checkpoint folder is taken as given.
    assert run_layout.resolve_checkpoint(root) == RunDir(root / "00001-tiny").checkpoint(3)
    assert run_layout.resolve_checkpoint(root / "00000-cpu") == RunDir(root / "00000-cpu").checkpoint(10)
    given = RunDir(root / "00000-cpu").checkpoint(5)
    assert run_layout.resolve_checkpoint(given) == given
    assert run_layout.next_run_dir(root, "tiny") == root / "00003-tiny"
    assert run_layout.next_run_dir(tmp_path / "none", "cpu") == tmp_path / "none" / "00000-cpu"
    assert run_layout.run_of_checkpoint(given) == RunDir(root / "00000-cpu")
    assert run_layout.run_of_checkpoint(tmp_path / "exported") is None
    assert run_layout.run_dir_for(given) == root / "00000-cpu"
    assert run_layout.run_dir_for(tmp_path / "exported") == tmp_path / "exported"
    assert run_layout.checkpoint_step(given) == (5, None)  # no trainer state: the step its name spells


@pytest.fixture(scope="module")
def trained_parts():
    cfg = tiny()
    gen = dataclasses.replace(cfg.generator, text_encoder="onehot-test", text_dim=16)
    cfg = dataclasses.replace(cfg, generator=gen)
    init_rng = torch.Generator().manual_seed(0)
    G = TriplaneGenerator(gen, rng=init_rng)  # noqa: N806 - the GAN literature's name
    D = Discriminator(cfg.discriminator, gen.superres.output_resolution, gen.text_dim, rng=init_rng)  # noqa: N806
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
    for opt, module in ((opt_g, G), (opt_d, D)):  # one step, so that Adam has state to save
        for p in module.parameters():
            p.grad = torch.ones_like(p)
        opt.step()
    return cfg, G, D, opt_g, opt_d


def test_a_run_folder_round_trips_through_save_find_check_and_load(tmp_path, trained_parts):
    cfg, G, D, opt_g, opt_d = trained_parts  # noqa: N806
    run = RunDir(run_layout.next_run_dir(tmp_path, "tiny"))
    progress = Progress(step=4, nimg=32, elapsed_s=12.5, cpu_s=20.0, data=DataPosition(1, 2))
    path = save_checkpoint(
        run.checkpoint(4), G=G, G_ema=G, D=D, opt_g=opt_g, opt_d=opt_d, progress=progress, run_config=cfg
    )
    assert sorted(p.name for p in path.iterdir()) == sorted(
        [run_layout.MODEL_CONFIG, run_layout.MODEL_WEIGHTS, run_layout.TRAIN_STATE, run_layout.TRAIN_META,
         run_layout.CHECKPOINT_RUN_CONFIG]
    )  # fmt: skip
    assert (
        run_layout.find_latest_checkpoint(tmp_path, "tiny") == path == tmp_path / "00000-tiny/checkpoints/step-00000004"
    )
    run_layout.check_training_files(path)
    assert run_layout.checkpoint_step(path) == (4, 12.5)
    assert read_run_config(path)["preset"] == "tiny"
    info = describe_checkpoint(path)
    assert (info.run_name, info.step, info.train_seconds, info.stats_path) == ("00000-tiny", 4, 12.5, run.stats)
    G2 = TriplaneGenerator(cfg.generator)  # noqa: N806
    D2 = Discriminator(cfg.discriminator, 16, 16, rng=torch.Generator().manual_seed(1))  # noqa: N806
    o_g, o_d = torch.optim.Adam(G2.parameters()), torch.optim.Adam(D2.parameters())
    restored = load_checkpoint(path, G=G2, G_ema=TriplaneGenerator(cfg.generator), D=D2, opt_g=o_g, opt_d=o_d)
    assert restored == progress
    trained = run_layout.read_trained_generator_state(path)
    assert trained.keys() == G.state_dict().keys()
    assert all(torch.equal(trained[k], v) for k, v in G.state_dict().items())
    assert run_layout.read_trained_generator_state(G.save_pretrained(tmp_path / "exported")) is None
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values(), strict=True))
    assert torch.equal(o_d.state_dict()["state"][0]["exp_avg"], opt_d.state_dict()["state"][0]["exp_avg"])


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: None, None),
        (lambda d: (d / "train_state.json").unlink(), r"is not a training checkpoint directory \(no train_state.json in it\)$"),
        (lambda d: (d / "train_config.json").unlink(), r"is not a training checkpoint directory \(no train_config.json in it\)$"),
        (lambda d: (d / "model.safetensors").unlink(), r"is not a training checkpoint directory \(no model.safetensors in it\)$"),
        (lambda d: (d / "train_state.json").write_text("{step"), r"train_state.json: not readable JSON \("),
        (lambda d: (d / "train_config.json").write_text("[1]"), r"train_config.json: expected a JSON object, got list$"),
        (lambda d: _truncate(d / "train_state.safetensors"), r"train_state.safetensors: not a valid safetensors file \("),
        (lambda d: _truncate(d / "model.safetensors"), r"model.safetensors: not a valid safetensors file \("),
        (lambda d: (d / "train_state.json").write_text('{"step": "four"}'), r"train_state.json: unreadable training state"),
    ],
    ids=["intact", "no-meta", "no-run-config", "no-weights", "meta-json", "config-list", "state-cut", "weights-cut",
         "meta-step"],
)  # fmt: skip
def test_a_bad_or_partial_checkpoint_is_refused_naming_the_file(tmp_path, trained_parts, damage, message):
    cfg, G, D, opt_g, opt_d = trained_parts  # noqa: N806
    path = save_checkpoint(
        tmp_path / "step-00000004", G=G, G_ema=G, D=D, opt_g=opt_g, opt_d=opt_d, progress=Progress(4), run_config=cfg
    )
    damage(path)
    if message is None:
        run_layout.check_training_files(path)
        return
    with pytest.raises(CheckpointLayoutError, match=message) as caught:
        run_layout.check_training_files(path)
        run_layout.checkpoint_step(path)  # the step is read from train_state.json
    assert str(caught.value).startswith(str(path)), "the message names the checkpoint"
    assert len(str(caught.value).splitlines()) == 1


def test_a_missing_folder_or_a_file_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointLayoutError, match=r"(no such folder)"):
        run_layout.check_training_files(tmp_path / "missing")
    with pytest.raises(CheckpointLayoutError, match=r"does not exist; train one with `make train`"):
        run_layout.check_model_files(tmp_path / "missing")
    a_file = tmp_path / "model.safetensors"
    a_file.write_bytes(b"")
    with pytest.raises(CheckpointLayoutError, match=r"\(a file\)$"):
        run_layout.check_training_files(a_file)
    with pytest.raises(CheckpointLayoutError, match=r"is a file; --ckpt takes the checkpoint folder$"):
        run_layout.check_model_files(a_file)
