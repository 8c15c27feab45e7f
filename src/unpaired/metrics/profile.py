"""Speed and memory of a training step on random inputs (no dataset needed)."""
from __future__ import annotations

import resource
import statistics
import time
from typing import Any

import torch

from ..amp import Precision
from ..config import Config, resolve
from ..step import TrainStep


def peak_memory_bytes(device: torch.device) -> int:
    """Peak CUDA memory allocated, or the process's peak resident set size elsewhere."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_training(cfg: Config, device: torch.device, iters: int = 10, warmup: int = 3) -> dict[str, Any]:
    """Median seconds per training iteration after ``warmup`` iterations, peak memory, parameters."""
    from ..models import build_model, param_counts

    resolve(cfg)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg).to(device)
    optimizers = model.make_optimizers(cfg.train.lr, (cfg.train.beta1, cfg.train.beta2), cfg.train.adam_eps)
    step = TrainStep(model, optimizers, Precision(cfg.train.precision, device))
    shape = (cfg.data.batch_size, cfg.data.channels, cfg.data.crop_size, cfg.data.crop_size)
    batch = {k: torch.rand(shape, device=device) * 2 - 1 for k in ("A", "B")}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + iters):
        _sync(device)
        t0 = time.perf_counter()
        step(batch)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {
        "model": cfg.model.name, "size": cfg.data.crop_size, "batch_size": cfg.data.batch_size,
        "precision": cfg.train.precision, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "sec_per_iter": statistics.median(times), "sec_per_iter_min": min(times), "iters": iters, "warmup": warmup,
        "peak_memory_bytes": peak_memory_bytes(device),
        "memory_kind": "cuda max allocated" if device.type == "cuda" else "process peak RSS",
        "params": param_counts(model),
    }
