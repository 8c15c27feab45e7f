"""Peak memory and time of tiled versus untiled translation of a large image (SinCUT generator).

Each mode runs in its own process (peak RSS is per process). The generator is the sincut preset's
(ngf 10, 128 px crops) with random weights: memory and time do not depend on training. Also
reports the largest difference between the two outputs (tiles must not show).

    .venv/bin/python benchmarks/tiled_memory.py [--width 4000 --height 3000] [--tile 512 --overlap 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHILD = """
import resource, sys, time
from unpaired.inference.folders import translate_files
t = time.perf_counter()
translate_files(sys.argv[1], sys.argv[2], sys.argv[3], device="cpu", show_progress=False,
                tile=int(sys.argv[4]), overlap=int(sys.argv[5]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, time.perf_counter() - t)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=4000)
    p.add_argument("--height", type=int, default=3000)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=128)
    p.add_argument("--keep", type=Path, help="copy both outputs here to look at them")
    args = p.parse_args()

    import torch

    from unpaired import checkpoint as ckpt_io
    from unpaired.config import resolve
    from unpaired.methods import build_model, preset

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = resolve(preset("sincut"))
        torch.manual_seed(0)
        model = build_model(cfg)
        ckpt_io.save_atomic(
            {
                "format": 1,
                "config": cfg.to_dict(),
                "model": model.state_dict(),
                "progress": {"epoch": 0, "batch": 0, "iteration": 0},
            },
            tmp / "g.pt",
        )
        # a smooth image with structure at several scales, like a photo
        yy, xx = np.mgrid[0 : args.height, 0 : args.width].astype(np.float32)
        rgb = np.stack(
            [np.sin(xx / 97) + np.cos(yy / 61), np.sin((xx + yy) / 37), np.cos(xx / 13) * np.sin(yy / 17)], -1
        )
        Image.fromarray(((rgb - rgb.min()) / np.ptp(rgb) * 255).astype(np.uint8)).save(tmp / "big.png")
        del yy, xx, rgb
        results = {}
        for name, tile in (("tiled", args.tile), ("untiled", 0)):
            out = tmp / name
            t0 = time.perf_counter()
            res = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    str(tmp / "g.pt"),
                    str(tmp / "big.png"),
                    str(out),
                    str(tile),
                    str(args.overlap),
                ],
                capture_output=True,
                text=True,
            )
            if res.returncode:
                print(f"{name}: failed ({res.stderr.strip().splitlines()[-1] if res.stderr else res.returncode})")
                continue
            rss, secs = res.stdout.split()
            results[name] = {
                "peak_rss_GiB": int(rss) / 2**30,
                "seconds": float(secs),
                "wall_seconds": time.perf_counter() - t0,
            }
        if len(results) == 2:
            a = np.asarray(Image.open(tmp / "tiled" / "big.png"), dtype=np.int16)
            b = np.asarray(Image.open(tmp / "untiled" / "big.png"), dtype=np.int16)
            diff = np.abs(a - b)
            results["difference_8bit"] = {
                "max": int(diff.max()),
                "mean": float(diff.mean()),
                "pixels_differing": float((diff > 0).mean()),
            }
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for name in ("tiled", "untiled"):
                if (tmp / name / "big.png").exists():
                    (args.keep / f"{name}.png").write_bytes((tmp / name / "big.png").read_bytes())
    print(f"{args.width}x{args.height}, SinCUT generator (ngf 10), tile {args.tile}, overlap {args.overlap}")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
