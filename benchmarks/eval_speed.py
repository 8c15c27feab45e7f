"""Time to score 500 generated 256x256 images against 500 real ones (FID + KID) on this machine.

Target (issue 4): under one minute beyond translation time on a 2-core CPU. Translation is not
timed here: the "generated" images are written to disk first, as `unpaired evaluate fid` sees them.

    .venv/bin/python benchmarks/eval_speed.py [--n 500] [--size 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from unpaired.evaluate import evaluate_folders

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "people2outline"


def make_images(folder: Path, n: int, size: int, half: int, seed: int) -> None:
    """Random crops of people2outline's photos (half 0) or outlines (half 1); noise if it is absent."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    sources = sorted(SHARED.glob("*/*.jpg"))
    for i in range(n):
        if sources:
            im = Image.open(sources[rng.integers(len(sources))]).convert("RGB")
            w = im.width // 2
            im = im.crop((half * w, 0, half * w + w, im.height))
            s = int(rng.integers(im.height // 2, im.height + 1))
            x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, im.height - s + 1))
            im = im.crop((x, y, x + s, y + s)).resize((size, size), Image.BICUBIC)
        else:
            im = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        im.save(folder / f"{i:04d}.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_images(tmp / "real", args.n, args.size, 1, 0)
        make_images(tmp / "fake", args.n, args.size, 0, 1)
        t0 = time.perf_counter()
        cold = evaluate_folders(tmp / "real", tmp / "fake", cache_dir=tmp / "cache", show_progress=False)
        t1 = time.perf_counter()
        warm = evaluate_folders(tmp / "real", tmp / "fake", cache_dir=tmp / "cache", show_progress=False)
        t2 = time.perf_counter()
    assert abs(cold["fid"] - warm["fid"]) < 1e-9
    print(
        f"{args.n} generated vs {args.n} real images, {args.size}x{args.size}, FID {cold['fid']:.2f}, "
        f"KID {cold['kid']:.4f}"
    )
    print(f"  cold cache (real features computed too): {t1 - t0:6.1f} s")
    print(f"  real features cached:                    {t2 - t1:6.1f} s   (target: < 60 s)")


if __name__ == "__main__":
    main()
