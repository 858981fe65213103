"""The quality report end to end on a tiny randomly initialised generator laid out like a training run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from pipeline.procedural import AttributeOracle
from pipeline.shards import ShardSample, make_sample_meta, sample_key, write_shard
from student.eval.attributes import evaluate_attributes
from student.eval.chamfer import ChamferConfig
from student.eval.cli import app, summary
from student.eval.curves import CurveConfig
from student.eval.diversity import DiversityConfig
from student.eval.inputs import (
    check_encoder,
    describe_checkpoint,
    embed_prompts,
    load_trained_generator,
    read_prompt_sets,
)
from student.eval.mesh_accuracy import GeometryConfig
from student.eval.oracle_accuracy import make_eval_set, oracle_accuracy, render_eval_set
from student.eval.report import ReportConfig, make_plan, run_report
from student.eval.unseen import read_unseen
from student.model.generator import TriplaneGenerator
from student.presets import get_preset
from student.run_layout import save_training_prompts

TEXT_DIM = 8
TRAIN = ["a red cube", "a blue sphere", "a green torus"]
HELDOUT = ["a yellow cone"]
UNSEEN = {"a scarlet box": ("red", "cube"), "an azure ball": ("blue", "sphere"), "a jade ring": ("green", "torus")}
SMALL = ReportConfig(
    seeds=1,
    heldout_seeds=2,
    geometry=GeometryConfig(
        mesh_grid=16, gt_grid=24, gt_seeds=2, chamfer=ChamferConfig(query_points=300, target_points=1500)
    ),
    diversity=DiversityConfig(train_prompts=1, heldout_prompts=1, seeds=2),
    curves=CurveConfig(
        train_prompts=2,
        seeds=1,
        heldout_seeds=1,
        diversity=DiversityConfig(train_prompts=1, heldout_prompts=0, seeds=2),
        geometry=GeometryConfig(
            prompts=1, mesh_grid=16, gt_grid=24, gt_seeds=2, chamfer=ChamferConfig(query_points=300, target_points=1500)
        ),
    ),
)


def fake_encode(prompts: list[str]) -> torch.Tensor:
    """(P, TEXT_DIM) unit vectors from each prompt's sha256: deterministic, distinct per prompt."""
    seeds = [int.from_bytes(hashlib.sha256(p.encode()).digest()[:8], "little") for p in prompts]
    rows = [torch.randn(TEXT_DIM, generator=torch.Generator().manual_seed(s)) for s in seeds]
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    """runs/00000-tiny/checkpoints/step-00000004 (tiny generator, trainer meta) + stats.jsonl + corpora."""
    root = tmp_path_factory.mktemp("eval")
    cfg = dataclasses.replace(get_preset("tiny").generator, text_encoder="minilm", text_dim=TEXT_DIM)
    G = TriplaneGenerator(cfg, rng=torch.Generator().manual_seed(1))
    run_dir = root / "runs" / "00000-tiny"
    ckpt = G.save_pretrained(run_dir / "checkpoints" / "step-00000004")
    (ckpt / "train_state.json").write_text(json.dumps({"step": 4, "elapsed_s": 90.0}))
    older = TriplaneGenerator(cfg, rng=torch.Generator().manual_seed(3)).save_pretrained(
        run_dir / "checkpoints" / "step-00000002"
    )  # a kept earlier checkpoint: the curves measure both
    (older / "train_state.json").write_text(json.dumps({"step": 2, "elapsed_s": 30.0}))
    G_raw = TriplaneGenerator(cfg, rng=torch.Generator().manual_seed(2))  # the trainer's non-averaged G
    save_file({f"G.{k}": v.contiguous() for k, v in G_raw.state_dict().items()}, str(ckpt / "train_state.safetensors"))
    records = [{"kind": "train", "step": 2, "loss_g": 1.0}]
    records += [
        {"kind": "eval", "step": s, "wall_s": 45.0 * s, "train/colour": c, "train/shape": 0.5, "train/count": 6}
        for s, c in ((2, 0.1), (4, 0.3))
    ]
    (run_dir / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "train.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "heldout.txt").write_text("# held out\n" + "\n".join(HELDOUT) + "\n")
    (root / "unseen.tsv").write_text("# unseen\n" + "".join(f"{p}\t{c}\t{s}\n" for p, (c, s) in UNSEEN.items()))
    # The recorded training embeddings are the unseen wordings' own (in order), so the nearest-neighbour baseline
    # maps each wording to the training prompt it means, at cosine 1.
    save_training_prompts(ckpt, TRAIN, fake_encode(list(UNSEEN)))
    return {
        "root": root, "ckpt": ckpt, "train": root / "train.txt", "heldout": root / "heldout.txt",
        "unseen": root / "unseen.tsv",
    }  # fmt: skip


def test_report_writes_every_file_with_consistent_numbers(run) -> None:
    info = describe_checkpoint(run["ckpt"])
    assert (info.run_name, info.step) == ("00000-tiny", 4)
    sets = read_prompt_sets(None, run["train"], run["heldout"])
    plan = make_plan(
        info, sets, SMALL, run["root"] / "eval", clip_path=None, unseen=(run["unseen"], read_unseen(run["unseen"]))
    )
    assert plan.procedural and plan.out_dir == run["root"] / "eval" / "00000-tiny"
    G = TriplaneGenerator.from_pretrained(run["ckpt"])
    G_raw = load_trained_generator(run["ckpt"], G)
    assert not torch.equal(G_raw.state_dict()["mapping.text_embed.weight"], G.state_dict()["mapping.text_embed.weight"])
    metrics = run_report(plan, G, fake_encode, show_progress=False, G_raw=G_raw)

    out = plan.out_dir
    for name in (
        "report.md",
        "metrics.json",
        "preview.png",
        "confusion_colour.png",
        "confusion_shape.png",
        "training_curve.png",
        "curves.png",
    ):
        assert (out / name).is_file(), name
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["step"] == 4 and saved["run"] == "00000-tiny"

    train, held = saved["attributes"]["train"], saved["attributes"]["heldout"]
    assert (train["count"], held["count"]) == (3, 2)  # 3 prompts x 1 seed, 1 prompt x 2 seeds
    counts = torch.tensor(train["colour_confusion"]["counts"])
    assert int(counts.sum()) == 3
    assert train["colour_accuracy"] == pytest.approx(float(counts[:, :-1].diagonal().sum()) / 3)

    geo = saved["geometry"]["train"]
    assert geo["count"] == 3 and len(geo["per_sample"]) == 3
    # The baselines come from ground truth alone: a perfect sample beats a wrong shape by far.
    assert 0 < geo["gt_vs_gt_chamfer"] < 0.05 < geo["wrong_shape_chamfer"]
    # A random tiny generator is a thin fog under the surface level: no meshes (their Chamfer is tested below).
    assert geo["empty_meshes"] == 3 and geo["chamfer_mean"] is None

    div = saved["diversity"]
    assert div["prompts"] == ["a red cube", "a yellow cone"] and set(div["generators"]) == {"G_ema", "G"}
    ema = div["generators"]["G_ema"]
    assert set(ema["per_prompt"]) == {"a red cube", "a yellow cone"} and set(ema["per_shape"]) == {"cube", "cone"}
    assert div["teacher_mean"] > 0.001  # the teacher's seeds differ in yaw, scale and shade
    assert div["ratio"] == pytest.approx(div["student_mean"] / div["teacher_mean"])
    assert ema["per_shape"]["cone"]["yaw"]["teacher"] is None  # a cone looks the same at every yaw
    assert ema["per_shape"]["cube"]["scale"]["teacher"] > 0.01
    unseen = saved["unseen"]
    assert (unseen["prompts"], unseen["seeds"], unseen["reference"]) == (3, 2, "checkpoint")
    assert unseen["nearest_neighbour"] == {"colour": 1.0, "shape": 1.0, "both": 1.0}
    assert unseen["per_prompt"]["a scarlet box"]["nearest"] == "a red cube"
    assert unseen["per_prompt"]["a scarlet box"]["similarity"] == pytest.approx(1.0)
    per = unseen["per_prompt"].values()
    assert unseen["student"]["colour"] == pytest.approx(sum(v["colour"] for v in per) / 3)
    # Every wording is at cosine 1 to a recorded embedding: nothing to snap, so snapping changes no score.
    snapped = unseen["student_nearest"]
    assert (snapped["snapped"], snapped["count"]) == (0, unseen["student"]["count"])
    assert {k: snapped[k] for k in ("colour", "shape", "both")} == {
        k: unseen["student"][k] for k in ("colour", "shape", "both")
    }
    assert "## Unseen wordings" in (out / "report.md").read_text()
    assert "| student, far prompts snapped (0 of 3) |" in (out / "report.md").read_text()
    assert "snapped 0 of 3: colour" in next(line for line in summary(metrics) if line.startswith("unseen"))
    points = saved["curves"]["points"]
    assert [(p["step"], p["minutes"]) for p in points] == [(2, 0.5), (4, 1.5)]
    for p in points:
        assert 0 <= p["train/colour"] <= 1 and 0 <= p["heldout/shape"] <= 1
        assert p["diversity/image_l1"] is not None and p["chamfer/perfect"] > 0
    assert "## Curves" in (out / "report.md").read_text() and "curves.png" in saved["files"]
    frame = saved["frame"]
    assert frame["teacher"]["max"] == 0.0  # the teacher frames its shapes inside the image
    assert set(frame["generators"]) == {"G_ema", "G"}
    assert saved["training"]["last_eval"]["train/colour"] == 0.3 and saved["training"]["curve"] == "training_curve.png"

    text = (out / "report.md").read_text()
    assert "# ET3D evaluation: 00000-tiny, step 4" in text
    assert f"{train['shape_accuracy']:.3f}" in text and f"{geo['gt_vs_gt_chamfer']:.4f}" in text
    preview = Image.open(out / "preview.png")
    assert preview.width > 4 * 96 and preview.height > 2 * 96  # 2 teacher + 2 student columns, 2 rows
    assert metrics["timings_s"]["total"] > 0


def test_geometry_scores_a_teacher_like_student_at_the_baseline_and_a_wrong_one_above(run, monkeypatch) -> None:
    # Stand in for the student's meshes with ground truth: teacher samples of the prompt (other yaw and
    # scale) must score exactly the gt-vs-gt baseline's distances, a wrong shape far above it.
    import student.eval.mesh_accuracy as mesh_accuracy
    from pipeline.procedural import parse_prompt, sample_scene

    G = TriplaneGenerator.from_pretrained(run["ckpt"])
    config = dataclasses.replace(SMALL.geometry, prompts=3, gt_seeds=1)
    gt = mesh_accuracy.GroundTruth(config)
    eval_set = make_eval_set(
        "train", TRAIN, fake_encode(TRAIN), seeds=1, z_dim=G.config.mapping.z_dim, camera=G.config.camera, resolution=16
    )

    def teacher_sample(G, eval_set, index, mesh_config):
        return gt.mesh(sample_scene(parse_prompt(eval_set.prompts[index]), 0))

    monkeypatch.setattr(mesh_accuracy, "student_mesh", teacher_sample)
    result = mesh_accuracy.evaluate_geometry(G, eval_set, config, ground_truth=gt)
    assert [s.prompt for s in result.samples] == TRAIN and result.empty == 0
    assert result.distances == pytest.approx(
        [gt.chamfer(sample_scene(parse_prompt(p), 0), gt.reference(parse_prompt(p))) for p in TRAIN]
    )
    assert np.mean(result.distances) == pytest.approx(result.gt_vs_gt)  # gt_seeds=1: the same sample
    assert all(s.yaw_deg is not None and s.vertices > 100 for s in result.samples)

    def wrong_shape(G, eval_set, index, mesh_config):
        spec = parse_prompt(eval_set.prompts[index])
        other = "cone" if spec.shape != "cone" else "cube"
        return gt.mesh(gt.reference(dataclasses.replace(spec, shape=other)))

    monkeypatch.setattr(mesh_accuracy, "student_mesh", wrong_shape)
    wrong = mesh_accuracy.evaluate_geometry(G, eval_set, config, ground_truth=gt)
    assert min(wrong.distances) > 2 * max(result.distances)


def test_report_oracle_matches_training_time_evaluation(run) -> None:
    G = TriplaneGenerator.from_pretrained(run["ckpt"])
    cam = G.config.camera
    eval_set = make_eval_set(
        "train", TRAIN, fake_encode(TRAIN), seeds=1, z_dim=G.config.mapping.z_dim, camera=cam, resolution=16
    )
    oracle = AttributeOracle()
    mine = evaluate_attributes(G, eval_set, oracle, chunk=2)  # chunked: 2 + 1 samples
    theirs = oracle_accuracy(G, eval_set, oracle)
    assert (mine.colour.accuracy, mine.shape.accuracy, mine.both) == pytest.approx(
        (theirs.colour, theirs.shape, theirs.both)
    )
    # Per sample, not only in total: chunking must not reorder or mix samples.
    with torch.no_grad():
        views = render_eval_set(G, eval_set, chunk=8)  # (3, V, H, W, 3), one chunk
        assert torch.equal(render_eval_set(G, eval_set, chunk=2), views)
    assert list(mine.predictions) == oracle.predict(views.numpy(), eval_set.c2w, eval_set.fovy)


def test_cli_dry_run_and_errors(run) -> None:
    runner = CliRunner()
    args = ["--ckpt", str(run["ckpt"]), "--prompts", str(run["train"]), "--heldout", str(run["heldout"])]
    out = run["root"] / "cli-eval"
    result = runner.invoke(app, [*args, "--out", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "3 of 3 training prompts x 2 seeds, 1 held-out x 4 seeds" in result.output
    assert "oracle:       10 samples" in result.output
    assert not out.exists()  # a dry run writes nothing
    result = runner.invoke(app, [*args, "--unseen", str(run["unseen"]), "--unseen-seeds", "3", "--dry-run"])
    assert result.exit_code == 0 and f"unseen:       3 wordings of {run['unseen']} x 3 seeds" in result.output
    bad_unseen = run["root"] / "bad.tsv"
    bad_unseen.write_text("a mauve box\tmauve\tcube\n")
    result = runner.invoke(app, [*args, "--unseen", str(bad_unseen), "--dry-run"])
    assert result.exit_code == 2 and "bad.tsv:1: label ('mauve', 'cube') outside the vocabulary" in result.output
    result = runner.invoke(app, [*args, "--no-unseen", "--dry-run"])
    assert result.exit_code == 0 and "unseen:       off" in result.output
    assert "curves:       2 kept checkpoints of the run measured" in result.output
    result = runner.invoke(app, [*args, "--curve-checkpoints", "0", "--dry-run"])
    assert result.exit_code == 0 and "curves:       stats.jsonl only" in result.output

    bad = run["root"] / "mvdream.txt"
    bad.write_text("a photo of a corgi wearing a hat\n")
    result = runner.invoke(app, ["--ckpt", str(run["ckpt"]), "--prompts", str(bad), "--no-heldout", "--dry-run"])
    assert result.exit_code == 2 and "pass --clip PATH" in result.output and "'corgi'" in result.output
    result = runner.invoke(app, ["--ckpt", str(run["root"] / "missing"), "--prompts", str(run["train"])])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_prompts_from_shards_carry_their_embeddings(run) -> None:
    shards = run["root"] / "shards"
    shards.mkdir()
    emb = fake_encode(TRAIN[:2]).numpy()
    samples = []
    for prompt, e in zip(TRAIN[:2], emb, strict=True):
        meta = make_sample_meta(prompt, 0, teacher="procedural", teacher_config_hash="0", text_encoder="minilm",
                                text_dim=TEXT_DIM, num_views=1, resolution=4)  # fmt: skip
        samples.append(
            ShardSample(
                key=sample_key(meta["prompt_id"], 0),
                prompt=prompt,
                seed=0,
                views=np.full((1, 4, 4, 3), 255, np.uint8),
                cameras=np.eye(4, dtype=np.float32)[None],
                fovy=np.full(1, 40.0, np.float32),
                emb=e,
                meta=meta,
            )  # fmt: skip
        )
    write_shard(shards / "shard-000000.tar", samples)

    sets = read_prompt_sets(shards, None, run["heldout"])
    assert sets.train == sorted(TRAIN[:2]) and sets.teacher == "procedural" and sets.text_encoder == ("minilm", 8)
    # With a corpus too (what `make eval` passes): the corpus lists, the shards supply what they hold.
    sets = read_prompt_sets(shards, run["train"], run["heldout"])
    assert sets.train == TRAIN and set(sets.known) == set(TRAIN[:2])
    calls = []

    def encode(prompts: list[str]) -> torch.Tensor:
        calls.append(prompts)
        return fake_encode(prompts)

    got = embed_prompts(TRAIN, sets.known, encode)
    assert calls == [[TRAIN[2]]]  # only the prompt the shards lack is encoded
    assert torch.allclose(got, fake_encode(TRAIN))
    with pytest.raises(ValueError, match="expects 'clip'"):
        check_encoder(sets, "clip", 8)
    (run["root"] / "leaky.txt").write_text(TRAIN[0] + "\n")
    with pytest.raises(ValueError, match="held-out prompt"):
        read_prompt_sets(shards, None, run["root"] / "leaky.txt")
