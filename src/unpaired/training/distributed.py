"""Data-parallel training across processes (``torchrun``): one process per GPU (or CPU worker).

Every process runs the same model on its own slice of the global batch; gradients are averaged
across processes before each optimizer step, which is DistributedDataParallel's update. The
averaging is done explicitly (one flattened all-reduce per optimizer) rather than by wrapping the
networks in ``DistributedDataParallel``: the models call encoder methods (``G.encode``) besides
``forward``, which DDP's hooks do not see. PatchNCE is computed on each process's own images.
Rank 0 alone logs, validates and writes checkpoints.

A process that dies (a node killed, a machine lost) breaks every exchange: the others get a socket
error at once, or, when its machine went silent without closing its connections, no answer within
``UNPAIRED_DIST_TIMEOUT`` seconds (default 600; PyTorch's own default is 30 minutes). Either way they
stop with :class:`ProcessesLost`, and the run resumes from its last checkpoint when started again.
"""

from __future__ import annotations

import importlib
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from ..errors import ConfigError, UnpairedError, message_line

TIMEOUT_ENV = "UNPAIRED_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0  # longer than rank 0's validation and checkpoint writes, while the others wait


class ProcessesLost(UnpairedError, RuntimeError):
    """An exchange with the other training processes failed (one died, or stopped answering)."""

    def __init__(self, message: str, reason: str = "", timed_out: bool = False):
        super().__init__(message)
        self.reason, self.timed_out = reason or message, timed_out


def timeout_seconds() -> float:
    """How long a process waits for the others at one exchange: ``UNPAIRED_DIST_TIMEOUT`` or 600 s."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds above 0, got {raw!r}; unset it for 600")
    return value


def _reason(error: Exception) -> str:
    """gloo's message without its source-file prefix and advice: 'Connection reset by peer' etc."""
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", message_line(error))
    return text.split(". This is typically caused")[0].rstrip(". ")


@contextmanager
def exchange() -> Iterator[None]:
    """Turn a failed collective (a RuntimeError from gloo or NCCL) into :class:`ProcessesLost`."""
    try:
        yield
    except UnpairedError:
        raise
    except RuntimeError as e:  # torch.distributed.DistError and its subclasses are RuntimeErrors
        reason = _reason(e)
        timed_out = "timed out" in reason.lower() or "timeout" in reason.lower()
        raise ProcessesLost(reason, reason, timed_out) from e


def lost(error: ProcessesLost, info: DistInfo, iteration: int, checkpoint: Path, saved: int | None) -> ProcessesLost:
    """The one-line error for a lost process: what happened, which checkpoint is kept, how to resume."""
    why = error.reason
    if error.timed_out:
        why += f"; no answer within {timeout_seconds():g} s ({TIMEOUT_ENV}: raise it if validation takes longer)"
    again = (
        "start the same command again on every node, or with another number of processes (keep "
        "processes x --batch-size), and training resumes from"
    )
    if not info.is_main:  # rank 0 writes the checkpoints; this process does not know how far it got
        kept = f"{again} the last checkpoint rank 0 wrote ({checkpoint})"
    elif saved is not None:
        kept = f"{checkpoint} holds iteration {saved}: {again} it"
    else:
        kept = "no checkpoint had been written yet: start the same command again on every node"
    return ProcessesLost(
        f"training process rank {info.rank} of {info.world} lost contact with the others after iteration "
        f"{iteration} ({why}): a node died, was stopped or lost its network; {kept}",
        error.reason,
        error.timed_out,
    )


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this package joined the process group (and leaves it in teardown)

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
    owns_group = not dist.is_initialized()  # else the caller's group: the caller ends it
    if owns_group:
        # Imported before the group exists: its functions take `group=group.WORLD` as a default
        # evaluated at import, and torch._dynamo imports it (our step module does, even eager). Imported
        # after, ten defaults hold the group, teardown cannot free it, and gloo's threads outlive it.
        importlib.import_module("torch.distributed.nn.functional")

        timeout = timedelta(seconds=timeout_seconds())
        with exchange():
            dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timeout)
    if use_cuda:
        torch.cuda.set_device(local)
        device_name = f"cuda:{local}"
    elif device_name == "auto":
        device_name = "cpu"
    return DistInfo(rank, world, local, owns_group), device_name


def teardown(info: DistInfo) -> None:
    """Leave the process group :func:`setup` joined, once training has ended on every process.

    Without it the process can abort at exit ("terminate called without an active exception", about
    1 run in 5 with gloo): a gloo worker thread releases its last collectives' tensors while the
    interpreter shuts down, and a tensor whose Python object it still owns needs the GIL, which a
    finalizing interpreter no longer gives (pytorch/pytorch#190489). Destroying the group joins those
    threads first. Only after a clean end: a process that failed alone would wait here for the others."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(params) -> None:
    """All-reduce and average the gradients of ``params`` (those that have one) in one buffer."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    with exchange():
        dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        g.copy_(synced)


def broadcast_module(module: torch.nn.Module) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    with exchange():
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
    with exchange():
        dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def any_across(flag: bool) -> bool:
    """True on every process if it is True on any (e.g. a Ctrl-C seen by one of them)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], device=collective_device())
    with exchange():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def min_max_across(value: int) -> tuple[int, int]:
    """The smallest and the largest of an integer over all processes."""
    t = torch.tensor([value, -value], dtype=torch.int64, device=collective_device())
    with exchange():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return -int(t[1]), int(t[0])


def barrier() -> None:
    if dist.is_initialized():
        with exchange():
            dist.barrier()
