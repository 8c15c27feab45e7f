"""Scoring a trained run: translate a dataset split with its checkpoint, then FID/KID, intervals,
paired metrics and a collapse check, written to RUN_DIR/eval/."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluate import SplitScorer
from ..files import atomic_path, make_dir, write_text
from ..metrics.collapse import judge as judge_collapse
from ..metrics.paired import DEFAULT_TOLERANCE
from ..models import official
from ..runs import RunFolder
from .generator import open_generator


def evaluate_run(
    run_dir: str | Path,
    data_root: str | Path,
    split: str = "test",
    num: int | None = None,
    which: str = "best",
    device: str = "cpu",
    size: int | None = None,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
    ci: bool = True,
    pixel_tolerance: int = DEFAULT_TOLERANCE,
    n_boot: int | None = None,
) -> dict[str, Any]:
    """Score a run's generator on a split. Writes RUN_DIR/eval/<split>/ (the translations),
    RUN_DIR/eval/<split>_features.npy (their Inception features, float32, one row per input in the
    order of "inputs") and RUN_DIR/eval/<split>.json: FID/KID, with ``ci`` "fid_ci"/"kid_ci", "paired"
    when the split keeps pairs, and "features" (where the fake features are and how to recompute the
    real ones: folder, size, limit)."""
    run_dir = Path(run_dir)
    if official.is_official_folder(run_dir) and not RunFolder(run_dir).checkpoints.is_dir():
        which = "latest"  # a folder of the official code: its latest_net_G.pth (or G_A)
    elif which == "best" and run_dir.is_dir() and not RunFolder(run_dir).best.is_file():
        print(
            f"note: {run_dir} has no best checkpoint (it was trained without validation); scoring the latest one",
            file=sys.stderr,
        )
        which = "latest"
    G, cfg, about = open_generator(run_dir, device, which)
    path, progress = Path(about["source"]), about["state"].get("progress", {})
    if not run_dir.is_dir():  # a checkpoint or official file: eval/ goes beside it
        run_dir = path.parent
    run = RunFolder(run_dir)
    size = size or cfg.data.crop_size
    make_dir(run.eval, "evaluation folder")  # before any feature: an unwritable run fails at once
    t0 = time.perf_counter()
    scorer = SplitScorer(data_root, split, cfg.data.channels, size, device, num, cache_dir, show_progress)
    out_dir = run.eval_images(split)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    result = scorer.score(G, save_dir=out_dir, ci=ci, paired=True, pixel_tolerance=pixel_tolerance, n_boot=n_boot)
    features = run.eval_features(split)
    with atomic_path(features) as tmp, open(tmp, "wb") as f:
        np.save(f, scorer.fake_features.astype(np.float32))
    result.update(
        {
            "split": split,
            "checkpoint": path.name,
            "iteration": progress.get("iteration"),
            "epoch": progress.get("epoch"),
            **({"official": about["official"]} if "official" in about else {}),
            "size": size,
            "data": str(Path(data_root).resolve()),
            "real_dir": str(scorer.b_dir.resolve()),
            "inputs": [str(p.resolve()) for p in scorer.a_paths],
            "features": {
                "fake": features.name,
                "dtype": "float32",
                "real": {"dir": str(scorer.b_dir.resolve()), "size": size, "limit": num, "n": int(len(scorer.real))},
            },
            "seconds": time.perf_counter() - t0,
        }
    )
    # a run trained without validation was never checked for collapse: say it here, once scored
    reason = judge_collapse(result["collapse"], split)
    result["collapse"]["collapsed"] = reason
    if reason:
        print(
            f"warning: {run_dir} looks collapsed: {reason}; its scores describe a failed run, not its method",
            file=sys.stderr,
        )
    write_text(run.eval_scores(split), json.dumps(result, indent=2))
    return result
