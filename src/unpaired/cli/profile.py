"""``unpaired profile``: seconds per training iteration, memory and FLOPs."""

from __future__ import annotations

import argparse
import json
import sys

from ..devices import select_device
from ..methods import build_config
from ..training.profile import profile_training
from . import options
from .options import flag_settings

PROFILE_FLAGS = {
    "size": "data.crop_size",
    "batch_size": "data.batch_size",
    "precision": "train.precision",
    "compile": "train.compile",
}


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def format_profile(r: dict) -> str:
    """The one-line human summary of :func:`unpaired.metrics.profile.profile_training`'s result."""
    line = (
        f"{r['model']} {r['size']}x{r['size']} batch {r['batch_size']} {r['precision']} on {r['device_name']} "
        f"({r['step']} step, {r['threads']} threads): {r['sec_per_iter']:.3f} s/iter (median of {r['iters']} "
        f"after {r['warmup']} warm-up), {r['images_per_sec']:.2f} images/s; memory {_gib(r['peak_memory_bytes'])} "
        f"steady, {_gib(r['peak_memory_oneoff_bytes'])} one-off"
    )
    if r.get("peak_memory_reserved_bytes") is not None:
        line += f", {_gib(r['peak_memory_reserved_bytes'])} reserved"
    line += f" ({'cuda allocated' if r['device'].startswith('cuda') else 'process RSS'})"
    if r.get("flops"):
        line += f"; {r['flops'] / 1e9:,.1f} GFLOP/iter, {r['tflops_per_sec']:.3g} TFLOP/s"
        if r.get("peak_fraction") is not None:
            line += (
                f" = {100 * r['peak_fraction']:.2f}% of {r['peak_tflops']:g} TFLOP/s "
                f"({r['peak_tflops_dtype']} peak, {r['peak_tflops_source']})"
            )
    return line + "; parameters " + ", ".join(f"{k} {v:,}" for k, v in r["params"].items())


def cmd_profile(args: argparse.Namespace) -> int:
    cfg = build_config(args.model, settings=flag_settings(args, PROFILE_FLAGS), overrides=args.set or [])
    r = profile_training(
        cfg, select_device(args.device), args.iters, args.warmup, peak_tflops=args.peak_tflops, flops=not args.no_flops
    )
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        for note in r["step_notes"]:
            print(note, file=sys.stderr)
        print(format_profile(r))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser(
        "profile",
        help="seconds per training iteration, images/s, memory and FLOPs on random inputs",
        description="Median seconds per iteration after warm-up (synchronised on CUDA) and images/s; "
        "peak memory after warm-up (steady-state) and including it (one-off): CUDA max "
        "allocated (and reserved), or on the CPU the largest current RSS after each timed "
        "iteration and the process's peak RSS; FLOPs of one extra iteration "
        "(torch FlopCounterMode), achieved TFLOP/s and the fraction of the device's peak "
        "when known; parameter counts.",
    )
    options.add_model(pr, default="cut", help="method preset (default cut)")
    pr.add_argument("--size", type=int, help="crop size (default: the preset's, 256 for CUT)")
    pr.add_argument("--batch-size", type=int, help="images per iteration (default: the preset's, 1 for CUT)")
    pr.add_argument("--iters", type=int, default=10, help="timed iterations (default 10)")
    pr.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="untimed iterations first (default 3); a timed iteration that compiles new code (a path of a "
        "compiled step the warm-up missed) is run again instead of timed",
    )
    options.add_precision(pr, help="autocast precision (default fp32)")
    options.add_step_mode(pr, help="how the training step runs (train.compile; default auto), as in training")
    pr.add_argument(
        "--peak-tflops",
        type=float,
        metavar="X",
        help="the device's peak TFLOP/s for the fraction reached (default: a table of known GPUs)",
    )
    pr.add_argument("--no-flops", action="store_true", help="skip the extra FLOP-counted iteration")
    options.add_device(pr)
    options.add_set(pr, help="override a setting (repeatable)")
    options.add_json(pr)
    pr.set_defaults(func=cmd_profile)
