"""Training speed of `unpaired` against the official CUT implementation, in one process, one table.

For each model (CUT, FastCUT), size and precision: ours through
``unpaired.training.profile.profile_training`` (the step ``unpaired train`` uses) and the official
step through ``benchmarks/official_cut.py`` (its ``optimize_parameters``; bf16 = under bf16 autocast,
plus an official "bf16+channels_last" row, the fastest official setting in DESIGN.md). Random
inputs, batch 1, the reference networks; median s/iter of ``--iters`` after ``--warmup``.

The measurements are interleaved: after each timed iteration of ours, one timed iteration of each
official variant runs, so a change of load on a shared machine hits both. Memory comes from a fresh
process per implementation and setting (``--memory subprocess``, the default): steady-state (peak
after warm-up) and one-off (warm-up included), see ``unpaired.training.memory.MemoryMeter``. On the
CPU those are process RSS figures (interpreter and torch included, the same for both sides).

    PYTHONPATH=src python benchmarks/train_speed.py                      # 64 and 128 px, fp32 and bf16
    PYTHONPATH=src python benchmarks/train_speed.py --sizes 256 --device cuda --iters 20 --warmup 5
    PYTHONPATH=src python benchmarks/train_speed.py --json > speed.json

Needs the official checkout in .ref/cut (``git clone https://github.com/taesungp/contrastive-unpaired-translation
.ref/cut``); without it only ours is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from official_cut import DEFAULT_CHECKOUT, official_step  # noqa: E402

from unpaired.devices import select_device  # noqa: E402
from unpaired.methods import preset  # noqa: E402
from unpaired.training.memory import MemoryMeter
from unpaired.training.profile import cpu_name, profile_training  # noqa: E402

REFERENCE_PARAMS = {"G": 11_378_179, "D": 2_764_737, "F": 560_384}
OFFICIAL_PRECISIONS = ("fp32", "bf16")  # the official step under autocast; no fp16 loss scaling there
CL = "bf16+channels_last"  # official only


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def our_config(model: str, size: int, precision: str, compile_mode: str | None):
    cfg = preset(model, crop_size=size, batch_size=1, precision=precision)
    if compile_mode:
        cfg.train.compile = compile_mode
    return cfg


def build_official(model: str, size: int, variant: str, device: torch.device, checkout: Path):
    precision = "bf16" if variant == CL else variant
    # the official PatchSampleF re-wraps a tensor with torch.tensor() every step: harmless, but it warns
    warnings.filterwarnings("ignore", message="To copy construct from a tensor")
    with contextlib.redirect_stdout(sys.stderr):  # the official code prints while building
        return official_step(model, size, device, precision, 1, checkout, channels_last=variant == CL)


# ----------------------------------------------------------------------- memory, one process each
def measure_memory(
    impl: str,
    model: str,
    size: int,
    variant: str,
    device: torch.device,
    warmup: int,
    checkout: Path,
    compile_mode: str | None,
) -> dict:
    """Steady-state and one-off peak memory of one implementation in this (fresh) process."""
    if impl == "ours":
        r = profile_training(
            our_config(model, size, variant, compile_mode), device, iters=2, warmup=warmup, flops=False
        )
        return {"steady": r["peak_memory_bytes"], "oneoff": r["peak_memory_oneoff_bytes"]}
    meter = MemoryMeter(device)
    step, _ = build_official(model, size, variant, device, checkout)
    for i in range(warmup + 2):
        if i == warmup:
            meter.start_steady()
        step()
        sync(device)
        meter.sample()
    return {"steady": meter.steady_bytes(), "oneoff": meter.oneoff_bytes()}


def memory_in_subprocess(impl: str, model: str, size: int, variant: str, args) -> dict | None:
    cmd = [
        sys.executable,
        __file__,
        "--memory-of",
        f"{impl}:{model}:{size}:{variant}",
        "--device",
        args.device,
        "--warmup",
        str(args.warmup),
        "--checkout",
        str(args.checkout),
    ]
    if args.compile:
        cmd += ["--compile", args.compile]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        print(f"memory of {impl} {model} {size} {variant} failed:\n{p.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------- timing, interleaved
def time_group(model: str, size: int, precision: str, device: torch.device, args, official: bool) -> list[dict]:
    """Ours at ``precision`` and the official variants of that precision, interleaved per iteration."""
    variants = (
        ([precision] + ([CL] if precision == "bf16" else [])) if official and precision in OFFICIAL_PRECISIONS else []
    )
    steps, params, times = {}, {}, {v: [] for v in variants}
    for v in variants:
        steps[v], params[v] = build_official(model, size, v, device, args.checkout)
        for _ in range(args.warmup):
            steps[v]()
        sync(device)

    def between():
        for v in variants:
            sync(device)
            t0 = time.perf_counter()
            steps[v]()
            sync(device)
            times[v].append(time.perf_counter() - t0)

    load_before = load()
    ours = profile_training(
        our_config(model, size, precision, args.compile), device, args.iters, args.warmup, flops=False, between=between
    )
    load_after = load()
    rows = [
        {
            "model": model,
            "size": size,
            "precision": precision,
            "ours_sec_per_iter": ours["sec_per_iter"],
            "ours_step": ours["step"],
            "ours_params": ours["params"],
            "official_sec_per_iter": statistics.median(times[precision]) if precision in times else None,
            "official_params": params.get(precision),
            "load_before": load_before,
            "load_after": load_after,
        }
    ]
    if CL in times:
        rows.append(
            {
                **rows[0],
                "precision": CL,
                "ours_precision": "bf16",
                "official_sec_per_iter": statistics.median(times[CL]),
                "official_params": params[CL],
            }
        )
    steps.clear()  # free the official models before the next group
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def fmt_mem(m: dict | None) -> str:
    if not m or m.get("steady") is None:
        return "-"
    return f"{m['steady'] / 2**30:.2f} / {m['oneoff'] / 2**30:.2f}"


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["cut", "fastcut"], choices=["cut", "fastcut"])
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 128])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--iters", type=int, default=5, help="timed iterations of each (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations of each first (default 2)")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", choices=["auto", "off", "compile"], help="our train.compile (default: the preset's)")
    p.add_argument(
        "--memory",
        choices=["subprocess", "off"],
        default="subprocess",
        help="measure memory in a fresh process per implementation and setting (default), or not",
    )
    p.add_argument("--checkout", type=Path, default=DEFAULT_CHECKOUT, help="official CUT checkout (default .ref/cut)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: IMPL:MODEL:SIZE:VARIANT in this process
    args = p.parse_args()
    device = select_device(args.device)
    args.device = str(device)

    if args.memory_of:
        impl, model, size, variant = args.memory_of.split(":")
        r = measure_memory(impl, model, int(size), variant, device, args.warmup, args.checkout, args.compile)
        print(json.dumps(r))
        return

    official = (args.checkout / "models" / "cut_model.py").is_file()
    header = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_start": load(),
        "iters": args.iters,
        "warmup": args.warmup,
        "batch_size": 1,
        "official_checkout": str(args.checkout) if official else None,
    }
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    log(
        f"torch {header['torch']}, {header['threads']} threads, CPU {header['cpu']}"
        + (f", GPU {header['device_name']}" if header["device_name"] else "")
        + f", device {device}; "
        f"{header['date']}; load average {header['load_start']} (1, 5, 15 min); batch 1, median of {args.iters} "
        f"after {args.warmup} warm-up, ours and official interleaved per iteration"
    )
    if not official:
        log(
            f"no official CUT checkout in {args.checkout}: only ours is timed. Get it with\n"
            f"  git clone https://github.com/taesungp/contrastive-unpaired-translation {args.checkout}"
        )

    rows = []
    for model in args.models:
        for size in args.sizes:
            for precision in args.precisions:
                if precision == "fp16" and device.type != "cuda":
                    log(f"skipping fp16 (needs CUDA) for {model} {size}")
                    continue
                new = time_group(model, size, precision, device, args, official)
                rows += new
                for r in new:  # progress, on stderr
                    print(
                        f"  {model} {size} {r['precision']}: ours {r['ours_sec_per_iter']:.3f} s/iter, official "
                        f"{fmt(r['official_sec_per_iter'])} s/iter (load {r['load_before']} -> {r['load_after']})",
                        file=sys.stderr,
                    )

    # parameter counts: official == ours == the reference's
    mismatched = [
        r
        for r in rows
        if r["ours_params"] != REFERENCE_PARAMS
        or (r["official_params"] is not None and r["official_params"] != r["ours_params"])
    ]
    header["params_equal_reference"] = not mismatched
    header["params_official_checked"] = any(r["official_params"] is not None for r in rows)

    if args.memory == "subprocess":
        for r in rows:
            variant = r.get("ours_precision", r["precision"])
            if r["precision"] != CL:
                r["ours_memory"] = memory_in_subprocess("ours", r["model"], r["size"], variant, args)
            else:  # the same ours as the bf16 row
                r["ours_memory"] = next(
                    x["ours_memory"]
                    for x in rows
                    if (x["model"], x["size"], x["precision"]) == (r["model"], r["size"], "bf16")
                )
            if r["official_sec_per_iter"] is not None:
                r["official_memory"] = memory_in_subprocess("official", r["model"], r["size"], r["precision"], args)
    header["load_end"] = load()

    fp32 = {(r["model"], r["size"]): r["official_sec_per_iter"] for r in rows if r["precision"] == "fp32"}
    for r in rows:
        off32 = fp32.get((r["model"], r["size"]))
        r["speedup_vs_official_fp32"] = off32 / r["ours_sec_per_iter"] if off32 else None
        r["speedup_same_precision"] = (
            r["official_sec_per_iter"] / r["ours_sec_per_iter"] if r["official_sec_per_iter"] else None
        )
    if args.json:
        print(json.dumps({"header": header, "rows": rows}, indent=2))
        return

    if mismatched:
        print(
            "PARAMETER COUNTS DIFFER:\n"
            + "\n".join(
                f"  {r['model']} {r['size']}: ours {r['ours_params']}, official {r['official_params']}"
                for r in mismatched
            )
        )
    else:
        print(
            "parameters, ours = official = reference"
            if header["params_official_checked"]
            else "parameters, ours = reference (official not checked)",
            end=": ",
        )
        print(", ".join(f"{k} {v:,}" for k, v in REFERENCE_PARAMS.items()))
    mem = "memory GiB steady / one-off" + (" (process RSS)" if device.type != "cuda" else " (CUDA allocated)")
    print()
    print(
        f"| model | size | precision | official s/iter | ours s/iter | official fp32 / ours | official / ours "
        f"(same precision) | official {mem} | ours {mem} | load 1-min (start -> end) |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        ours = fmt(r["ours_sec_per_iter"]) + (" (bf16)" if r["precision"] == CL else "")
        print(
            f"| {r['model']} | {r['size']} | {r['precision']} | {fmt(r['official_sec_per_iter'])} | {ours} | "
            f"{fmt(r['speedup_vs_official_fp32'], '.2f')} | {fmt(r['speedup_same_precision'], '.2f')} | "
            f"{fmt_mem(r.get('official_memory'))} | {fmt_mem(r.get('ours_memory'))} | "
            f"{r['load_before'].split()[0]} -> {r['load_after'].split()[0]} |"
        )
    print(
        f"\nload average at the end: {header['load_end']}; ours' step: "
        + ", ".join(sorted({r["ours_step"] for r in rows}))
        + "; bf16+channels_last: official only (ours bf16 repeated)"
    )


if __name__ == "__main__":
    main()
