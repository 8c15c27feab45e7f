"""Translation speed: images/s of the CUT generator (ngf 64, 9 blocks) at 256x256, by precision, batch size
and ``translate --compile`` mode (off: eager; compile: torch.compile of the generator).

What `unpaired translate` spends per image beyond file reading and writing: padding, the generator
(under autocast for bf16/fp16) and cropping, through :class:`unpaired.Translator`. Random weights
(speed does not depend on them). Each cell: median over --repeats timed batches after one warm-up
batch (which, compiled, compiles that shape: its seconds are printed apart). Time on a quiet machine:
a second process halves the figures.

    .venv/bin/python benchmarks/translate_speed.py [--device cpu] [--size 256] [--precisions fp32 bf16]
                                                  [--batch-sizes 1 8] [--modes off compile] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

from unpaired.config import resolve
from unpaired.devices import select_device
from unpaired.inference.translator import Translator
from unpaired.methods import build_generator, preset
from unpaired.nets.init import init_weights


def measure(translator: Translator, batch: int, size: int, repeats: int) -> tuple[float, float]:
    """Images per second: median over ``repeats`` timed calls on ``batch`` images, after one warm-up
    call; and the warm-up's seconds (compilation, for a compiled generator)."""
    x = torch.rand(batch, translator.channels, size, size) * 2 - 1
    t0 = time.perf_counter()
    translator(x)  # warm-up: kernel selection, allocations, compilation
    if translator.device.type == "cuda":
        torch.cuda.synchronize()
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        if translator.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        translator(x)
        if translator.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times), warmup


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    p.add_argument("--modes", nargs="+", default=["off"], choices=["off", "compile"], help="translate --compile")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    device = select_device(args.device)
    cfg = resolve(preset("cut"))
    torch.manual_seed(0)
    G = init_weights(build_generator(cfg), cfg.model.init_gain)
    env = {
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "size": args.size,
    }
    if not args.json:
        # each row as it is measured: under gpu_check's timeout, a run cut off keeps the rows it has
        sys.stdout.reconfigure(line_buffering=True)
        print(
            f"CUT generator, {args.size}x{args.size}, {device}, torch {env['torch']}, {env['threads']} threads, "
            f"{env['cpu']}, load {env['load_1min']}, {env['date']}"
        )
        print("| --compile | precision | batch size | images/s | first call (s) |\n|---|---|---|---|---|")
    rows = []
    for mode in args.modes:
        for precision in args.precisions:
            translator = Translator(G, cfg, device, precision=precision, compile=mode)
            for batch in args.batch_sizes:
                speed, warmup = measure(translator, batch, args.size, args.repeats)
                row = {
                    "mode": mode,
                    "precision": precision,
                    "batch_size": batch,
                    "images_per_sec": speed,
                    "first_call_s": warmup,
                }
                rows.append(row)
                if not args.json:
                    print(f"| {mode} | {precision} | {batch} | {speed:.2f} | {warmup:.1f} |")
    if args.json:
        print(json.dumps({"env": env, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
