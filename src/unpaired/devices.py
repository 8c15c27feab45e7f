"""Choosing the device a command runs on, and how deterministic its kernels must be."""

from __future__ import annotations

import os

import torch

from .errors import ConfigError

# what --device and train.device accept (auto: cuda, then mps, then cpu; see select_device)
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def settle_vector_math() -> None:
    """Let MKL's vector-math library (VML) choose its CPU kernels on one thread, before any parallel op.

    PyTorch's CPU tanh, exp, log, ... call MKL VML, whose first call detects the CPU and caches the
    result in a global without a lock. A thread that calls VML while another is still filling it can
    read a half-made value and run the AVX2 low-accuracy ("enhanced performance") kernel instead of
    the accurate one: one thread's half of the generator's first tanh then differed by ~3e-6, and
    that process's run took another path (seen in 2-10% of launches). One call on a 1-element tensor
    (serial: below the parallel grain) fills the cache for every VML function of the process."""
    torch.tanh(torch.zeros(1))


def device_names() -> str:
    """The accepted device names in words: "auto, cpu, cuda, cuda:N or mps"."""
    return ", ".join(DEVICES[:-1]) + " or " + DEVICES[-1]


def select_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist. Every command selects
    its device first, which also settles MKL's kernel choice (:func:`settle_vector_math`)."""
    settle_vector_math()
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use {device_names()}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but this PyTorch sees no CUDA GPU; use --device cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {name!r} was asked for but MPS is not available; use --device cpu or auto")
    return dev


def configure_determinism(device: torch.device, deterministic: bool) -> None:
    """Set PyTorch's process-wide kernel choices for training on ``device`` (``train.deterministic``).

    On the CPU, results are already bit-exact at a fixed thread count, so only the flag's request
    to PyTorch changes. ``deterministic=True``: ``torch.use_deterministic_algorithms(True)`` (an op
    without a deterministic implementation raises instead of running), cuDNN's benchmark search off
    and its deterministic algorithms on, and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (unless already
    set), which cuBLAS needs for reproducible matrix products; reflection padding then takes its
    deterministic path (:mod:`unpaired.nets.padding`). ``False``: on CUDA, cuDNN benchmarks its
    kernels for the fixed input sizes (fastest, not bitwise reproducible)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
