"""CUT-CE, CUT-focal, FastCUT-CE and an A/A row (CUT-CE again with seeds k + 1000) on people2outline
over several seeds: the table of test FID/KID (mean ± std, 95% intervals) and the paired comparisons
with verdicts on FID, KID, L1, PSNR, SSIM and pixel accuracy: focal vs CE, and CE vs itself (the
A/A row: a verdict other than "within noise" there is a false alarm of this run's own data).

    python benchmarks/quality_p2o.py --out runs/quality --seeds 0 1 2 --jobs 9            # a GPU
    python benchmarks/quality_p2o.py --out runs/quality --seeds 0 1 --scale cpu --jobs 2  # 2-core CPU
    python benchmarks/quality_p2o.py --out /tmp/q --seeds 0 1 2 --scale smoke             # seconds

The people2outline split comes from --data (made by ``unpaired data split``) or is made into
OUT/data from --source (default ../shared/data/people2outline). Rows, seeds and scales are those of
configs/quality_p2o.yaml; finished runs are skipped, so the same command resumes. The full report
(gallery, worst cases, curves) is in OUT/report.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sections(markdown: str, names: tuple[str, ...]) -> str:
    """The report's sections with these headings, as printed text."""
    parts = re.split(r"(?m)^(?=## )", markdown)
    return "\n".join(p.strip() + "\n" for p in parts if any(p.startswith(f"## {n}") for n in names))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="experiment folder (runs, report)")
    p.add_argument("--data", help="a people2outline split (trainA/B, valA/B, testA/B)")
    p.add_argument(
        "--source",
        default=str(ROOT.parent / "shared" / "data" / "people2outline"),
        help="the pix2pix people2outline folder to split when --data is not given",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--scale",
        default="full",
        choices=["full", "cpu", "smoke"],
        help="full: the issue's 30 + 30 epochs (a GPU); cpu: quarter width, 6 + 6 epochs; smoke: seconds",
    )
    p.add_argument("--jobs", type=int, default=1, help="runs at once, one process each")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)

    from unpaired.cli import main as cli
    from unpaired.experiments.experiment import run_experiment

    out = Path(args.out)
    data = Path(args.data) if args.data else out / "data"
    if not args.data:
        if not Path(args.source).is_dir():
            sys.exit(f"quality_p2o: no people2outline at {args.source}; pass --data SPLIT or --source FOLDER")
        if not (data / "manifest.json").is_file():
            # test pairs kept (paired metrics); train halves split so training stays unpaired
            rc = cli(["data", "split", args.source, "--out", str(data), "--seed", "0"])
            if rc:
                return rc
    start = time.time()
    files = run_experiment(
        ROOT / "configs" / "quality_p2o.yaml",
        data,
        out,
        scale=args.scale,
        device=args.device,
        jobs=args.jobs,
        seeds=args.seeds,
    )
    minutes = (time.time() - start) / 60
    print(
        f"\nquality_p2o: scale {args.scale}, seeds {' '.join(map(str, args.seeds))}, --jobs {args.jobs}, "
        f"{minutes:.1f} min\n"
    )
    print(sections(Path(files["markdown"]).read_text(), ("Results", "Comparisons", "Every run")))
    print(f"report: {files['gallery']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
