"""The collectives data-parallel training needs: averaged gradients, a shared stop, a sync check, and gathering
each worker's data position for a checkpoint.

Each is a no-op for a single worker, so the trainer calls them unconditionally. Gradients are averaged by hand
(one flattened all-reduce per optimiser step) rather than by wrapping G and D in DistributedDataParallel: see
`student/train/distributed.py`, which launches the workers.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def all_reduce_grads(module: nn.Module, world: int) -> None:
    """Average the gradients of `module` over all workers (no-op for a single worker)."""
    if world == 1:
        return
    params = [p for p in module.parameters() if p.grad is not None]
    for p, grad in zip(params, all_reduce_mean([p.grad for p in params], world), strict=True):
        p.grad = grad


def all_reduce_mean(tensors: list[torch.Tensor], world: int) -> list[torch.Tensor]:
    """The mean of each tensor over all workers (the tensors themselves for a single worker), in one flattened
    all-reduce instead of one per tensor."""
    if world == 1:
        return tensors
    flat = torch.cat([t.flatten() for t in tensors])
    dist.all_reduce(flat)
    flat = flat / world
    out, offset = [], 0
    for t in tensors:
        out.append(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every worker if it is True on any (so all workers stop at the same step)."""
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_ints(values: tuple[int, ...], world: int, device: torch.device) -> list[tuple[int, ...]]:
    """Every worker's `values`, by rank, on every worker (each worker's own data position, for the checkpoint)."""
    if world == 1:
        return [tuple(values)]
    mine = torch.tensor(values, dtype=torch.int64, device=device)
    gathered = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    return [tuple(int(v) for v in t.tolist()) for t in gathered]


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
