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
import torch.distributed as dist
from torch import nn


def all_reduce_grads(module: nn.Module, world: int) -> None:
    """Average the gradients of `module` over all workers (no-op for a single worker)."""
    if world == 1:
        return
    params = [p for p in module.parameters() if p.grad is not None]
    flat = torch.cat([p.grad.flatten() for p in params])  # one message instead of one per tensor
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad = (flat[offset : offset + n] / world).view_as(p.grad)
        offset += n


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every worker if it is True on any (so all workers stop at the same step)."""
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def check_in_sync(module: nn.Module, world: int) -> None:
    """Raise if the workers' copies of `module` differ (they start equal and apply the same averaged steps)."""
    if world == 1:
        return
    checksum = torch.stack([p.detach().double().sum() for p in module.parameters()]).sum().reshape(1)
    low, high = checksum.clone(), checksum.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError(f"data-parallel workers diverged: parameter checksums range {low.item()} .. {high.item()}")


def _worker(config: dict) -> None:
    import ray.train
    import ray.train.torch

    from student.train.trainer import Trainer

    ctx = ray.train.get_context()
    torch.set_num_threads(config["threads"])
    trainer = Trainer(
        config["plan"], rank=ctx.get_world_rank(), world=ctx.get_world_size(), device=ray.train.torch.get_device()
    )
    trainer.train()


def run_data_parallel(plan: object, workers: int) -> None:
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
