"""The app's work without the web: generate and interpolate on a tiny generator, and every bad input's message."""

from __future__ import annotations

import numpy as np
import pytest
from support.generation import save_tiny_generator, use_hash_encoder

from student.app.session import MAX_PROMPT_CHARS, AppError, Session, check_prompt, enlarged
from student.mesh.config import MeshConfig

LEVEL = 0.1  # a random tiny generator is a thin fog; this level cuts blobs out of it


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_generator(tmp_path_factory.mktemp("ckpt") / "tiny", rgb_logits=(3.0, -3.0, -3.0))


@pytest.fixture
def session(tiny_dir, monkeypatch, tmp_path) -> Session:
    use_hash_encoder(monkeypatch, 384)
    return Session.load(tiny_dir, tmp_path / "files", mesh_config=MeshConfig(grid=32, sigma_level=LEVEL))


def test_generate_writes_the_viewer_glb_turntable_previews_and_downloads(session):
    import trimesh

    result = session.generate("a red cube", seed=1, samples=2, truncation=0.7)
    mesh = trimesh.load(result.glb, force="mesh")
    assert len(mesh.faces) == result.faces > 100
    # The decoder's colour biases were tinted red: the viewer's mesh is red.
    mean = mesh.visual.vertex_colors[:, :3].astype(float).mean(0)
    assert mean[0] > 200 and mean[1] < 40 and mean[2] < 40, mean
    names = sorted(p.name for p in result.downloads)
    assert names == [f"sample_{i}_seed_{1 + i}.{ext}" for i in range(2) for ext in ("glb", "obj", "ply")]
    assert len(result.previews) == 2 and all(p.is_file() for p in result.previews)
    from PIL import Image

    gif = Image.open(result.turntable)
    assert gif.n_frames == 24 and min(gif.size) >= 256  # 16-px renders enlarged for the page
    t = result.timings
    assert min(t.encode, t.forward, t.mesh, t.export) > 0
    assert t.to_shown_mesh == pytest.approx(t.encode + t.forward + t.mesh + t.export)
    assert "text to shown mesh" in t.markdown(2)


def test_faces_and_texture_options_reach_the_files(session):
    import trimesh

    result = session.generate("a red cube", seed=0, max_faces=500, texture=256)
    assert result.faces <= 500
    mesh = trimesh.load(result.glb, force="mesh")
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    assert {p.suffix for p in result.downloads} == {".glb", ".obj", ".mtl", ".png", ".ply"}


def test_interpolation_ends_are_the_two_prompts(session):
    import trimesh

    def vertices(result):
        return trimesh.load(result.glb, force="mesh", process=False).vertices

    start = vertices(session.interpolate("a red cube", "a blue sphere", 0.0, seed=2))
    end = vertices(session.interpolate("a red cube", "a blue sphere", 1.0, seed=2))
    a = vertices(session.generate("a red cube", seed=2))
    b = vertices(session.generate("a blue sphere", seed=2))
    # Slerp at t = 0 / 1 is the end embedding up to rounding: the same surface (vertex count, box) to a cell.
    cell = 2 / 32
    for ours, theirs in ((start, a), (end, b)):
        assert abs(len(ours) - len(theirs)) <= 0.01 * len(theirs)
        np.testing.assert_allclose([ours.min(0), ours.max(0)], [theirs.min(0), theirs.max(0)], atol=cell)
    # ... and the two prompts are different assets.
    assert abs(len(a) - len(b)) > 0.05 * len(a) or np.abs(a.mean(0) - b.mean(0)).max() > cell


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.generate(""), "The prompt is empty: describe an object, e.g. 'a red cube'."),
        (lambda s: s.generate("   \n "), "The prompt is empty"),
        (lambda s: s.generate("a " * 150), f"is 299 characters long; at most {MAX_PROMPT_CHARS}"),
        (
            lambda s: s.generate("a blue cone with many many many words"),
            "too long for the text encoder: minilm takes 8",
        ),
        (lambda s: s.generate("a cube", seed=-1), "seed must be a whole number in [0, 2147483647], got -1"),
        (lambda s: s.generate("a cube", samples=9), "number of samples must be a whole number in [1, 8], got 9"),
        (lambda s: s.generate("a cube", truncation=1.5), "truncation must lie in [0.0, 1.0], got 1.5"),
        (lambda s: s.generate("a cube", texture=300), "texture size must be one of 0, 256, 512, 1024, got 300"),
        (lambda s: s.interpolate("a cube", "", 0.5), "The second prompt is empty"),
        (lambda s: s.interpolate("a cube", "a cone", 2), "interpolation position must lie in [0.0, 1.0], got 2"),
    ],
    ids=["empty", "blank", "over-long", "truncated", "seed", "samples", "truncation", "texture", "second", "position"],
)
def test_bad_input_is_one_line_for_the_page(session, call, message):
    with pytest.raises(AppError) as caught:
        call(session)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_unloadable_checkpoint_is_a_message_not_a_crash(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"")
    session = Session.load(broken, tmp_path / "files")
    assert session.model is None and "not readable JSON" in session.load_error
    assert session.description.startswith("**No model:** The checkpoint could not be loaded")
    with pytest.raises(AppError, match="The checkpoint could not be loaded: .*config.json: not readable JSON"):
        session.generate("a red cube")
    missing = Session.load(tmp_path / "nowhere", tmp_path / "files")
    assert "does not exist" in missing.load_error


def test_prompts_are_normalised_and_small_renders_enlarged():
    assert check_prompt("  a   red\ncube ") == "a red cube"
    big = enlarged(np.zeros((3, 16, 20, 3), np.uint8))
    assert big.shape == (3, 256, 320, 3)
    assert enlarged(np.zeros((1, 300, 300, 3), np.uint8)).shape == (1, 300, 300, 3)
