"""Memory of a training process, as ``profile`` and the training loop report it.

Two memory figures, because they answer different questions:

- **steady-state**: what training needs iteration after iteration. On CUDA the peak allocated over
  the timed iterations, the peak statistics being reset after the warm-up; elsewhere the largest
  *current* resident set size (``/proc/self/statm``) read after each timed iteration.
- **one-off**: the peak over everything, warm-up included, where cudnn.benchmark's algorithm search
  and the first allocations happen. On CUDA the peak allocated (and, separately, reserved) including
  the warm-up; elsewhere the process's peak RSS (VmHWM, or ``getrusage``), which can only grow in a
  process.

On the CPU both are process figures (interpreter, torch and allocator caches included), and the
steady one is read *between* iterations: activations freed by the end of an iteration count only as
far as the allocator keeps their pages. :class:`MemoryMeter` computes both, for ``profile`` and for
a training loop.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any

import torch


def peak_memory_bytes(device: torch.device) -> int:
    """One-off peak: CUDA memory allocated since the last reset of the peak statistics, or the
    process's peak resident set size elsewhere. See :class:`MemoryMeter` for the steady-state figure."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return process_peak_rss_bytes()


def process_peak_rss_bytes() -> int:
    """This process's peak resident set size: Linux's VmHWM (/proc/self/status), else getrusage.

    VmHWM belongs to the process's own address space. getrusage's ru_maxrss also keeps the peak of
    what ran before ``exec``: a benchmark started by a 900 MB Python process reports at least 900 MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, IndexError, ValueError):
        pass
    rss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return rss if sys.platform == "darwin" else rss * 1024  # macOS reports bytes, Linux KiB


def current_rss_bytes() -> int | None:
    """This process's resident set size now (Linux ``/proc/self/statm``); None where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


class MemoryMeter:
    """Steady-state and one-off peak memory of a training loop on ``device``.

    Usage (``profile_training`` does exactly this; a Trainer can too)::

        meter = MemoryMeter(device)          # reset=True clears CUDA's peak statistics first
        for each iteration:
            if it is the first after the warm-up: meter.start_steady()
            step(batch); meter.sample()      # after every training iteration, warm-up included
            ... validation / sampling ...; meter.skip()   # keep other work out of the steady figure
        meter.steady_bytes(), meter.oneoff_bytes(), meter.reserved_bytes()

    On CUDA, :meth:`sample` and :meth:`skip` reset the peak statistics after folding them into the
    one-off figure (so ``torch.cuda.max_memory_allocated`` alone is no longer the process's peak:
    ask the meter). Both are host-side queries, no device synchronisation; on the CPU
    :meth:`sample` reads one small file and :meth:`skip` does nothing (RSS cannot be attributed).
    """

    def __init__(self, device: torch.device, reset: bool = True):
        self.device = device
        self.cuda = device.type == "cuda"
        self._steady: int | None = None
        self._oneoff = 0
        self._reserved = 0
        if self.cuda and reset:
            torch.cuda.reset_peak_memory_stats(device)

    @property
    def kind(self) -> str:
        """What the steady-state figure measures."""
        if self.cuda:
            return "cuda max allocated after warm-up"
        return "max process RSS after each timed iteration"

    @property
    def oneoff_kind(self) -> str:
        if self.cuda:
            return "cuda max allocated incl. warm-up"
        return "process peak RSS (VmHWM)"

    def _fold(self) -> int:
        """CUDA: fold the peaks since the last reset into the one-off figures, reset, return the peak."""
        peak = int(torch.cuda.max_memory_allocated(self.device))
        self._oneoff = max(self._oneoff, peak)
        self._reserved = max(self._reserved, int(torch.cuda.max_memory_reserved(self.device)))
        torch.cuda.reset_peak_memory_stats(self.device)
        return peak

    def start_steady(self) -> None:
        """Begin the steady-state figure here (after the warm-up iterations)."""
        self.skip()
        self._steady = 0

    def sample(self) -> None:
        """Call after each training iteration (warm-up included): it counts in the steady figure once
        started, and always in the one-off figure."""
        if self.cuda:
            peak = self._fold()
        else:
            peak = current_rss_bytes() or 0
            self._oneoff = max(self._oneoff, peak)
        if self._steady is not None:
            self._steady = max(self._steady, peak)

    def skip(self) -> None:
        """Leave what ran since the last call out of the steady figure (it stays in the one-off)."""
        if self.cuda:
            self._fold()

    def steady_bytes(self) -> int | None:
        """Peak over the sampled iterations since :meth:`start_steady` (None before, or without /proc)."""
        return self._steady or None

    def oneoff_bytes(self) -> int:
        """Peak over everything this meter saw (CUDA), or the process's peak RSS (and at least the
        largest RSS sampled: the kernel's counters are approximate, and getrusage's high-water mark was
        seen here to trail a /proc/self/statm reading by a few dozen pages)."""
        if self.cuda:
            return max(self._oneoff, int(torch.cuda.max_memory_allocated(self.device)))
        return max(self._oneoff, peak_memory_bytes(self.device))

    def reserved_bytes(self) -> int | None:
        """CUDA: the caching allocator's peak reserved memory (None elsewhere)."""
        if not self.cuda:
            return None
        return max(self._reserved, int(torch.cuda.max_memory_reserved(self.device)))

    def summary(self) -> dict[str, Any]:
        """summary.json's memory entries: the steady figure (the one-off peak for runs too short for
        one), the one-off peak, and what the first one measures."""
        steady = self.steady_bytes()
        return {
            "peak_memory_bytes": steady or self.oneoff_bytes(),
            "peak_memory_oneoff_bytes": self.oneoff_bytes(),
            "memory_kind": self.kind if steady else self.oneoff_kind,
        }
