"""Snapping far prompts to their nearest training prompt: `TrainingReach.snap`, `ET3D(far_prompts=...)`,
`et3d-gen --far-prompts` and et3d-eval's `unseen.student_nearest`."""

from __future__ import annotations

import dataclasses
import re
import shutil
import warnings

import pytest
import torch
from support.generation import HashTextEncoder, save_tiny_generator, use_hash_encoder
from typer.testing import CliRunner

from student.eval.oracle_accuracy import make_eval_set, render_eval_set
from student.eval.unseen import UnseenSet, evaluate_unseen
from student.generate.api import ET3D
from student.generate.cli import app
from student.generate.errors import CheckpointError, OptionError, PromptOutOfReachWarning
from student.generate.reach import REACH_THRESHOLD, TrainingReach
from student.mesh.config import MeshConfig
from student.run_layout import TrainingPrompts, save_training_prompts

TRAIN = ["a red cube", "a blue sphere"]
LEVEL = 0.1  # cuts blobs out of the random tiny generator's fog (see test_generate_api)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def test_snap_replaces_far_rows_by_the_nearest_recorded_embedding_and_keeps_near_rows_bit_for_bit() -> None:
    rng = torch.Generator().manual_seed(0)
    recorded = torch.randn(3, 16, generator=rng) * torch.tensor([[1.0], [2.0], [0.5]])  # (3, 16), norms differ
    reach = TrainingReach(TrainingPrompts(["a red cube", "a blue sphere", "a green torus"], recorded))
    near = 3.0 * recorded[1] + 0.2 * torch.randn(16, generator=rng)  # cosine ~0.99 to row 1, 3x its norm
    far = torch.randn(16, generator=rng)
    far = far - (far @ recorded[2]) / (recorded[2] @ recorded[2]) * recorded[2] + 0.5 * recorded[2] / recorded[2].norm()
    emb = torch.stack([near, far, -recorded[0]])  # (3, 16)
    reaches = reach.check(["near", "far", "opposite"], emb)
    assert [r.far for r in reaches] == [False, True, True]
    out = reach.snap(emb, reaches)  # (3, 16)
    assert torch.equal(_bits(out[0]), _bits(emb[0]))  # within reach: untouched
    for row, r in zip((1, 2), reaches[1:], strict=True):
        assert torch.equal(_bits(out[row]), _bits(recorded[r.index])), r  # exactly the recorded row, norm included
        assert r.nearest == reach.prompts[r.index]
    assert reaches[2].nearest != "a red cube"  # the nearest of -red is whichever is least opposite, not red
    assert not torch.equal(out, emb) and out.dtype == torch.float32
    # A bf16 embedding is widened (exactly) so the recorded fp32 rows fit without rounding.
    low = reach.snap(emb.bfloat16(), reaches)
    assert low.dtype == torch.float32 and torch.equal(low[0], emb[0].bfloat16().float())
    assert torch.equal(low[1:], out[1:])
    with pytest.raises(ValueError, match=r"embeddings \(2, 16\) for 3 reaches; need \(B, 16\)"):
        reach.snap(emb[:2], reaches)


def test_the_snapped_warning_names_what_is_generated_instead() -> None:
    reach = TrainingReach(TrainingPrompts(TRAIN, torch.eye(2, 4)))
    (r,) = reach.check(["a teapot"], torch.tensor([[0.3, 0.1, 1.0, 0.0]]))
    assert r.far and r.nearest == "a red cube" and r.threshold == REACH_THRESHOLD
    assert r.message().endswith("expect a guess")
    assert r.message(snapped=True).endswith("; generating 'a red cube' instead (far prompts: nearest)")


@pytest.fixture(scope="module")
def recorded_dir(tmp_path_factory):
    """A tiny generator checkpoint that records TRAIN (hash-encoder embeddings) as its training prompts."""
    folder = save_tiny_generator(tmp_path_factory.mktemp("ckpt") / "tiny")
    save_training_prompts(folder, TRAIN, HashTextEncoder().encode(TRAIN).pooled)
    return folder


@pytest.fixture
def hash_encoder(monkeypatch):
    use_hash_encoder(monkeypatch, 384)


def _model(folder, far_prompts: str = "warn") -> ET3D:
    return ET3D.from_pretrained(folder, mesh_config=MeshConfig(grid=32, sigma_level=LEVEL), far_prompts=far_prompts)


def test_nearest_mode_generates_the_nearest_training_prompt_and_warn_mode_the_prompt_itself(recorded_dir, hash_encoder):
    warn, nearest = _model(recorded_dir), _model(recorded_dir, "nearest")
    assert (warn.far_prompts, nearest.far_prompts) == ("warn", "nearest")
    with pytest.warns(PromptOutOfReachWarning, match=r"'a teapot' is far .*; generating '(.*)' instead") as caught:
        snapped = nearest("a teapot", seed=5)
    target = next(t for t in TRAIN if f"generating {t!r} instead" in str(caught[0].message))
    recorded = nearest.reach.embeddings[TRAIN.index(target)]  # (D,) as the checkpoint records it (fp16-rounded)
    assert snapped.prompt == "a teapot"  # the label is what was asked for; the warning says what was generated
    # Exactly the recorded embedding's generation, and (up to its fp16 rounding) the training prompt's own.
    by_embedding = warn.synthesize(recorded[None], [target], [5])[0]
    assert torch.equal(snapped.planes, by_embedding.planes)
    direct = warn(target, seed=5)
    torch.testing.assert_close(snapped.planes, direct.planes, rtol=0, atol=2e-3 * float(direct.planes.abs().max()))
    assert snapped.mesh.num_vertices == pytest.approx(direct.mesh.num_vertices, rel=0.02)
    # Warn mode is today's behaviour: the prompt's own embedding, the same as a checkpoint without a record.
    with pytest.warns(PromptOutOfReachWarning, match=r"'a teapot' is far .*; expect a guess"):
        guessed = warn("a teapot", seed=5)
    unrecorded = shutil.copytree(recorded_dir, recorded_dir.parent / "unrecorded", dirs_exist_ok=True)
    (unrecorded / "training_prompts.safetensors").unlink()
    assert torch.equal(guessed.planes, _model(unrecorded)("a teapot", seed=5).planes)
    assert float((guessed.planes - snapped.planes).abs().max()) > 0.05 * float(snapped.planes.abs().max())
    # A prompt within reach is untouched by nearest mode: silent, and bit-identical to warn mode.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(nearest("a blue sphere", 2).planes, warn("a blue sphere", 2).planes, rtol=0, atol=0)
        torch.testing.assert_close(nearest.encode(TRAIN[:1]), warn.encode(TRAIN[:1]), rtol=0, atol=0)


def test_bad_far_prompt_options_are_refused_in_one_line(recorded_dir, hash_encoder, tmp_path):
    with pytest.raises(OptionError, match=r"^far_prompts must be one of warn, nearest, got 'closest'$"):
        ET3D.from_pretrained(recorded_dir, far_prompts="closest")
    unrecorded = shutil.copytree(recorded_dir, tmp_path / "old")
    (unrecorded / "training_prompts.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"old records no training prompts .* far_prompts='nearest' has nothing"):
        ET3D.from_pretrained(unrecorded, far_prompts="nearest")
    model = _model(unrecorded)
    with pytest.raises(OptionError, match=r"far_prompts='nearest' needs the training prompts \(reach\)"):
        ET3D(model.generator, model.text_encoder, far_prompts="nearest")
    with pytest.raises(OptionError, match=r"far_prompts must be one of warn, nearest, got 'nearest '"):
        ET3D(model.generator, model.text_encoder, far_prompts="nearest ")


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_cli_far_prompts_nearest_generates_the_nearest_training_prompt(tmp_path, hash_encoder):
    # One recorded training prompt: every far prompt snaps to it, so two different far prompts give one mesh.
    ckpt = save_tiny_generator(tmp_path / "ckpt")
    save_training_prompts(ckpt, ["a red cube"], HashTextEncoder().encode(["a red cube"]).pooled)
    flags = ["--ckpt", str(ckpt), "--grid", "32", "--level", str(LEVEL), "--seed", "3"]
    code, _, err = _cli("a teapot", "-o", str(tmp_path / "teapot.ply"), "--far-prompts", "nearest", *flags)
    assert code == 0, err
    assert "warning: prompt 'a teapot' is far" in err and "generating 'a red cube' instead" in " ".join(err.split())
    code, _, err = _cli("a green dragon", "-o", str(tmp_path / "dragon.ply"), "--far-prompts", "nearest", *flags)
    assert code == 0, err
    code, _, err = _cli("a teapot", "-o", str(tmp_path / "guess.ply"), *flags)  # the default: warn
    assert code == 0 and "expect a guess" in " ".join(err.split()), err
    teapot, dragon, guess = ((tmp_path / f"{n}.ply").read_bytes() for n in ("teapot", "dragon", "guess"))
    assert teapot == dragon and teapot != guess
    code, out, _ = _cli("a teapot", "-o", str(tmp_path / "t.ply"), "--far-prompts", "nearest", "--dry-run")
    assert code == 0 and "far prompts: nearest" in out


def test_cli_refuses_a_bad_far_prompts_value_and_a_checkpoint_without_a_record(tmp_path, hash_encoder):
    code, _, err = _cli("a cube", "-o", str(tmp_path / "a.ply"), "--far-prompts", "closest")
    assert code == 2 and "error: --far-prompts must be one of warn, nearest, got 'closest'" in err
    old = save_tiny_generator(tmp_path / "old")
    code, _, err = _cli("a cube", "-o", str(tmp_path / "a.ply"), "--far-prompts", "nearest", "--ckpt", str(old))
    assert code == 3 and "records no training prompts" in err
    assert list(tmp_path.glob("*.ply")) == []
    help_text = re.sub(r"[\s│]+", " ", CliRunner().invoke(app, ["--help"]).stdout)  # rich boxes and wraps it
    assert "--far-prompts" in help_text and "nearest: generate that nearest training prompt instead" in help_text


class RenderMatchingOracle:
    """Stands in for the attribute oracle: a sample whose renders match those of a known embedding (same latent
    and cameras) gets that embedding's labels; any other gets ("unknown", "unknown"). Records every call."""

    def __init__(self, known: dict[tuple[str, str], torch.Tensor]):
        self.known = known  # labels -> (N, V, H, W, 3) uint8 renders of the eval set with that embedding
        self.calls: list[torch.Tensor] = []

    def predict(self, views, c2w, fovy) -> list[tuple[str, str]]:
        views = torch.as_tensor(views)
        self.calls.append(views)
        out = []
        for v in views:  # (V, H, W, 3)
            diffs = {k: (r.float() - v.float()).abs().mean(dim=(1, 2, 3, 4)).min() for k, r in self.known.items()}
            label, diff = min(diffs.items(), key=lambda kv: float(kv[1]))
            out.append(label if diff < 0.5 else ("unknown", "unknown"))
        return out


def test_eval_scores_the_student_with_far_prompts_snapped_on_the_same_latents_and_cameras() -> None:
    from student.model.generator import TriplaneGenerator
    from student.presets import get_preset

    cfg = dataclasses.replace(get_preset("tiny").generator, text_encoder="minilm", text_dim=8)
    G = TriplaneGenerator(cfg, rng=torch.Generator().manual_seed(1)).eval()
    ref = torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(2)), dim=-1)
    unseen = UnseenSet(
        ["a scarlet box", "an azure ball", "a crimson cone"], [("red", "cube"), ("blue", "sphere"), ("red", "cone")]
    )
    q = torch.linalg.qr(torch.cat([ref.T, torch.eye(8)], dim=1)).Q  # (8, 8): columns 2.. are orthogonal to ref
    # Within reach (cosine 1 to the red cube); far, nearest the blue sphere; far, nearest the red cube (cosine 0.55).
    emb = torch.stack([ref[0], ref[1] + 1.5 * q[:, 2], ref[0] + 1.5 * q[:, 3]])  # (3, D)
    reaches = TrainingReach(TrainingPrompts(["a red cube", "a blue sphere"], ref)).check(unseen.prompts, emb)
    assert [(r.nearest, round(r.similarity, 2)) for r in reaches] == [
        ("a red cube", 1.0), ("a blue sphere", 0.55), ("a red cube", 0.55),
    ]  # fmt: skip
    seeds = 2
    eval_set = make_eval_set(
        "ref", ["a red cube"] * 3, emb, seeds=seeds, z_dim=cfg.mapping.z_dim, camera=cfg.camera,
        resolution=cfg.superres.output_resolution,
    )  # fmt: skip
    renders = {
        labels: render_eval_set(G, dataclasses.replace(eval_set, emb=e.expand(len(eval_set), -1)))
        for labels, e in ((("red", "cube"), ref[0]), (("blue", "sphere"), ref[1]))
    }  # each training embedding on every sample's latent and cameras
    oracle = RenderMatchingOracle(renders)
    done = []
    result = evaluate_unseen(
        G, unseen, emb, (["a red cube", "a blue sphere"], ref), seeds=seeds, chunk=4, oracle=oracle,
        progress=done.append,
    )  # fmt: skip
    # The student itself: only the prompt within reach renders a training embedding.
    assert result["student"] == {"colour": 2 / 6, "shape": 2 / 6, "both": 2 / 6, "count": 6}
    # Snapped: the sphere wording renders the blue sphere, the cone wording the red cube (colour right, shape not).
    assert result["student_nearest"] == {
        "colour": 1.0, "shape": 4 / 6, "both": 4 / 6, "count": 6, "snapped": 2, "threshold": REACH_THRESHOLD,
    }  # fmt: skip
    assert result["nearest_neighbour"] == {"colour": 1.0, "shape": 2 / 3, "both": 2 / 3}
    # Only the far prompts' samples were rendered again, and progress counted both passes in full.
    assert [len(c) for c in oracle.calls] == [4, 2, 4]
    assert sum(done) == 2 * 3 * seeds
    # Nothing to snap when every prompt is within reach: the snapped score is the student's.
    near = evaluate_unseen(G, unseen, ref[[0, 1, 0]], (["a red cube", "a blue sphere"], ref), seeds=1, oracle=oracle)
    assert near["student_nearest"]["snapped"] == 0
    assert {k: near["student_nearest"][k] for k in ("colour", "shape", "both")} == {
        k: near["student"][k] for k in ("colour", "shape", "both")
    }
