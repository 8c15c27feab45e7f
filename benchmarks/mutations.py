"""Deliberate breakages the test suite must catch (issue 24): each mutation edits one line of a
temporary copy of ``src/`` and ``tests/``, runs the test files that name the behaviour, and counts
it *caught* when they fail. A mutation the tests survive is a behaviour nobody checks.

    python benchmarks/mutations.py            # every mutation; a table, exit status 1 if one is missed
    python benchmarks/mutations.py --list     # the mutations, without running anything
    python benchmarks/mutations.py --only kid-duplicates collapse-share
    python benchmarks/mutations.py --baseline # also run each test selection unmutated first (must pass)

Each mutation is (name, file under src/unpaired, the exact text to replace, its replacement, the
pytest arguments that should catch it). The text must occur exactly once, so a refactoring that
moves the code makes the script stop with a clear message instead of testing nothing. Runs use
``OMP_NUM_THREADS=1`` and ``-x``: a mutation is caught at its first failing test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # under src/unpaired
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments, relative to the copy's root
    what: str


MUTATIONS = [
    Mutation(
        "kid-duplicates",
        "metrics/uncertainty.py",
        "same_x, same_y = a[:, None] == a[None, :], b[:, None] == b[None, :]",
        "same_x, same_y = np.eye(len(a), dtype=bool), np.eye(len(b), dtype=bool)",
        ("tests/test_uncertainty.py", "-k", "copies or covers_zero or kid"),
        "the KID bootstrap counts pairs of copies of one image as different images",
    ),
    Mutation(
        "collapse-std",
        "metrics/collapse.py",
        "NEAR_CONSTANT_STD = 0.02",
        "NEAR_CONSTANT_STD = 0.1",
        ("tests/test_collapse.py", "-k", "threshold or tell"),
        "a translation counts as nearly constant up to std 0.1 instead of 0.02",
    ),
    Mutation(
        "collapse-share",
        "metrics/collapse.py",
        "COLLAPSED_SHARE = 0.5",
        "COLLAPSED_SHARE = 1.0",
        ("tests/test_collapse.py", "-k", "threshold or tell"),
        "collapsed only when every translation is flat, not half of them",
    ),
    Mutation(
        "collapse-share-strict",
        "metrics/collapse.py",
        'if stats["near_constant_share"] >= COLLAPSED_SHARE:',
        'if stats["near_constant_share"] > COLLAPSED_SHARE:',
        ("tests/test_collapse.py", "-k", "threshold or tell"),
        "exactly half the translations flat is no longer collapsed",
    ),
    Mutation(
        "collapse-diversity",
        "metrics/collapse.py",
        "COLLAPSED_DIVERSITY = 0.1",
        "COLLAPSED_DIVERSITY = 0.5",
        ("tests/test_collapse.py", "-k", "threshold or tell"),
        "collapsed when translations vary less than half as much as inputs, not a tenth",
    ),
    Mutation(
        "export-self-check",
        "inference/export.py",
        'diffs[f"{w}x{h}"] = float((exported(x) - G(x)).abs().max())',
        'diffs[f"{w}x{h}"] = float((exported(x) - exported(x)).abs().max())',
        ("tests/test_export.py", "-k", "failed_check"),
        "the export check compares the written file with itself",
    ),
    Mutation(
        "export-tolerance",
        "inference/export.py",
        "PARITY_TOLERANCE = 1e-4",
        "PARITY_TOLERANCE = 1.0",
        ("tests/test_export.py", "-k", "failed_check"),
        "the export check accepts differences up to 1 (half the output range)",
    ),
    Mutation(
        "translate-low-precision-zeros",
        "inference/translator.py",
        "return translate_tensor(self.generator, batch).float()\n",
        'return translate_tensor(self.generator, batch).float() * (self.precision == "fp32")\n',
        ("tests/test_translate.py", "-k", "test_precision"),
        "every bf16/fp16 translation is zeros (mid-grey)",
    ),
    Mutation(
        "load-truncated-images",
        "data/images.py",
        "from PIL import Image, ImageOps, UnidentifiedImageError\n",
        "from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError\n\n"
        "ImageFile.LOAD_TRUNCATED_IMAGES = True\n",
        ("tests/test_robust_loading.py", "-k", "truncated"),
        "Pillow fills the missing part of truncated images instead of refusing them",
    ),
    Mutation(
        "patchnce-in-bf16",
        "losses.py",
        "dtype = torch.promote_types(query.dtype, torch.float32)",
        "dtype = query.dtype",
        ("tests/test_losses.py", "-k", "bf16"),
        "PatchNCE computes its log-softmax in bf16 when the features are bf16",
    ),
    # README promises (issue 24 item 2)
    Mutation(
        "ctrl-c-aborts",
        "training/callbacks.py",
        'trainer.request_stop("interrupted")',
        "raise KeyboardInterrupt",
        ("tests/test_train.py", "-k", "ctrl_c"),
        "the first Ctrl-C aborts training without a checkpoint",
    ),
    Mutation(
        "experiment-ignores-ctrl-c",
        "experiments/experiment.py",
        'if summary.get("stop_reason") == "interrupted":  # Ctrl-C: stop here, the rerun resumes this run',
        "if False:",
        ("tests/test_interrupts.py", "-k", "experiment"),
        "Ctrl-C in experiment stops the row's training but scores it and goes on to the next row",
    ),
    Mutation(
        "sweep-ctrl-c-not-requeued",
        "experiments/sweep.py",
        "RetryFailedTrialCallback(max_retry=None)(study, frozen)",
        "pass",
        ("tests/test_interrupts.py", "-k", "sweep"),
        "a trial stopped by Ctrl-C is left failed instead of re-queued with its parameters",
    ),
    Mutation(
        "sweep-metric-ignored",
        "experiments/sweep.py",
        "values.append(float(best[metric]))",
        'values.append(float(best["fid"]))',
        ("tests/test_interrupts.py", "-k", "sweep"),
        "--metric kid still minimises validation FID",
    ),
    Mutation(
        "sweep-tpe-ignored",
        "experiments/sweep.py",
        "else optuna.samplers.TPESampler(seed=plan.seed + worker)",
        "else optuna.samplers.RandomSampler(seed=plan.seed + worker)",
        ("tests/test_interrupts.py", "-k", "sweep"),
        "--sampler tpe samples at random",
    ),
    Mutation(
        "sweep-retry-starts-afresh",
        "experiments/sweep.py",
        'trial_dir = out / "trials" / trial_name(params)',
        'trial_dir = out / "trials" / f"{trial_name(params)}-{trial.number}"',
        ("tests/test_sweep.py", "-k", "survives_kill"),
        "a retried trial trains in a new folder instead of resuming the dead trial's checkpoint",
    ),
    Mutation(
        "evaluate-no-ci-ignored",
        "cli/evaluate.py",
        "ci=not args.no_ci,\n        pixel_tolerance=args.pixel_tolerance,",
        "ci=True,\n        pixel_tolerance=args.pixel_tolerance,",
        ("tests/test_evaluation.py", "-k", "validation_best"),
        "evaluate run --no-ci still computes the bootstrap intervals",
    ),
    Mutation(
        "pixel-tolerance-ignored",
        "cli/evaluate.py",
        "pixel_tolerance=args.pixel_tolerance,",
        "pixel_tolerance=10,",
        ("tests/test_evaluation.py", "-k", "validation_best"),
        "evaluate run --pixel-tolerance is ignored (always 10 levels)",
    ),
    Mutation(
        "report-worst-ignored",
        "cli/experiments.py",
        '"worst": args.worst',
        '"worst": 8',
        ("tests/test_evaluation.py", "-k", "validation_best"),
        "report --worst N always shows the 8 worst",
    ),
    Mutation(
        "report-collapse-iteration",
        "experiments/report.py",
        "state = f\"at iteration {c['collapsed_at']}\"",
        'state = "yes"',
        ("tests/test_report.py", "-k", "collapsed_column"),
        "the report's collapsed column no longer says at which iteration",
    ),
]


def copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("src", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def apply(root: Path, m: Mutation) -> None:
    path = root / "src" / "unpaired" / m.file
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        sys.exit(f"mutation {m.name}: the text to replace occurs {count} times in src/unpaired/{m.file}, not once")
    path.write_text(text.replace(m.old, m.new))


def run_tests(root: Path, m: Mutation, timeout: float) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:warnings", *m.tests]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, time.perf_counter() - t0, "timed out"
    lines = [line for line in p.stdout.splitlines() if line.startswith("FAILED") or line.startswith("ERROR")]
    return p.returncode, time.perf_counter() - t0, (lines[0] if lines else p.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations only")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--baseline", action="store_true", help="first check each selection passes unmutated")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per test run (default 900)")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTATIONS}
    if unknown:
        sys.exit(f"unknown mutation(s): {', '.join(sorted(unknown))}; see --list")
    if args.list:
        for m in chosen:
            print(f"{m.name:32s} src/unpaired/{m.file}: {m.what}  [{' '.join(m.tests)}]")
        return 0
    with open("/proc/loadavg") if Path("/proc/loadavg").exists() else open(os.devnull) as f:
        load = f.read().split()[:1]
    print(f"# mutation check: {len(chosen)} mutations, {time.strftime('%Y-%m-%d %H:%M')}, load {load}")
    print("| mutation | what it breaks | caught | by | s |")
    print("|---|---|---|---|---|")
    missed = []
    for m in chosen:
        with tempfile.TemporaryDirectory(prefix=f"mut-{m.name}-") as tmp:
            root = Path(tmp)
            copy_tree(root)
            if args.baseline:
                rc, secs, line = run_tests(root, m, args.timeout)
                if rc != 0:
                    print(f"| {m.name} | {m.what} | baseline fails | {line} | {secs:.0f} |", flush=True)
                    missed.append(m.name)
                    continue
            apply(root, m)
            rc, secs, line = run_tests(root, m, args.timeout)
        caught = rc == 1  # 1: tests failed; 0: all passed (missed); others: errors, timeouts (not counted)
        if not caught:
            missed.append(m.name)
        verdict = "yes" if caught else ("no" if rc == 0 else f"? (pytest exit {rc})")
        print(f"| {m.name} | {m.what} | {verdict} | {line} | {secs:.0f} |", flush=True)
    print(f"\n{len(chosen) - len(missed)}/{len(chosen)} caught" + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
