"""Data-parallel training: gradient averaging, and the trainer on two Ray Train CPU workers (gloo)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from support.student_data import make_procedural_shards, tiny_plan

from student.run_layout import TRAIN_META, run_checkpoints
from student.train.batch_stream import DataPosition
from student.train.collectives import all_reduce_grads, all_reduce_mean, any_rank, check_in_sync


def _average_worker(rank: int, world: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = torch.nn.Linear(3, 2)
    model.weight.grad = torch.full((2, 3), float(rank + 1))
    model.bias.grad = torch.full((2,), 10.0 * (rank + 1))
    all_reduce_grads(model, world)
    # The learned prior's moments (a vector and a matrix) are averaged the same way.
    mean, second = all_reduce_mean([torch.full((2,), float(rank)), torch.full((2, 2), 4.0 * rank)], world)
    results[rank] = (
        model.weight.grad.clone(),
        model.bias.grad.clone(),
        any_rank(rank == 1, world, torch.device("cpu")),
        mean,
        second,
    )
    dist.destroy_process_group()


def test_gradients_and_moments_are_averaged_and_a_stop_flag_reaches_every_worker(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_average_worker, args=(2, str(tmp_path / "init"), results), nprocs=2)
    for rank in range(2):
        weight, bias, stop, mean, second = results[rank]
        torch.testing.assert_close(weight, torch.full((2, 3), 1.5))
        torch.testing.assert_close(bias, torch.full((2,), 15.0))
        assert stop is True
        torch.testing.assert_close(mean, torch.full((2,), 0.5))
        torch.testing.assert_close(second, torch.full((2, 2), 2.0))


def _sync_worker(rank: int, world: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)  # parameter checksum 6 on every worker
        model.bias.zero_()
    check_in_sync(model, world)  # equal copies pass
    if rank == 1:
        with torch.no_grad():
            model.weight[0, 0] += 0.5  # this worker's copy drifts: checksum 6.5
    try:
        check_in_sync(model, world)
        results[rank] = None
    except RuntimeError as e:
        results[rank] = str(e)
    dist.destroy_process_group()


def test_workers_whose_parameters_differ_all_stop_naming_the_checksums(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_sync_worker, args=(2, str(tmp_path / "init"), results), nprocs=2)
    expected = "data-parallel workers diverged: parameter checksums range 6.0 .. 6.5"
    assert [results[0], results[1]] == [expected, expected]  # both ranks raise, not only the one that drifted


# A Ray race at shutdown (ray-project/ray#44810) can abort the driver process with exit status 1 after the work
# is done, printing nothing: it took a whole pytest run down once (2026-12-02, 1 of 3 full runs). The Ray Train
# test therefore drives Ray from a child process, and tolerates that one crash, recognised in Ray's driver log.
KNOWN_RAY_SHUTDOWN_CRASH = "publisher_id is empty"


def _ray_train_child(shards: Path, run: Path, ray_dir: str) -> None:
    import ray

    from student.train.distributed import run_data_parallel

    ray.init(include_dashboard=False, logging_level="ERROR", num_cpus=max(os.cpu_count() or 1, 2), _temp_dir=ray_dir)
    run_data_parallel(tiny_plan(shards, run, steps=3, checkpoint_every=0, preview_every=0), workers=2)
    ray.shutdown()


def test_two_ray_train_cpu_workers_train_in_sync(tmp_path):
    shards = make_procedural_shards(tmp_path / "shards")
    run = tmp_path / "00000-tiny"
    ray_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    child = mp.get_context("spawn").Process(target=_ray_train_child, args=(shards, run, ray_dir))
    try:
        child.start()
        child.join(timeout=300)
        if child.exitcode is None:
            child.kill()
        if child.exitcode != 0:
            logs = "".join(p.read_text(errors="replace") for p in Path(ray_dir).rglob("python-core-driver-*.log"))
            assert KNOWN_RAY_SHUTDOWN_CRASH in logs, f"the Ray driver process ended with {child.exitcode}"
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    ((step, checkpoint),) = run_checkpoints(run)
    meta = json.loads((checkpoint / TRAIN_META).read_text())
    assert step == 3 and meta["nimg"] == 3 * 4 * 2  # both workers' images count
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in stats if r["kind"] == "train"] == [1, 2, 3]


def _train_worker(rank: int, world: int, init_file: str, plan, results) -> None:
    from student.train.trainer import Trainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    trainer = Trainer(plan, rank=rank, world=world, progress_bar=False)
    trainer.train()
    results[rank] = (trainer.stream.position, {k: v.clone() for k, v in trainer.G.state_dict().items()})
    dist.destroy_process_group()


def _train(plan, tmp_path, name: str) -> dict:
    results = mp.Manager().dict()
    mp.spawn(_train_worker, args=(2, str(tmp_path / f"init-{name}"), plan, results), nprocs=2)
    return dict(results)


QUIET = {"checkpoint_every": 0, "preview_every": 0, "eval_every": 0}


@pytest.fixture
def uneven_shards(tmp_path):
    """5 shards of 4 samples, batch 4: rank 0 of 2 reads 3 shards (3 batches an epoch), rank 1 reads 2 (2 batches),
    so after 3 steps rank 0 stands at (epoch 0, batch 3) and rank 1 at (epoch 1, batch 1)."""
    shards = make_procedural_shards(tmp_path / "shards", seeds=5, per_shard=4)
    assert len(list(shards.glob("*.tar"))) == 5
    return shards


def test_a_two_worker_checkpoint_records_each_workers_own_data_position(uneven_shards, tmp_path):
    ended = _train(tiny_plan(uneven_shards, tmp_path / "b", steps=3, **QUIET), tmp_path, "b")
    ((_, checkpoint),) = run_checkpoints(tmp_path / "b")
    meta = json.loads((checkpoint / TRAIN_META).read_text())
    assert meta["data_by_rank"] == [{"epoch": 0, "batch": 3}, {"epoch": 1, "batch": 1}]
    assert [ended[r][0] for r in range(2)] == [DataPosition(0, 3), DataPosition(1, 1)]


@pytest.mark.slow  # three 2-process runs: ~35 s of CPU
def test_each_data_parallel_worker_resumes_where_it_was_and_the_run_matches_an_uninterrupted_one(
    uneven_shards, tmp_path
):
    straight = _train(tiny_plan(uneven_shards, tmp_path / "a", steps=5, **QUIET), tmp_path, "a")
    _train(tiny_plan(uneven_shards, tmp_path / "b", steps=3, **QUIET), tmp_path, "b1")
    ((_, checkpoint),) = run_checkpoints(tmp_path / "b")
    plan = tiny_plan(uneven_shards, tmp_path / "b", resume_from=checkpoint, steps=5, **QUIET)
    resumed = _train(plan, tmp_path, "b2")
    expected = [DataPosition(1, 2), DataPosition(2, 1)]  # rank 0: 3 + 2 batches; rank 1: 2 + 2 + 1
    assert [resumed[r][0] for r in range(2)] == [straight[r][0] for r in range(2)] == expected
    a, b = straight[0][1], resumed[0][1]
    assert all(torch.equal(a[k], b[k]) for k in a), "G differs from the uninterrupted run after a 2-worker resume"
    final = json.loads((run_checkpoints(tmp_path / "b")[-1][1] / TRAIN_META).read_text())
    assert final["step"] == 5 and final["data_by_rank"] == [{"epoch": 1, "batch": 2}, {"epoch": 2, "batch": 1}]


def test_a_checkpoint_resumed_with_another_worker_count_restarts_the_data_order_at_the_next_epoch():
    from student.train.state import _resume_position

    meta = {"data_by_rank": [{"epoch": 0, "batch": 3}, {"epoch": 1, "batch": 1}]}
    assert [_resume_position(meta, r, 2) for r in range(2)] == [DataPosition(0, 3), DataPosition(1, 1)]
    assert _resume_position(meta, 0, 1) == DataPosition(2, 0)
    assert [_resume_position(meta, r, 3) for r in range(3)] == [DataPosition(2, 0)] * 3
    older = {"data": {"epoch": 4, "batch": 2}}  # a checkpoint written before positions were kept per worker
    assert _resume_position(older, 0, 1) == DataPosition(4, 2)
