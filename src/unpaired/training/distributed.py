"""Data-parallel training across processes (``torchrun``): one process per GPU (or CPU worker).

Every process runs the same model on its own slice of the global batch; gradients are averaged
across processes before each optimizer step, which is DistributedDataParallel's update. The
averaging is done explicitly (one flattened all-reduce per optimizer) rather than by wrapping the
networks in ``DistributedDataParallel``: the models call encoder methods (``G.encode``) besides
``forward``, which DDP's hooks do not see. PatchNCE is computed on each process's own images.
Rank 0 alone logs, validates and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_name: str) -> tuple[DistInfo, str]:
    """Join the process group torchrun describes (WORLD_SIZE > 1); returns the info and the device
    this process should use (cuda:LOCAL_RANK under CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device_name
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
        device_name = f"cuda:{local}"
    elif device_name == "auto":
        device_name = "cpu"
    return DistInfo(rank, world, local), device_name


def average_gradients(params) -> None:
    """All-reduce and average the gradients of ``params`` (those that have one) in one buffer."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        g.copy_(synced)


def broadcast_module(module: torch.nn.Module) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def collective_device() -> torch.device:
    """Where tensors for a collective must live: NCCL reduces CUDA tensors only, gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_across(values: dict[str, float]) -> dict[str, float]:
    """Average a dict of floats over all processes (for logging)."""
    if not dist.is_initialized():
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=collective_device())
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def any_across(flag: bool) -> bool:
    """True on every process if it is True on any (e.g. a Ctrl-C seen by one of them)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
