"""A real 2-node Ray cluster on this machine: the dump across both nodes, a 2-worker Ray Train job given
relative paths, and a worker killed mid-training that Ray Train restarts from the last checkpoint.

The nodes are started with `ray start` (a head and a second node, one CPU and a custom resource each, their
files under tmp_path) and torn down by killing exactly the processes of this cluster: `ray stop` would
stop every Ray session on the machine, other users' included. Slow (minutes: three node and worker-group
start-ups of several seconds each even on an idle machine); run with `--runslow` or ET3D_SLOW=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from pipeline.shard_check import check_shards
from teacher_dump.dump import DumpConfig, run_dump

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
PROMPTS = ["a red cube", "a blue sphere", "a green cone", "a yellow torus"]
STEPS, EVERY = 20, 5  # training steps and checkpoint interval of both training runs

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_processes(root: Path) -> list[psutil.Process]:
    """Every process of the cluster whose files live under `root`, and their descendants (the workers)."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.pid != os.getpid() and any(str(root) in part for part in proc.info["cmdline"] or []):
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return list(found.values())


def _stop(root: Path) -> None:
    procs = _cluster_processes(root)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)


def _start_node(cmd: list[str], node_root: Path, env: dict[str, str]) -> None:
    """`ray start` with its files under `node_root`. Ray gives a node 30 s to register, which a loaded
    machine can miss: a failed start is cleaned up and tried again (3 tries) in a fresh directory."""
    for attempt in range(3):
        directory = node_root.with_name(f"{node_root.name}{attempt}")
        done = subprocess.run([*cmd, f"--temp-dir={directory}"], env=env, capture_output=True, text=True, timeout=300)
        if done.returncode == 0:
            return
        _stop(directory)
    raise AssertionError(f"ray start failed three times: {done.stdout[-2000:]}{done.stderr[-2000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(env for drivers, cluster root): a head and a second node, one CPU and one custom resource each."""
    root = tmp_path_factory.mktemp("r")  # short: Ray puts unix sockets under it (107-byte limit)
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),  # what an installed package gives every node
        "RAY_AUTH_MODE": "disabled",  # a token left in ~/.ray by another session must not switch auth on
        "RAY_USAGE_STATS_ENABLED": "0",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("RAY_ADDRESS", None)
    ray_start = [str(RAY), "start", "--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats"]
    ray_start.append("--include-log-monitor=false")  # one process less per node; nothing here reads worker logs
    try:
        head = [f"--port={port}", "--include-dashboard=false", '--resources={"node_a": 1}']
        _start_node([*ray_start, "--head", *head], root / "h", env)
        _start_node([*ray_start, f"--address=127.0.0.1:{port}", '--resources={"node_b": 1}'], root / "s", env)
        yield {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, root
    finally:
        _stop(root)


@pytest.fixture(scope="module")
def shards(cluster, tmp_path_factory) -> Path:
    """The dump, run by this process as a Ray driver of the cluster: 16 samples in 4 shards."""
    env, _ = cluster
    work = tmp_path_factory.mktemp("work")
    (work / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    mp = pytest.MonkeyPatch()
    for key in ("RAY_ADDRESS", "RAY_AUTH_MODE", "PYTHONPATH"):
        mp.setenv(key, env[key])
    try:
        import ray

        ray.init(address=env["RAY_ADDRESS"], logging_level="ERROR", log_to_driver=False)
        nodes = [n for n in ray.nodes() if n["Alive"]]
        resources = ray.cluster_resources()
        # Left connected: run_dump uses this session and does not shut it down.
        config = DumpConfig(
            prompts=work / "prompts.txt", out=work / "shards", samples=4, views=2, resolution=16, workers=2,
            shard_size=4, batch_size=2,
        )  # fmt: skip
        report = run_dump(config, Console(file=open(os.devnull, "w")), show_progress=False)  # noqa: SIM115
        ray.shutdown()
    finally:
        mp.undo()
    assert len(nodes) == 2 and resources.get("node_a") == 1 and resources.get("node_b") == 1
    assert resources["CPU"] == 2
    # Two actors of one CPU each on nodes of one CPU each: one actor per node, and both took shards.
    assert report.ok and report.written_shards == 4 and len(report.workers) == 2
    check = check_shards(work / "shards", expected_samples_per_prompt=4)
    assert check.ok and check.num_samples == 16, check.summary()
    return work / "shards"


def _train_cmd(run_root: str) -> list[str]:
    """et3d-train with paths relative to its working directory (Ray runs workers elsewhere)."""
    return [
        sys.executable, "-m", "student.train.cli", "--data", "shards", "--out", run_root, "--preset", "tiny",
        "--workers", "2", "--steps", str(STEPS), f"--schedule.checkpoint_every={EVERY}", "--schedule.keep_checkpoints=5",
        "--schedule.preview_every=0", "--data.num_workers=0", "--eval.heldout_file=heldout.txt",
    ]  # fmt: skip


def _workdir(shards: Path) -> Path:
    work = shards.parent
    (work / "heldout.txt").write_text("a pink pyramid\n")
    return work


def _tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    return {
        **load_file(str(checkpoint / "train_state.safetensors")),
        **load_file(str(checkpoint / "model.safetensors")),
    }


def _steps_logged(run: Path) -> list[int]:
    stats = run / "stats.jsonl"
    if not stats.is_file():
        return []
    return [json.loads(line)["step"] for line in stats.read_text().splitlines() if '"kind": "train"' in line]


@pytest.fixture(scope="module")
def reference_run(cluster, shards) -> Path:
    env, _ = cluster
    work = _workdir(shards)
    done = subprocess.run(_train_cmd("runs_a"), cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work / "runs_a" / "00000-tiny"


def test_two_worker_training_on_two_nodes_with_relative_paths(reference_run):
    last = reference_run / "checkpoints" / f"step-{STEPS:08d}"
    assert last.is_dir(), sorted(p.name for p in (reference_run / "checkpoints").iterdir())
    config = json.loads((last / "train_config.json").read_text())
    # The relative held-out file was resolved on the driver; rank 0 read it from its own directory.
    assert Path(config["eval"]["heldout_file"]).is_absolute() and config["eval"]["heldout_file"].endswith("heldout.txt")
    assert _steps_logged(reference_run) == list(range(1, STEPS + 1))


def test_a_killed_worker_is_restarted_from_the_last_checkpoint_and_ends_where_an_unbroken_run_does(
    cluster, shards, reference_run
):
    env, root = cluster
    work = _workdir(shards)
    run = work / "runs_b" / "00000-tiny"
    job = subprocess.Popen(
        _train_cmd("runs_b"), cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    killed = None
    try:
        deadline = time.monotonic() + 1500  # a loaded 2-core machine needs minutes
        while time.monotonic() < deadline and job.poll() is None:
            # Wait for the first checkpoint and two logged steps past it, so that a restart repeats them.
            if (run / "checkpoints" / f"step-{EVERY:08d}").is_dir() and max(_steps_logged(run), default=0) >= EVERY + 2:
                workers = [
                    p for p in _cluster_processes(root) if p.is_running() and "RayTrainWorker" in " ".join(p.cmdline())
                ]
                assert len(workers) == 2, [p.cmdline() for p in workers]
                killed = max(workers, key=lambda p: p.pid)
                os.kill(killed.pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        output, _ = job.communicate(timeout=600)
    finally:
        if job.poll() is None:
            job.kill()
    assert killed is not None, "training ended before a worker could be killed"
    assert job.returncode == 0, output[-4000:]
    steps = _steps_logged(run)
    repeated = sorted({s for s in steps if steps.count(s) > 1})
    # Restarted from a checkpoint (not from scratch): the first repeated step follows a checkpoint.
    assert repeated and (repeated[0] - 1) % EVERY == 0 and repeated[0] > EVERY, steps
    assert sorted(set(steps)) == list(range(1, STEPS + 1))
    a = _tensors(reference_run / "checkpoints" / f"step-{STEPS:08d}")
    b = _tensors(run / "checkpoints" / f"step-{STEPS:08d}")
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ after the restart, e.g. {differ[:3]}"
