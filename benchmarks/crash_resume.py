"""Does kill -9 change what training computes?

Trains one small CPU run twice with the same command (only ``--out`` differs): once straight
through, and once SIGKILLed at ``--kills`` random moments, restarted after each kill (the restart
resumes from ``checkpoints/latest.pt``). Then compares the two final checkpoints leaf by leaf:
every tensor of the model state, the optimizer and LR-schedule states, the loss scaler, the data
position and the RNG states, and the logged losses. Prints ``10/10 kills, bit-exact`` or the first
difference (its name and largest absolute difference).

    PYTHONPATH=src python3 benchmarks/crash_resume.py                  # 10 kills, 300 iterations, 1 thread
    PYTHONPATH=src python3 benchmarks/crash_resume.py --kills 20 --seed 3 --threads 2 --keep

The run: CUT (``--model``), 32 px crops, ngf/ndf 8, ``--num-workers 0``, a checkpoint every
``--save-every`` iterations, on generated 40x40 images (10 in trainA, 8 in trainB) or ``--data``;
the epochs are chosen so that the run crosses into the LR-decay phase half-way. Every iteration
is logged, so the logged losses are compared too and each kill's progress line says where it hit.
Every process runs with ``OMP_NUM_THREADS=--threads``: bitwise results are promised at a fixed
thread count only.

Kill moments come from ``random.Random(--seed)``: about 30% of the kills come at a random moment
of the start-up (imports, restore; its length measured on the straight run), the others at a
random point of a random iteration among the next 1.6 x (iterations left) / (kills left + 1) (at
most 0.8 of what is left), found by reading metrics.jsonl: the kills are spread over the run
whatever the machine's load, and none comes after the end. Now and then one lands while a checkpoint is being
written: its progress
line notes the temporary file left behind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image

import unpaired
from unpaired.data.images import list_images

START_UP_SHARE = 0.3  # share of the kills aimed at start-up and restore rather than at training
# checkpoint entries that describe the computation (the config and the wall-clock time do not)
COMPARED = ("model", "optimizers", "schedulers", "scaler", "progress", "rng", "validation", "collapse")


def make_data(root: Path, seed: int) -> Path:
    """trainA with 10 and trainB with 8 random 40x40 RGB images."""
    rng = np.random.default_rng(seed)
    for side, n in (("A", 10), ("B", 8)):
        folder = root / f"train{side}"
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return root


def train_command(args: argparse.Namespace, data: Path, out: Path) -> list[str]:
    per_epoch = max(len(list_images(data / "trainA")), len(list_images(data / "trainB")))
    epochs = max(1, math.ceil(args.iters / per_epoch / 2))  # half constant LR, half decay
    return [
        sys.executable,
        "-m",
        "unpaired",
        "train",
        "--model",
        args.model,
        "--data",
        str(data),
        "--out",
        str(out),
        "--size",
        "32",
        "--set",
        "model.ngf=8",
        "--set",
        "model.ndf=8",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--seed",
        str(args.seed),
        "--iters",
        str(args.iters),
        "--epochs",
        str(epochs),
        "--epochs-decay",
        str(epochs),
        "--save-every",
        str(args.save_every),
        "--sample-every",
        "0",
        "--set",
        "train.log_every=1",
        "--quiet",
    ]


def child_env(threads: int) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    src = str(Path(unpaired.__file__).resolve().parents[1])  # the children import this same package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    return env


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # its own process group, so the kill reaches everything it started; output to a file, not a pipe
    # nobody reads while it runs
    with open(log, "a") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def finish(proc: subprocess.Popen, what: str, log: Path) -> None:
    if proc.wait() != 0:
        sys.exit(f"{what} failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")


def last_logged_iteration(run: Path, stale_inode: int | None = None) -> int | None:
    """The last iteration in metrics.jsonl; None before the file exists, or while it is still the
    file ``stale_inode`` (a restart replaces it, dropping lines after the checkpoint it resumes)."""
    path = run / "metrics.jsonl"
    try:
        if os.stat(path).st_ino == stale_inode:
            return None
        lines = path.read_text().splitlines()
        return json.loads(lines[-1])["iter"] if lines else None
    except (OSError, ValueError):  # not there yet, or a line being written at this moment
        return None


def inode(path: Path) -> int | None:
    return os.stat(path).st_ino if path.exists() else None


def wait_for_iteration(proc: subprocess.Popen, run: Path, target: int, stale_inode: int | None) -> bool:
    """Wait until the run has logged iteration ``target``; False if the process ended first."""
    while proc.poll() is None:
        reached = last_logged_iteration(run, stale_inode)
        if reached is not None and reached >= target:
            return True
        time.sleep(0.01)
    return False


def saved_iteration(run: Path) -> int:
    path = run / "checkpoints" / "latest.pt"
    return torch.load(path, map_location="cpu", weights_only=True)["progress"]["iteration"] if path.exists() else 0


def checkpoint_iteration(run: Path) -> str:
    """The latest checkpoint's iteration; loading it also shows that it is readable."""
    path = run / "checkpoints" / "latest.pt"
    if not path.exists():
        return "no checkpoint yet"
    state = torch.load(path, map_location="cpu", weights_only=True)
    return f"checkpoint readable, at iteration {state['progress']['iteration']}"


def leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every tensor or plain value in nested dicts, lists and tuples."""
    if isinstance(obj, dict):
        for k in obj:
            yield from leaves(obj[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def first_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first leaf that differs between two checkpoints, with its largest absolute difference."""
    la = dict(leaves({k: a.get(k) for k in COMPARED}))
    lb = dict(leaves({k: b.get(k) for k in COMPARED}))
    if la.keys() != lb.keys():
        return (
            f"different entries: only straight {sorted(la.keys() - lb.keys())[:5]}, "
            f"only killed {sorted(lb.keys() - la.keys())[:5]}"
        )
    for name, x in la.items():
        y = lb[name]
        if torch.is_tensor(x) and torch.is_tensor(y):
            if x.shape != y.shape or x.dtype != y.dtype:
                return f"{name}: shape/dtype {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}"
            if not torch.equal(x, y):
                diff = (x.double() - y.double()).abs().max().item()
                n = int((x != y).sum())
                return f"{name}: max abs diff {diff:.3e} ({n} of {x.numel()} elements differ)"
        elif x != y:
            return f"{name}: {x!r} vs {y!r}"
    return None


def logged_losses(run: Path) -> list[tuple[int, dict]]:
    return [(r["iter"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=10, help="SIGKILLs of the interrupted run (default 10)")
    p.add_argument("--iters", type=int, default=300, help="iterations of each run (default 300)")
    p.add_argument("--save-every", type=int, default=10, help="checkpoint interval in iterations (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments, the generated images and training")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every training process (default 1)")
    p.add_argument("--model", default="cut", help="method preset (default cut)")
    p.add_argument("--data", type=Path, help="dataset folder (default: generated images)")
    p.add_argument("--keep", action="store_true", help="keep the two run folders (their path is printed)")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="crash_resume-"))
    env = child_env(args.threads)
    try:
        data = args.data or make_data(work / "data", args.seed)
        straight, killed = work / "straight", work / "killed"
        print(
            f"torch {torch.__version__}, OMP_NUM_THREADS={args.threads}, {args.model} {args.iters} iterations, "
            f"checkpoint every {args.save_every}, seed {args.seed}, data {data}",
            flush=True,
        )
        print("command: " + " ".join(train_command(args, data, Path("OUT"))), flush=True)

        log = work / "train.log"
        t0 = time.perf_counter()
        proc = start(train_command(args, data, straight), env, log)
        wait_for_iteration(proc, straight, 1, None)
        first = time.perf_counter() - t0
        finish(proc, "the straight run", log)
        total = time.perf_counter() - t0
        sec_per_iter = (total - first) / max(1, args.iters - 1)
        startup = max(0.1, first - sec_per_iter)
        print(f"straight run: {total:.1f} s ({startup:.1f} s start-up, {sec_per_iter:.3f} s/iter)", flush=True)

        rng = random.Random(args.seed)
        draws = [(rng.random() < START_UP_SHARE, rng.random(), rng.random()) for _ in range(args.kills)]
        cmd = train_command(args, data, killed)
        kills = 0
        for i, (in_start_up, u, v) in enumerate(draws, 1):
            resumed_at = saved_iteration(killed)
            stale = inode(killed / "metrics.jsonl")
            launched = time.perf_counter()
            proc = start(cmd, env, log)
            if in_start_up:
                try:
                    proc.wait(timeout=u * startup)
                except subprocess.TimeoutExpired:
                    pass
            else:
                # a random iteration among the next 1.6 x (left) / (kills left + 1), then part of it
                span = max(1, int(1.6 * (args.iters - resumed_at) / (args.kills - i + 2)))
                if wait_for_iteration(proc, killed, resumed_at + 1 + int(u * span), stale):
                    time.sleep(v * sec_per_iter)
            if proc.poll() is not None:
                if proc.returncode != 0:
                    sys.exit(f"restart {i} failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
                print(f"kill {i}/{args.kills}: the run finished first; no more kills", flush=True)
                break
            reached = last_logged_iteration(killed, stale)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            at = time.perf_counter() - launched
            where = (
                f"after iteration {reached}"
                if reached is not None and reached > resumed_at
                else "before its first iteration (start-up or restore)"
            )
            tmp = list((killed / "checkpoints").glob(".latest.pt.tmp-*")) if (killed / "checkpoints").exists() else []
            print(
                f"kill {i}/{args.kills} {at:.2f} s after launch, {where}: {checkpoint_iteration(killed)}"
                + (" (killed while writing a checkpoint: a temporary file was left)" if tmp else ""),
                flush=True,
            )
        else:
            finish(start(cmd, env, log), "the final restart", log)
            print(f"final restart ran to iteration {args.iters}", flush=True)

        a = torch.load(straight / "checkpoints" / "latest.pt", map_location="cpu", weights_only=True)
        b = torch.load(killed / "checkpoints" / "latest.pt", map_location="cpu", weights_only=True)
        difference = first_difference(a, b)
        if difference is None and logged_losses(straight) != logged_losses(killed):
            difference = "logged losses (metrics.jsonl) differ"
        n_model = sum(torch.is_tensor(v) for v in a["model"].values())
        if difference is None:
            print(
                f"compared {n_model} model tensors, optimizer, schedule, scaler, progress and RNG states, "
                f"{len(logged_losses(straight))} logged losses",
                flush=True,
            )
            print(f"{kills}/{args.kills} kills, bit-exact")
            return 0 if kills == args.kills else 1
        print(f"{kills}/{args.kills} kills, first difference: {difference}")
        return 1
    finally:
        if args.keep:
            print(f"run folders kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
