"""The Python API on a tiny random generator: determinism, seeds, interpolation, previews and every error path."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import numpy as np
import pytest
import torch
from support.generation import save_tiny_generator, use_hash_encoder

from student.generate.api import ET3D, interpolate_embeddings
from student.generate.errors import CheckpointError, EmptyMeshError, OptionError, PromptError, PromptTruncatedWarning
from student.generate.loading import resolve_checkpoint
from student.mesh.config import MeshConfig

# A random tiny generator is a thin fog (sigma ~0.01-0.5); this level cuts blobs out of it for seeds 0-3.
LEVEL = 0.1


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_generator(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture
def hash_encoder(monkeypatch):
    """Stand in for minilm (same name and width) so these tests need no model load."""
    use_hash_encoder(monkeypatch, 384)


@pytest.fixture
def model(tiny_dir, hash_encoder) -> ET3D:
    return ET3D.from_pretrained(tiny_dir, mesh_config=MeshConfig(grid=32, sigma_level=LEVEL))


def test_same_seed_same_mesh_and_different_seeds_differ(model):
    a, b, c = model("a red cube", seed=3), model("a red cube", seed=3), model("a red cube", seed=4)
    assert a.planes.shape == (1, 3, 4, 16, 16)
    torch.testing.assert_close(a.planes, b.planes, rtol=0, atol=0)
    assert a.mesh.num_faces > 100
    np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)
    np.testing.assert_array_equal(a.mesh.faces, b.mesh.faces)
    np.testing.assert_array_equal(a.mesh.colours, b.mesh.colours)
    assert (a.planes - c.planes).abs().mean() > 0.1 * a.planes.abs().mean()
    assert a.mesh.num_vertices != c.mesh.num_vertices or not np.array_equal(a.mesh.vertices, c.mesh.vertices)


def test_a_seed_gives_the_same_asset_whatever_else_is_in_the_batch(model):
    batch = model.generate(["a red cube", "a blue cone"], seeds=[5, 6])
    alone = model("a blue cone", seed=6)
    torch.testing.assert_close(batch[1].planes, alone.planes, rtol=0, atol=0)
    psi = model("a blue cone", seed=6, truncation_psi=0.5)
    assert not torch.equal(psi.planes, alone.planes)


def test_mesh_is_in_the_box_and_coloured_by_the_decoder(model):
    gen = model("a red cube", seed=0)
    mesh = gen.mesh
    assert mesh.vertices.min() >= -1 and mesh.vertices.max() <= 1
    with torch.no_grad():
        sigma, rgb = gen.field.query(torch.from_numpy(mesh.vertices))
    np.testing.assert_array_equal(mesh.colours, np.rint(rgb.numpy() * 255).astype(np.uint8))
    # Away from the box faces (where the fog is cut off and the surface closed) vertices lie on the level
    # set, up to marching cubes' linear interpolation along 1/16-wide cell edges.
    interior = np.abs(mesh.vertices).max(axis=1) < 1 - 1 / 16
    assert interior.sum() > 100
    np.testing.assert_allclose(sigma.numpy()[interior], LEVEL, rtol=0.1)


def test_default_level_follows_the_renderer_sample_spacing(tiny_dir, hash_encoder):
    model = ET3D.from_pretrained(tiny_dir)
    # tiny renders 6 stratified samples across the 2-wide box: ln 2 / (2 / 6).
    assert model.mesh_config.level == pytest.approx(math.log(2) * 3)
    assert model.mesh_config.grid == 128
    with pytest.raises(EmptyMeshError, match=r"'a red cube' \(seed 0\): no surface: .* level 2.08"):
        _ = model("a red cube", seed=0).mesh


def test_save_preview_and_turntable_return_the_paths_they_wrote(model, tmp_path):
    import trimesh
    from PIL import Image

    gen = model("a red cube", seed=0)
    assert gen.save(tmp_path / "m.glb") == tmp_path / "m.glb"
    loaded = trimesh.load(tmp_path / "m.glb", force="mesh", process=False)
    assert len(loaded.vertices) == gen.mesh.num_vertices and len(loaded.faces) == gen.mesh.num_faces
    path = gen.preview(tmp_path / "p.png")
    assert path == tmp_path / "p.png"
    assert Image.open(path).size == (32, 32)  # 4 views of 16^2 in a 2 x 2 grid
    path = gen.turntable(tmp_path / "t.gif", frames=3)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (16, 16)


def test_interpolation_runs_from_a_to_b_with_one_z(model):
    steps = model.interpolate("a red cube", "a blue cone", steps=4, seed=2)
    assert len(steps) == 4 and {g.seed for g in steps} == {2}
    torch.testing.assert_close(steps[0].planes, model("a red cube", seed=2).planes, atol=1e-5, rtol=0)
    torch.testing.assert_close(steps[-1].planes, model("a blue cone", seed=2).planes, atol=1e-5, rtol=0)
    gaps = [float((s.planes - t.planes).abs().mean()) for s, t in zip(steps, steps[1:], strict=False)]
    assert min(gaps) > 0.2 * max(gaps)  # evenly spread, no jump
    with pytest.raises(OptionError, match="steps must be >= 2"):
        model.interpolate("a", "b", steps=1)


def test_embedding_interpolation_slerps_unit_vectors():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    mid = interpolate_embeddings(a, b, 0.5)
    torch.testing.assert_close(mid, torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]))
    torch.testing.assert_close(interpolate_embeddings(2 * a, 4 * a, 0.25), 2.5 * a)
    torch.testing.assert_close(interpolate_embeddings(a, b, 1.0), b)


@pytest.mark.parametrize("prompt", ["", "   ", "\n"])
def test_empty_prompts_are_refused(model, prompt):
    with pytest.raises(PromptError, match="prompt 0 is empty"):
        model(prompt)


def test_a_prompt_longer_than_the_encoder_takes_warns(model):
    with pytest.warns(PromptTruncatedWarning, match="minilm takes 8 tokens; .* has 13 and is truncated"):
        model("a very very very very very very very red cube indeed")


def _copy(tiny_dir, tmp_path):
    return shutil.copytree(tiny_dir, tmp_path / "ckpt")


def test_no_checkpoint_under_the_runs_root_says_how_to_get_one(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint found under .*`make train`.*`make demo`"):
        resolve_checkpoint(None, root=tmp_path / "runs" / "train")


def test_a_run_folder_resolves_to_its_newest_checkpoint(tiny_dir, tmp_path):
    run = tmp_path / "runs" / "00003-tiny"
    for step in (4, 8):
        shutil.copytree(tiny_dir, run / "checkpoints" / f"step-{step:08d}")
    assert resolve_checkpoint(run) == run / "checkpoints" / "step-00000008"
    assert resolve_checkpoint(tmp_path / "runs") == run / "checkpoints" / "step-00000008"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: shutil.rmtree(d), r"does not exist; train one with `make train`"),
        (lambda d: (d / "config.json").unlink(), r"has no config.json"),
        (lambda d: (d / "model.safetensors").unlink(), r"has no model.safetensors"),
        (lambda d: (d / "config.json").write_text("{not json"), r"config.json: not readable JSON"),
        (lambda d: (d / "config.json").write_text("[1, 2]"), r"config.json: expected a JSON object, got list"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 40), r"model.safetensors: not a valid safetensors"),
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-100]),
            r"model.safetensors: not a valid safetensors",
        ),
    ],
    ids=["missing-dir", "no-config", "no-weights", "bad-json", "json-list", "not-safetensors", "truncated-weights"],
)
def test_unreadable_or_corrupt_checkpoints_name_the_file(tiny_dir, tmp_path, hash_encoder, damage, message):
    ckpt = _copy(tiny_dir, tmp_path)
    damage(ckpt)
    with pytest.raises(CheckpointError, match=message):
        ET3D.from_pretrained(ckpt)


def test_a_file_given_as_checkpoint_is_refused(tiny_dir, hash_encoder):
    with pytest.raises(CheckpointError, match=r"model.safetensors' is a file; --ckpt takes the checkpoint folder"):
        ET3D.from_pretrained(tiny_dir / "model.safetensors")


def test_synthesize_needs_one_label_and_seed_per_embedding(model):
    emb = model.encode(["a red cube", "a blue cone"])  # (2, D)
    with pytest.raises(ValueError, match="got 2 embeddings, 1 labels, 2 seeds"):
        model.synthesize(emb, ["a red cube"], [0, 1])


def test_weights_that_do_not_fit_the_config_name_the_tensor(tiny_dir, tmp_path, hash_encoder):
    ckpt = _copy(tiny_dir, tmp_path)
    meta = json.loads((ckpt / "config.json").read_text())
    meta["generator"]["decoder"]["hidden"] = 32
    (ckpt / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"does not load: .*size mismatch for decoder\.hidden"):
        ET3D.from_pretrained(ckpt)


def test_a_config_from_another_schema_is_refused(tiny_dir, tmp_path, hash_encoder):
    ckpt = _copy(tiny_dir, tmp_path)
    meta = json.loads((ckpt / "config.json").read_text())
    meta["schema_version"] = 99
    (ckpt / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"does not load: .*schema 99"):
        ET3D.from_pretrained(ckpt)


def test_a_text_encoder_of_another_width_is_refused(tiny_dir, monkeypatch):
    use_hash_encoder(monkeypatch, 512)
    with pytest.raises(CheckpointError, match=r"trained on text encoder 'minilm' \(384-d\), got 'minilm' \(512-d\)"):
        ET3D.from_pretrained(tiny_dir)


def test_a_text_encoder_that_cannot_load_is_named(tiny_dir, tmp_path):
    ckpt = _copy(tiny_dir, tmp_path)
    meta = json.loads((ckpt / "config.json").read_text())
    meta["generator"]["text_encoder"] = "clip"
    (ckpt / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"needs text encoder 'clip': .*needs a local folder"):
        ET3D.from_pretrained(ckpt)


def test_generation_equals_the_reference_generator_path(model):
    # ET3D runs the packed synthesis; TriplaneGenerator.planes (the training path) is its oracle.
    gen = model("a red cube", seed=7, truncation_psi=0.7)
    emb = model.encode(["a red cube"])  # (1, D)
    G = model.generator
    with torch.no_grad():
        z = G.sample_z(1, torch.Generator().manual_seed(7))
        expected = G.planes(emb, z=z, truncation_psi=0.7)  # (1, 3, C, R, R)
    torch.testing.assert_close(gen.planes, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_generation_is_close_to_fp32_and_deterministic(tiny_dir, hash_encoder, precision):
    config = MeshConfig(grid=32, sigma_level=LEVEL)
    fp32 = ET3D.from_pretrained(tiny_dir, mesh_config=config)("a red cube", seed=3)
    low_model = ET3D.from_pretrained(tiny_dir, mesh_config=config, precision=precision)
    low, again = low_model("a red cube", seed=3), low_model("a red cube", seed=3)
    assert low.planes.dtype == torch.float32 and low.planes.shape == fp32.planes.shape
    torch.testing.assert_close(low.planes, again.planes, rtol=0, atol=0)
    error = float((low.planes - fp32.planes).abs().max() / fp32.planes.abs().max())
    assert 0 < error < 0.05, error  # measured bf16 0.026, fp16 0.0035: rounded, not recomputed in fp32
    assert abs(low.mesh.num_vertices - fp32.mesh.num_vertices) <= 0.05 * fp32.mesh.num_vertices
    assert low.views(2).shape == fp32.views(2).shape


def test_an_unknown_precision_is_refused(tiny_dir, hash_encoder):
    with pytest.raises(OptionError, match="precision must be one of fp32, bf16, fp16, got 'fp8'"):
        ET3D.from_pretrained(tiny_dir, precision="fp8")


@pytest.mark.gpu
def test_generation_on_cuda_matches_the_cpu(tiny_dir, hash_encoder):
    # z is drawn on the CPU, so a seed names the same asset on every device; the arithmetic differs by rounding.
    cpu = ET3D.from_pretrained(tiny_dir, mesh_config=MeshConfig(grid=32, sigma_level=LEVEL))
    gpu = ET3D.from_pretrained(tiny_dir, mesh_config=MeshConfig(grid=32, sigma_level=LEVEL), device="cuda")
    a, b = cpu("a red cube", seed=3), gpu("a red cube", seed=3)
    assert b.planes.device.type == "cuda"
    torch.testing.assert_close(b.planes.cpu(), a.planes, rtol=1e-3, atol=1e-3 * float(a.planes.abs().max()))
    assert abs(b.mesh.num_vertices - a.mesh.num_vertices) <= 0.02 * a.mesh.num_vertices
    assert b.views(2).shape == a.views(2).shape


def test_device_auto_and_cpu_resolve(tiny_dir, hash_encoder):
    model = ET3D.from_pretrained(tiny_dir, device="auto")
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert ET3D.from_pretrained(tiny_dir, device="cpu").device == torch.device("cpu")


def test_a_prompt_far_from_every_training_prompt_warns_naming_the_nearest(tiny_dir, tmp_path, hash_encoder):
    from support.generation import HashTextEncoder

    from student.generate.errors import PromptOutOfReachWarning
    from student.run_layout import load_training_prompts, save_training_prompts

    folder = _copy(tiny_dir, tmp_path)
    assert ET3D.from_pretrained(folder).reach is None  # an older checkpoint: no record, no check
    train = ["a red cube", "a blue sphere"]
    save_training_prompts(folder, train, HashTextEncoder().encode(train).pooled)
    assert load_training_prompts(folder).prompts == train
    model = ET3D.from_pretrained(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.encode(["a blue sphere"])  # a training prompt itself: cosine 1, silent
    # The hash encoder's distinct prompts are near-orthogonal unit vectors: cosine ~0.
    with pytest.warns(
        PromptOutOfReachWarning,
        match=r"'a teapot' is far .* nearest training prompt 'a (red cube|blue sphere)' at cosine similarity -?0\.\d\d \(< 0\.65\)",
    ):
        model.encode(["a teapot"])


def test_training_prompts_round_trip_subsample_and_refuse_a_corrupt_file(tmp_path, monkeypatch):
    import student.run_layout as checkpoint

    monkeypatch.setattr(checkpoint, "MAX_TRAINING_PROMPTS", 3)
    prompts = [f"prompt {i}" for i in range(6)]
    emb = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    checkpoint.save_training_prompts(tmp_path, prompts, emb)
    back = checkpoint.load_training_prompts(tmp_path)
    assert back.prompts == ["prompt 0", "prompt 2", "prompt 4"]
    assert torch.equal(back.embeddings, emb[[0, 2, 4]])
    (tmp_path / checkpoint.TRAINING_PROMPTS).write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="training_prompts.safetensors: unreadable training prompts"):
        checkpoint.load_training_prompts(tmp_path)
