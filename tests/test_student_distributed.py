"""Data-parallel training: gradient averaging, and the trainer on two Ray Train CPU workers (gloo)."""

from __future__ import annotations

import json

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from support.student_data import make_procedural_shards, tiny_plan

from student.run_layout import TRAIN_META, run_checkpoints
from student.train.collectives import all_reduce_grads, any_rank, check_in_sync


def _average_worker(rank: int, world: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = torch.nn.Linear(3, 2)
    model.weight.grad = torch.full((2, 3), float(rank + 1))
    model.bias.grad = torch.full((2,), 10.0 * (rank + 1))
    all_reduce_grads(model, world)
    results[rank] = (
        model.weight.grad.clone(),
        model.bias.grad.clone(),
        any_rank(rank == 1, world, torch.device("cpu")),
    )
    dist.destroy_process_group()


def test_gradients_are_averaged_and_a_stop_flag_reaches_every_worker(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_average_worker, args=(2, str(tmp_path / "init"), results), nprocs=2)
    for rank in range(2):
        weight, bias, stop = results[rank]
        torch.testing.assert_close(weight, torch.full((2, 3), 1.5))
        torch.testing.assert_close(bias, torch.full((2,), 15.0))
        assert stop is True


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


def test_two_ray_train_cpu_workers_train_in_sync(tmp_path):
    from student.train.distributed import run_data_parallel

    shards = make_procedural_shards(tmp_path / "shards")
    run = tmp_path / "00000-tiny"
    run_data_parallel(tiny_plan(shards, run, steps=3, checkpoint_every=0, preview_every=0), workers=2)
    ((step, checkpoint),) = run_checkpoints(run)
    meta = json.loads((checkpoint / TRAIN_META).read_text())
    assert step == 3 and meta["nimg"] == 3 * 4 * 2  # both workers' images count
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in stats if r["kind"] == "train"] == [1, 2, 3]
