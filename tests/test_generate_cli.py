"""`et3d-gen` end to end on a tiny random generator, its error paths and exit codes, and its lazy imports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support.generation import save_tiny_generator, use_hash_encoder
from typer.testing import CliRunner

from student.generate.cli import app

REPO = Path(__file__).resolve().parents[1]
LEVEL = "0.1"  # cuts blobs out of the random tiny generator's fog (see test_generate_api)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_generator(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture
def run(monkeypatch, tiny_dir):
    """Invoke the CLI in process with a stand-in text encoder; returns (exit code, stdout, stderr)."""
    use_hash_encoder(monkeypatch, 384)

    def invoke(*args: str, ckpt: Path | None = tiny_dir):
        argv = [*args, *(["--ckpt", str(ckpt)] if ckpt else [])]
        result = CliRunner().invoke(app, argv)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_prompt_to_ply_with_samples_and_previews(run, tmp_path):
    from plyfile import PlyData

    flags = f"-o {tmp_path}/cube.ply --num 2 --grid 32 --level {LEVEL} --preview {tmp_path}/cube.png"
    code, out, err = run("a red cube", *flags.split())
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["cube_000.ply", "cube_000.png", "cube_001.ply", "cube_001.png"]
    assert "text encoding" in out and "forward pass" in out and "meshing" in out
    assert str(tmp_path / "cube_001.ply") in out
    first = PlyData.read(str(tmp_path / "cube_000.ply"))
    second = PlyData.read(str(tmp_path / "cube_001.ply"))
    assert first["vertex"].count > 100 and first["vertex"].count != second["vertex"].count
    # --seed 1 alone reproduces sample 1 of --seed 0 --num 2.
    code, _, err = run("a red cube", *f"-o {tmp_path}/again.ply --seed 1 --grid 32 --level {LEVEL}".split())
    assert code == 0, err
    again = PlyData.read(str(tmp_path / "again.ply"))
    np.testing.assert_array_equal(again["vertex"].data, second["vertex"].data)


def test_bf16_generation_writes_a_mesh_close_to_fp32s(run, tmp_path):
    from plyfile import PlyData

    counts = {}
    for precision in ("fp32", "bf16"):
        flags = f"-o {tmp_path}/{precision}.ply --grid 32 --level {LEVEL} --precision {precision}"
        code, out, err = run("a red cube", *flags.split())
        assert code == 0, err
        assert f"loaded generator ({precision})" in out
        counts[precision] = PlyData.read(str(tmp_path / f"{precision}.ply"))["vertex"].count
    assert counts["fp32"] > 100 and abs(counts["bf16"] - counts["fp32"]) <= 0.05 * counts["fp32"], counts


def test_interpolation_writes_a_mesh_per_step_and_a_strip(run, tmp_path):
    from PIL import Image

    flags = f"--steps 3 -o {tmp_path}/morph.obj --grid 32 --level {LEVEL}"
    code, out, err = run("--interpolate", "a red cube", "a blue cone", *flags.split())
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["morph_000.obj", "morph_001.obj", "morph_002.obj", "morph_strip.png"]
    assert Image.open(tmp_path / "morph_strip.png").size == (3 * 16, 16)


def test_prompts_file_and_turntable(run, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two prompts\na red cube\n\na blue cone with many many many words\n")
    flags = f"--prompts-file {prompts} -o {tmp_path}/a.glb --grid 32 --level {LEVEL} --turntable {tmp_path}/t.gif"
    code, out, err = run(*flags.split(), "--faces", "300")
    assert code == 0, err
    assert {"a_000.glb", "a_001.glb", "t_000.gif", "t_001.gif"} <= set(os.listdir(tmp_path))
    assert re.search(r"'a red cube' seed 0: \d+ vertices, (2[7-9]\d|300) faces", out), out
    assert "'a blue cone with many many many words' seed 0" in out
    # The stand-in encoder takes 8 tokens; the second prompt has 7 words + 2 special tokens.
    assert "warning: minilm takes 8 tokens; 'a blue cone with many many many words'... has 10 and is truncated" in err


def test_texture_writes_a_textured_obj_beside_its_material_and_image(run, tmp_path):
    import trimesh

    flags = f"-o {tmp_path}/t.obj --grid 32 --level {LEVEL} --faces 400 --texture 64 --preview {tmp_path}/t.png"
    code, out, err = run("a red cube", *flags.split())
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["t.mtl", "t.obj", "t.png", "t_texture.png"]
    back = trimesh.load(tmp_path / "t.obj", force="mesh", process=False)
    assert isinstance(back.visual, trimesh.visual.TextureVisuals) and back.visual.material.image.size == (64, 64)
    assert len(back.faces) <= 400


def test_dry_run_prints_the_plan_and_writes_nothing(run, tmp_path):
    code, out, _ = run("a red cube", "-o", str(tmp_path / "c.ply"), "--num", "2", "--dry-run", ckpt=None)
    assert code == 0
    assert "'a red cube' seed 1 -> " + str(tmp_path / "c_001.ply") in out
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["", "-o", "{d}/a.ply"], 2, "prompt 0 is empty"),
        (["a cube", "-o", "{d}/a.stl"], 2, "unknown format '.stl'; accepted: .ply, .glb, .obj"),
        (["a cube", "-o", "{d}/missing/a.ply"], 2, "directory '{d}/missing' does not exist"),
        (["a cube", "-o", "{d}/a.ply", "--preview", "{d}/p.gif"], 2, "accepted: .png, .jpg, .jpeg"),
        (["-o", "{d}/a.ply"], 2, "give exactly one of PROMPT, --prompts-file or --interpolate (got none)"),
        (["a", "--prompts-file", "{d}/p.txt", "-o", "{d}/a.ply"], 2, "(got PROMPT, --prompts-file)"),
        (["--prompts-file", "{d}/none.txt", "-o", "{d}/a.ply"], 2, "prompt corpus not found"),
        (["a cube", "-o", "{d}/a.ply", "--grid", "30", "--level", "0"], 2, "sigma_level must be a finite density > 0"),
        (["a cube", "-o", "{d}/a.ply", "--text-precision", "fp16"], 2, "one of auto, fp32, bf16, got 'fp16'"),
        (["a cube", "-o", "{d}/a.ply", "--device", "gpu0"], 2, "unknown device 'gpu0'; accepted: cpu, cuda"),
        (["a cube", "-o", "{d}/a.ply", "--precision", "half"], 2, "--precision must be one of fp32, bf16, fp16"),
        (["--interpolate", "a", "b", "--num", "2", "-o", "{d}/a.ply"], 2, "--num does not combine with --interpolate"),
    ],
    ids=[
        "empty-prompt",
        "suffix",
        "missing-dir",
        "preview-suffix",
        "no-prompt",
        "two-sources",
        "no-file",
        "level",
        "precision",
        "device",
        "gen-precision",
        "num-interpolate",
    ],
)
def test_bad_requests_fail_fast_with_one_line(run, tmp_path, args, code, message):
    result_code, out, err = run(*[a.format(d=tmp_path) for a in args])
    assert result_code == code
    assert message.format(d=tmp_path) in " ".join(err.split())
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused_in_one_line(run, tmp_path):
    code, _, err = run("a cube", "-o", str(tmp_path / "a.ply"), "--device", "cuda")
    assert code == 2 and "device 'cuda': CUDA is not available" in err and "use cpu" in err


def test_checkpoint_problems_exit_3_and_name_the_file(run, tmp_path):
    code, _, err = run("a cube", "-o", str(tmp_path / "a.ply"), ckpt=tmp_path / "nowhere")
    assert code == 3 and "does not exist; train one with `make train`" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    (bad / "model.safetensors").write_bytes(b"garbage!")
    code, _, err = run("a cube", "-o", str(tmp_path / "a.ply"), ckpt=bad)
    assert code == 3 and f"{bad / 'model.safetensors'}: not a valid safetensors file" in err
    assert err.count("\n") == 1  # one line, no traceback
    assert not (tmp_path / "a.ply").exists()


def test_no_surface_exits_4_and_writes_nothing(run, tmp_path):
    code, _, err = run("a red cube", "-o", str(tmp_path / "a.ply"), "--grid", "32")  # default level 2.08 > fog
    assert code == 4
    assert "no surface" in err and "nothing written for" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_refused(run, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = run("a cube", "-o", str(locked / "a.ply"))
    assert code == 2 and "is not writable" in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux procfs")
def test_a_directory_nobody_can_create_files_in_is_refused(run):
    # procfs refuses new files even to root, so this runs wherever the suite does.
    code, _, err = run("a cube", "-o", "/proc/a.ply")
    assert code == 2 and "directory '/proc' is not writable" in err


def test_help_lists_examples():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Examples" in result.stdout and "--interpolate" in result.stdout and ".glb" in result.stdout


def test_generation_end_to_end_imports_no_teacher_code(tiny_dir, tmp_path):
    """A real run (real minilm encoder, real checkpoint) in a fresh interpreter, then a look at sys.modules."""
    script = f"""
import json, sys
import student.generate.cli as cli
after_import = sorted(sys.modules)
try:
    cli.app(["a red cube", "-o", {str(tmp_path / "a.ply")!r}, "--ckpt", {str(tiny_dir)!r}, "--grid", "16",
             "--level", "{LEVEL}"])
except SystemExit as e:
    code = e.code
heavy = ("teacher_dump", "ray", "diffusers", "transformers", "sentence_transformers", "webdataset")
found = lambda names: sorted(m for m in names if m.split(".")[0] in heavy)
print(json.dumps({{"code": code, "at_import": found(after_import), "after_run": found(sys.modules),
                  "torch_at_import": "torch" in after_import}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "at_import": [], "after_run": [], "torch_at_import": False}, proc.stderr
    assert (tmp_path / "a.ply").stat().st_size > 1000


def test_a_prompt_far_from_the_training_prompts_is_named_with_its_nearest(run, tiny_dir, tmp_path):
    import shutil

    from support.generation import HashTextEncoder

    from student.run_layout import save_training_prompts

    ckpt = shutil.copytree(tiny_dir, tmp_path / "ckpt")
    save_training_prompts(ckpt, ["a red cube"], HashTextEncoder().encode(["a red cube"]).pooled)
    flags = f"-o {tmp_path}/x.ply --grid 32 --level {LEVEL}"
    code, _, err = run("a red cube", *flags.split(), ckpt=ckpt)
    assert code == 0 and "far from" not in err, err
    code, _, err = run("a teapot", *flags.split(), ckpt=ckpt)
    assert code == 0, err
    assert re.search(r"warning: prompt 'a teapot' is far .* nearest training prompt 'a red cube' at cosine", err), err
