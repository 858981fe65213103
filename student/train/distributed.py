"""Data-parallel training through Ray Train: the same `Trainer` on n workers, gradients averaged each step.

Gradients are averaged by hand (one flattened all-reduce per optimiser step) rather than by wrapping G and D
in DistributedDataParallel: a GAN step backpropagates through D into G, detaches, reruns D and adds lazy
regularisers, which DDP's one-forward-one-backward bookkeeping does not fit. Ray Train sets up the process
group (gloo on CPU, NCCL on GPUs); `RAY_ADDRESS` points it at a cluster, otherwise Ray starts locally.
"""

from __future__ import annotations

import os
import tempfile

import torch

from student.train.plan import TrainPlan
from student.train.trainer import Trainer


def _worker(config: dict) -> None:
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    torch.set_num_threads(config["threads"])
    trainer = Trainer(
        config["plan"], rank=ctx.get_world_rank(), world=ctx.get_world_size(), device=ray.train.torch.get_device()
    )
    trainer.train()


def run_data_parallel(plan: TrainPlan, workers: int) -> None:
    """Run `Trainer(plan).train()` on `workers` Ray Train workers (rank 0 writes the run directory)."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

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
        run_config=RunConfig(storage_path=tempfile.mkdtemp(prefix="et3d-ray-"), name="et3d-train"),
    )
    trainer.fit()
