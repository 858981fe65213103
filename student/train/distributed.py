"""Data-parallel training through Ray Train: the same `Trainer` on n workers, gradients averaged each step.

Gradients are averaged by hand (one flattened all-reduce per optimiser step) rather than by wrapping G and D
in DistributedDataParallel: a GAN step backpropagates through D into G, detaches, reruns D and adds lazy
regularisers, which DDP's one-forward-one-backward bookkeeping does not fit. Ray Train sets up the process
group (gloo on CPU, NCCL on GPUs); `RAY_ADDRESS` points it at a cluster, otherwise Ray starts locally.

On a cluster every node needs the package installed and the shards and the run directory on storage all
nodes see at the same path (README, "A Ray cluster"). Ray runs each worker in a directory of its own, so
every path is made absolute here, on the driver, before the plan is handed to the workers. A worker that
dies (a lost node, a killed process) makes Ray Train restart the whole group, up to `max_failures` times;
the restarted workers resume from the newest checkpoint in the run directory, which is exact (the trainer
resumes bit for bit). Past that, training stops with one line naming the checkpoint a rerun resumes from.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from student.run_layout import run_checkpoints
from student.train.plan import TrainPlan
from student.train.trainer import Trainer


class DataParallelError(RuntimeError):
    """Ray Train gave up on the workers (more failures than allowed); a rerun resumes from the last checkpoint."""


def absolute_plan(plan: TrainPlan) -> TrainPlan:
    """The plan with every path absolute (shards, run directory, resume point, held-out prompts), resolved
    against the driver's working directory: Ray Train workers run in directories of their own."""
    heldout = plan.config.eval.heldout_file
    config = plan.config
    if heldout and not Path(heldout).is_absolute():
        config = dataclasses.replace(
            config, eval=dataclasses.replace(config.eval, heldout_file=str(Path(heldout).absolute()))
        )
    return dataclasses.replace(
        plan,
        config=config,
        shards=[Path(s).absolute() for s in plan.shards],
        run_dir=Path(plan.run_dir).absolute(),
        resume_from=Path(plan.resume_from).absolute() if plan.resume_from is not None else None,
    )


def restart_plan(plan: TrainPlan) -> TrainPlan:
    """`plan`, resuming from the newest checkpoint of its run if one is newer than its resume point: after Ray
    Train restarts the workers, they continue from the last checkpoint rank 0 wrote instead of the start."""
    checkpoints = run_checkpoints(plan.run_dir) if plan.run_dir.is_dir() else []
    if not checkpoints or checkpoints[-1][1] == plan.resume_from:
        return plan
    return dataclasses.replace(plan, resume_from=checkpoints[-1][1])


def _worker(config: dict) -> None:
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    torch.set_num_threads(config["threads"])
    trainer = Trainer(
        restart_plan(config["plan"]),
        rank=ctx.get_world_rank(),
        world=ctx.get_world_size(),
        device=ray.train.torch.get_device(),
    )
    trainer.train()


def run_data_parallel(plan: TrainPlan, workers: int, max_failures: int = 3) -> None:
    """Run `Trainer(plan).train()` on `workers` Ray Train workers (rank 0 writes the run directory).

    max_failures: worker-group restarts Ray Train may make after a worker dies; each resumes from the newest
    checkpoint. Raises DataParallelError once they are used up.
    """
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if max_failures < 0:
        raise ValueError(f"max_failures must be >= 0, got {max_failures}")
    plan = absolute_plan(plan)
    use_gpu = torch.cuda.is_available()
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        kwargs = {} if address else {"num_cpus": max(os.cpu_count() or 1, workers)}
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", **kwargs)
    threads = max(1, (os.cpu_count() or 1) // workers)
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"plan": plan, "threads": threads},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        # Ray Train's own records go beside the run's checkpoints, on the same shared storage.
        run_config=RunConfig(
            storage_path=str(plan.run_dir / "ray"),
            name="et3d-train",
            failure_config=FailureConfig(max_failures=max_failures),
        ),
    )
    try:
        trainer.fit()
    except ray.train.TrainingFailedError as err:
        checkpoints = run_checkpoints(plan.run_dir) if plan.run_dir.is_dir() else []
        last = checkpoints[-1][1] if checkpoints else "none written yet"
        cause = str(err.__cause__ or err).strip().splitlines()
        raise DataParallelError(
            f"data-parallel training failed after {max_failures} restart(s) ({cause[-1] if cause else 'no cause'}); "
            f"last checkpoint: {last}; rerun the same command to resume from it"
        ) from err
