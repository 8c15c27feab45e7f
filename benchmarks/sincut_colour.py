"""Colour statistics of a SinCUT run's full-resolution samples against the target image.

For each sample triptych (real_A | fake_B | real_B) in RUN_DIR/samples, the middle panel is
compared with image B: the per-channel mean/std distance (sum over RGB of |d mean| + |d std|, 8-bit
levels) and a sliced Wasserstein distance of the colour distributions (64 random directions,
quantile matching). Row 0 is the untranslated image A. A translation that moves toward the target's
colours shows both numbers falling.

    .venv/bin/python benchmarks/sincut_colour.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from unpaired import Config  # through the registry: Config.from_dict needs the methods registered
from unpaired.data.images import load_image
from unpaired.data.loading import single_image_paths


def colour_stats_distance(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x.reshape(-1, 3).astype(np.float64), y.reshape(-1, 3).astype(np.float64)
    return float(np.abs(x.mean(0) - y.mean(0)).sum() + np.abs(x.std(0) - y.std(0)).sum())


def colour_swd(x: np.ndarray, y: np.ndarray, n_dirs: int = 64, seed: int = 0) -> float:
    x, y = x.reshape(-1, 3).astype(np.float64), y.reshape(-1, 3).astype(np.float64)
    dirs = np.random.default_rng(seed).standard_normal((n_dirs, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    q = np.linspace(0, 1, 512)
    return float(np.mean([np.abs(np.quantile(x @ d, q) - np.quantile(y @ d, q)).mean() for d in dirs]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    cfg = Config.from_dict(yaml.safe_load((args.run_dir / "config.yaml").read_text()))
    path_a, path_b, _ = single_image_paths(cfg)
    a, b = np.asarray(load_image(path_a)), np.asarray(load_image(path_b))
    rows = [{"iteration": 0, "stats_distance": colour_stats_distance(a, b), "swd": colour_swd(a, b)}]
    for sample in sorted((args.run_dir / "samples").glob("iter_*.png")):
        trip = np.asarray(Image.open(sample).convert("RGB"))
        w = trip.shape[1] // 3
        fake = trip[:, w : 2 * w]
        rows.append(
            {
                "iteration": int(sample.stem.split("_")[1]),
                "stats_distance": colour_stats_distance(fake, b),
                "swd": colour_swd(fake, b),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"A = {path_a.name}, B = {path_b.name}; distances of the translated A to B (row 0: A itself)")
    print(f"{'iteration':>9}  {'mean/std dist':>13}  {'colour SWD':>10}")
    for r in rows:
        print(f"{r['iteration']:9d}  {r['stats_distance']:13.1f}  {r['swd']:10.2f}")


if __name__ == "__main__":
    main()
