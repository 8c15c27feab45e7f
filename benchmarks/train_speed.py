"""Seconds per training iteration (median after warm-up) and peak memory of CUT/FastCUT.

Random inputs, batch 1, reference-size networks. Run with nothing else on the machine:

    .venv/bin/python benchmarks/train_speed.py --sizes 64 128 --models cut fastcut --precisions fp32 bf16

Reference on this 2-core CPU (DESIGN.md, official code, torch 2.14.1): CUT 64 px 0.69 s, CUT 128 px
1.8-1.9 s (bf16 + channels_last 1.0 s), FastCUT 128 px 1.09 s, CUT 256 px 7.2 s, FastCUT 256 px 3.5 s.
"""
from __future__ import annotations

import argparse
import json

import torch

from unpaired.config import preset
from unpaired.metrics.profile import profile_training
from unpaired.train import select_device

OFFICIAL_CPU = {("cut", 64): 0.69, ("cut", 128): 1.85, ("fastcut", 128): 1.09, ("cut", 256): 7.2, ("fastcut", 256): 3.5}


def time_model(name: str, size: int, precision: str, device: torch.device, iters: int, warmup: int) -> dict:
    cfg = preset(name)
    cfg.data.crop_size, cfg.train.precision = size, precision
    r = profile_training(cfg, device, iters, warmup)
    r["peak_memory_GiB"] = r["peak_memory_bytes"] / 2 ** 30
    r["official_cpu_sec_per_iter"] = OFFICIAL_CPU.get((name, size)) if device.type == "cpu" else None
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["cut", "fastcut"])
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    p.add_argument("--precisions", nargs="+", default=["fp32"])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    device = select_device(args.device)
    rows = [time_model(m, s, pr, device, args.iters, args.warmup)
            for m in args.models for s in args.sizes for pr in args.precisions]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'model':8} {'size':>4} {'prec':5} {'s/iter':>7} {'official':>8} {'peak GiB':>8}  device")
    for r in rows:
        off = r["official_cpu_sec_per_iter"]
        print(f"{r['model']:8} {r['size']:4d} {r['precision']:5} {r['sec_per_iter']:7.3f} "
              f"{(f'{off:.2f}' if off else '-'):>8} {r['peak_memory_GiB']:8.2f}  {r['device']}")
    if device.type == "cpu":
        print("peak GiB on the CPU is the process's peak RSS so far: it only grows from row to row")


if __name__ == "__main__":
    main()
