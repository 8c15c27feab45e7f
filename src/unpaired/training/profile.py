"""Speed, memory and FLOPs of a training step on random inputs (no dataset needed).

Memory: :class:`~unpaired.training.memory.MemoryMeter` (steady-state and one-off figures).

FLOPs: one extra, untimed iteration of the eager step under
:class:`torch.utils.flop_counter.FlopCounterMode` (convolutions, matrix products and their
backward passes; element-wise work and optimizer updates are not counted).
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from typing import Any, Callable

import torch

from ..amp import Precision
from ..config import Config, ConfigError, resolve
from ..models import param_counts
from .memory import MemoryMeter
from .parts import build_parts
from .step import TrainStep

# ------------------------------------------------------------------ FLOPs
# Dense (no 2:4 sparsity) peak TFLOP/s by torch.cuda.get_device_name substring, first match wins
# (more specific names first). Sources: NVIDIA's H100 datasheet (SXM5 and PCIe/NVL columns), H200
# datasheet and A100 datasheet; the tensor-core figures there are quoted "with sparsity", halved
# here. "fp32" is the non-tensor-core FP32 rate; "tf32" applies to fp32 convolutions and matrix
# products when TF32 is allowed (torch allows it for cuDNN convolutions by default).
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.0}),
    ("H100 NVL", {"bf16": 835.0, "fp16": 835.0, "tf32": 418.0, "fp32": 60.0}),
    ("H200 NVL", {"bf16": 835.0, "fp16": 835.0, "tf32": 418.0, "fp32": 60.0}),
    ("H100", {"bf16": 989.0, "fp16": 989.0, "tf32": 495.0, "fp32": 67.0}),  # SXM5 (e.g. "H100 80GB HBM3")
    ("H200", {"bf16": 989.0, "fp16": 989.0, "tf32": 495.0, "fp32": 67.0}),  # SXM
    ("A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),  # SXM4 and PCIe, 40 and 80 GB
]


def peak_dtype(precision: str, device: torch.device) -> str:
    """The arithmetic whose peak applies: bf16/fp16 under autocast; tf32 for fp32 on CUDA when
    cuDNN may use TF32 (torch's default; convolutions dominate these networks); fp32 otherwise."""
    if precision in ("bf16", "fp16"):
        return precision
    if device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "fp32"


def table_peak_tflops(device_name: str, dtype: str) -> tuple[float, str] | None:
    """(dense peak TFLOP/s, matched table entry) for a CUDA device name, or None when unknown."""
    for key, peaks in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return peaks[dtype], key
    return None


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs that ``fn()`` performs, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415 - only when FLOPs are counted

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


# ------------------------------------------------------------------ profile
def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), or what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compiled_graphs() -> int:
    """How many graphs torch.compile has compiled in this process (0 before torch._dynamo is loaded)."""
    if "torch._dynamo" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters  # noqa: PLC0415 - loaded already (checked above)

    return int(counters["stats"]["unique_graphs"])


def profile_training(
    cfg: Config,
    device: torch.device,
    iters: int = 10,
    warmup: int = 3,
    *,
    peak_tflops: float | None = None,
    flops: bool = True,
    between: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Median seconds per training iteration after ``warmup`` iterations, images/s, steady-state and
    one-off peak memory, FLOPs per iteration and achieved TFLOP/s, parameter counts.

    The model, optimizers and step come from :func:`~.parts.build_parts` (``cfg.train.compile`` picks
    the step), as in training. ``peak_tflops`` overrides the device table (:data:`PEAK_TFLOPS`). ``flops=False``
    skips the extra counted iteration. ``between()``, when given, runs after each timed iteration,
    outside the timing (e.g. another implementation's step, to interleave two measurements); its
    transient memory is left out of the steady figure, but not what it keeps allocated.

    A timed iteration during which torch.compile compiled a new graph (a path the warm-up did not
    take, e.g. FastCUT's flipped images) measures compiling, not the step: it is run again, at most
    ``iters`` times in all, and the result's ``recompiled_iters`` and a step note say so."""
    if iters < 1 or warmup < 0:
        raise ConfigError(f"profile needs --iters >= 1 and --warmup >= 0, got {iters} and {warmup}")
    resolve(cfg)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.train.seed)
    meter = MemoryMeter(device)
    precision = Precision(cfg.train.precision, device)
    notes: list[str] = []
    parts = build_parts(cfg, precision, log=notes.append)
    model, optimizers, step = parts.model, parts.optimizers, parts.step
    shape = (cfg.data.batch_size, cfg.data.channels, cfg.data.crop_size, cfg.data.crop_size)
    batch = {k: torch.rand(shape, device=device) * 2 - 1 for k in ("A", "B")}
    times: list[float] = []
    recompiled, i = 0, 0
    while len(times) < iters and i < warmup + 2 * iters:
        if i == warmup:
            meter.start_steady()
        graphs = compiled_graphs()
        _sync(device)
        t0 = time.perf_counter()
        step(batch)
        _sync(device)
        elapsed = time.perf_counter() - t0
        meter.sample()
        compiled = compiled_graphs() > graphs
        if i >= warmup:
            if compiled:
                recompiled += 1
            else:
                times.append(elapsed)
            if between is not None:
                between()
                meter.skip()
        i += 1
    if recompiled:
        notes.append(
            f"profile: {recompiled} timed iteration(s) compiled new code (a path the {warmup} warm-up iteration(s) "
            f"did not take) and {'were run again' if len(times) == iters else 'are left out'}; raise --warmup"
        )
    if not times:
        raise ConfigError(
            f"every timed iteration compiled new code ({recompiled} of them): this step recompiles each time "
            "(TORCH_LOGS=recompiles says why); profile it with --compile off"
        )
    sec = statistics.median(times)
    result: dict[str, Any] = {
        "model": cfg.model.name,
        "size": cfg.data.crop_size,
        "batch_size": cfg.data.batch_size,
        "precision": cfg.train.precision,
        "compile": cfg.train.compile,
        "step": getattr(step, "name", type(step).__name__),
        "step_notes": notes,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sec_per_iter": sec,
        "sec_per_iter_min": min(times),
        "iters": len(times),
        "warmup": warmup,
        "recompiled_iters": recompiled,
        "images_per_sec": cfg.data.batch_size / sec,
        # steady-state (after warm-up) and one-off (warm-up included) peaks: see the module docstring
        "peak_memory_bytes": meter.steady_bytes(),
        "peak_memory_oneoff_bytes": meter.oneoff_bytes(),
        "peak_memory_reserved_bytes": meter.reserved_bytes(),
        "memory_kind": meter.kind,
        "memory_oneoff_kind": meter.oneoff_kind,
        "params": param_counts(model),
    }
    result.update(
        flops=None,
        flops_counted_on=None,
        tflops_per_sec=None,
        peak_tflops=None,
        peak_tflops_dtype=peak_dtype(cfg.train.precision, device),
        peak_tflops_source=None,
        peak_fraction=None,
    )
    if flops:
        # the eager step does the same arithmetic as a compiled one and is what the counter sees reliably
        counted = step if type(step) is TrainStep else TrainStep(model, optimizers, precision)
        n = count_flops(lambda: counted(batch))
        result.update(flops=n, flops_counted_on="eager step", tflops_per_sec=n / sec / 1e12)
    if peak_tflops is not None:
        result.update(peak_tflops=float(peak_tflops), peak_tflops_source="--peak-tflops")
    elif device.type == "cuda":
        found = table_peak_tflops(result["device_name"], result["peak_tflops_dtype"])
        if found is not None:
            result.update(peak_tflops=found[0], peak_tflops_source=f"table: {found[1]}")
    if result["peak_tflops"] and result["tflops_per_sec"] is not None:
        result["peak_fraction"] = result["tflops_per_sec"] / result["peak_tflops"]
    return result
