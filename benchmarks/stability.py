"""How often does CUT collapse, against the official code, and do the stabilisers help? N seeds
(default 8) of five configurations on people2outline (64 px), through the experiment machinery:

- ``official``: the official CUT model and update (benchmarks/official_method.py, built from the
  checkout in .ref/cut) fed our data pipeline's batches; skipped, saying so, without a checkout;
- ``cut``: ours with the official defaults;
- ``cut-diffaug``: ours with DiffAugment on the discriminator (model.d_augment: color,translation,cutout);
- ``cut-restart``: ours with automatic recovery (train.on_collapse: restart);
- ``cut-both``: both stabilisers.

Printed per configuration: runs, collapsed runs (at the end: the final validation or the test
translations; and at any validation, restarts included), test FID/KID mean ± std over seeds with
95% intervals, and the paired verdict (hierarchical bootstrap over seeds and test images) against
``cut``. The experiment's own report (tables, curves, gallery) is in OUT/report.

    python benchmarks/stability.py --out runs/stability --scale cpu --jobs 2      # 2-core CPU, < 2 h idle
    python benchmarks/stability.py --out runs/stability --scale gpu --jobs 16     # one GPU, full width
    python benchmarks/stability.py --out /tmp/st --scale smoke --seeds 0 1        # seconds per run

The runs go seed by seed (every configuration's seed 0 first), so a partial measurement stays
balanced; finished runs are skipped and interrupted ones resume, so the same command continues.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import official_method  # noqa: E402

DIFFAUG = "color,translation,cutout"
ROWS = [
    {"name": "official", "model": official_method.NAME},
    {"name": "cut", "model": "cut"},
    {"name": "cut-diffaug", "model": "cut", "set": {"model.d_augment": DIFFAUG}},
    {"name": "cut-restart", "model": "cut", "set": {"train.on_collapse": "restart"}},
    {"name": "cut-both", "model": "cut", "set": {"model.d_augment": DIFFAUG, "train.on_collapse": "restart"}},
]
# A restart row computes what its base row computes (same seed, same streams, bit for bit) until
# validation first finds a collapse: on_collapse only acts then. So a restart run is trained only
# where its base run collapsed at some validation; elsewhere it is the base run, copied and marked.
SAME_UNTIL_COLLAPSE = {"cut-restart": "cut", "cut-both": "cut-diffaug"}
# 42 training images in the split: an epoch is 42 iterations
SCALES = {
    # 2-core CPU: quarter width, 12 + 12 epochs (1,008 iterations), validation every 4 epochs (168)
    "cpu": {
        "data.load_size": 72,
        "data.crop_size": 64,
        "model.ngf": 16,
        "model.ndf": 16,
        "train.epochs": 12,
        "train.epochs_decay": 12,
        "train.val_every": 4,
        "train.val_unit": "epoch",
        "train.sample_every": 0,
        "train.save_every": 252,
        "data.num_workers": 0,
    },
    # one GPU, many runs at once: full width, the 30 + 30 epochs, validation every 5 epochs
    "gpu": {
        "data.load_size": 72,
        "data.crop_size": 64,
        "train.epochs": 30,
        "train.epochs_decay": 30,
        "train.val_every": 5,
        "train.val_unit": "epoch",
        "train.sample_every": 0,
        "train.save_every": 630,
    },
    # seconds: the pipeline end to end, nothing about quality
    "smoke": {
        "data.load_size": 36,
        "data.crop_size": 32,
        "model.ngf": 8,
        "model.ndf": 8,
        "model.n_blocks": 2,
        "model.nce_layers": [0, 4, 8, 12],
        "model.projector_dim": 32,
        "train.iters": 12,
        "train.val_every": 6,
        "train.val_unit": "iter",
        "train.val_num": 4,
        "train.sample_every": 0,
        "train.save_every": 1000,
        "data.num_workers": 0,
    },
}


def experiment_file(out: Path, rows: list[dict]) -> Path:
    """The experiment as a file of the experiment machinery (OUT/stability.yaml)."""
    spec = {"name": "stability", "rows": rows, "scales": {k: {"set": v} for k, v in SCALES.items()}}
    path = out / "stability.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def row_process(spec: Path, data: Path, out: Path, scale: str, row: str, seed: int, device: str) -> int:
    """One (row, seed): trained and scored in this process, where ``official-cut`` is registered."""
    from unpaired.experiments.experiment import run_experiment  # noqa: PLC0415 - after sys.path set-up

    if official_method.available():
        official_method.register()
    run_experiment(
        spec, data, out, scale=scale, only=[row], device=device, seeds=[seed], report=False, show_progress=False
    )
    return 0


def _fmt(stat: dict | None, digits: int) -> str:
    if not stat:
        return "-"
    ci = stat.get("ci")
    ci = f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if isinstance(ci, (list, tuple)) else ""
    if isinstance(stat.get("ci"), dict):
        ci = f" [{stat['ci']['low']:.{digits}f}, {stat['ci']['high']:.{digits}f}]"
    std = f" ± {stat['std']:.{digits}f}" if stat.get("std") is not None and not math.isnan(stat["std"]) else ""
    return f"{stat['mean']:.{digits}f}{std}{ci}"


def collapse_counts(runs: list[dict]) -> tuple[int, int, list[str]]:
    """(collapsed at the end, collapsed at any validation, notes) over a row's runs."""
    from unpaired.metrics.collapse import judge  # noqa: PLC0415 - after sys.path set-up

    at_end = at_any = 0
    notes = []
    for r in runs:
        s = r["summary"]
        c = s.get("collapse") or {}
        restarts = s.get("restarts") or []
        test_collapsed = bool(((r["test"] or {}).get("collapse") or {}).get("collapsed"))
        final = (s.get("validation") or {}).get("final") or {}
        final_collapsed = bool(final.get("collapse")) and judge(final["collapse"]) is not None
        if final_collapsed or test_collapsed:
            at_end += 1
        if c.get("collapsed_at") is not None or restarts:
            at_any += 1
            what = [f"restart at {x['collapsed_at']} -> {x['resumed_from']}" for x in restarts]
            if c.get("collapsed_at") is not None:
                what.append(f"collapsed at {c['collapsed_at']}")
            notes.append(f"seed {r['seed']}: " + ", ".join(what))
    return at_end, at_any, notes


def _verdict(c: dict, digits: int, seeds: int) -> str:
    """A paired difference with its interval and verdict; one seed has a difference but no interval."""
    if c.get("ci") is None:
        return f"{c['difference']:+.{digits}f} (no interval: {seeds} seed)"
    lo, hi = c["ci"]
    return f"{c['difference']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] {c['verdict']} ({seeds} seeds)"


def table(out: Path, rows: list[dict], seeds: list[int]) -> str:
    """The per-configuration lines, from the finished and scored runs."""
    from unpaired.experiments.experiment import run_dir_of  # noqa: PLC0415
    from unpaired.experiments.report import compare_rows, load_run, summarize_row  # noqa: PLC0415

    loaded = {}
    for row in rows:
        runs = []
        for seed in seeds:
            d = run_dir_of(out, row["name"], seed)
            if (d / "summary.json").is_file() and (d / "eval" / "test.json").is_file():
                runs.append(load_run(d, row["name"]))
        loaded[row["name"]] = runs
    lines = [
        "| configuration | runs | collapsed at the end | collapsed at any validation | test FID (mean ± std [95%]) "
        "| test KID (mean ± std [95%]) | FID vs cut | KID vs cut |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    base = loaded.get("cut") or []
    for name, runs in loaded.items():
        if not runs:
            lines.append(f"| {name} | 0 | - | - | - | - | - | - |")
            continue
        s = summarize_row(runs)
        at_end, at_any, why = collapse_counts(runs)
        notes += [f"{name} {w}" for w in why]
        copied = [r["seed"] for r in runs if (run_dir_of(out, name, r["seed"]) / "same_as.json").is_file()]
        if copied:
            notes.append(
                f"{name}: seeds {' '.join(map(str, copied))} are the {SAME_UNTIL_COLLAPSE[name]} runs "
                "(no collapse at any validation, so no restart)"
            )
        verdicts = ["-", "-"]
        if name != "cut" and base:
            c = compare_rows(base, runs)
            if c:
                verdicts = [_verdict(c[m], d, len(c["seeds"])) for m, d in (("fid", 2), ("kid", 4))]
        lines.append(
            f"| {name} | {len(runs)} | {at_end}/{len(runs)} | {at_any}/{len(runs)} | {_fmt(s.get('fid'), 2)} "
            f"| {_fmt(s.get('kid'), 4)} | {verdicts[0]} | {verdicts[1]} |"
        )
    return "\n".join(lines + ([""] + notes if notes else []))


def run_jobs(todo: list, args, out: Path, pool_cls, phase: str) -> None:
    """Runs ``todo`` (one process per run, ``--jobs`` at a time), printing each end."""
    if not todo:
        return
    pool = pool_cls(min(args.jobs, len(todo)), args.device)
    print(f"stability ({phase}): {len(todo)} run(s), {pool.jobs} at a time; logs in {out}/<row>/seed<k>/experiment.log")
    with pool:
        pool.run(todo, on_end=lambda job: print(job.describe(), flush=True))


def copy_if_uncollapsed(out: Path, base: str, row: str, seed: int) -> bool:
    """Makes OUT/<row>/seed<k> the base row's run when that run never collapsed at a validation (a
    restart row then computes exactly the same: it only acts on a collapse). False when it collapsed
    or is not finished, so the row must train. The copy says where it came from (same_as.json)."""
    src = out / base / f"seed{seed}"
    if not (src / "eval" / "test.json").is_file() or not (src / "summary.json").is_file():
        return False
    summary = json.loads((src / "summary.json").read_text())
    if (summary.get("collapse") or {}).get("collapsed_at") is not None or summary.get("restarts"):
        return False
    dst = out / row / f"seed{seed}"
    if dst.exists():
        shutil.rmtree(dst)  # an unfinished earlier attempt: the copy replaces it whole
    tmp = dst.with_name(dst.name + ".copying")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    (tmp / "same_as.json").write_text(
        json.dumps(
            {
                "run": f"{base}/seed{seed}",
                "reason": f"{base} seed {seed} never collapsed at a validation, so {row} (which differs from "
                "it only in what a collapse triggers) computes the same run",
            },
            indent=2,
        )
    )
    tmp.rename(dst)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="experiment folder (runs, report)")
    p.add_argument("--data", help="a people2outline split (trainA/B, valA/B, testA/B)")
    p.add_argument(
        "--source",
        default=str(ROOT.parent / "shared" / "data" / "people2outline"),
        help="the pix2pix people2outline folder to split when --data is not given",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    p.add_argument("--scale", default="cpu", choices=list(SCALES))
    p.add_argument("--only", nargs="+", help="only these configurations")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, one process each")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="seeds per round: their base runs, then their restart rows (default: all seeds in one round)",
    )
    p.add_argument("--row-process", nargs=2, metavar=("ROW", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    from unpaired.cli import main as cli  # noqa: PLC0415
    from unpaired.experiments.jobs import Job, JobPool  # noqa: PLC0415

    out = Path(args.out)
    data = Path(args.data) if args.data else out / "data"
    rows = [r for r in ROWS if not args.only or r["name"] in args.only]
    if not official_method.available():
        print(
            f"stability: no official CUT checkout in {official_method.DEFAULT_CHECKOUT}: the 'official' "
            f"configuration is skipped (git clone https://github.com/taesungp/contrastive-unpaired-translation "
            f"{official_method.DEFAULT_CHECKOUT})",
            file=sys.stderr,
        )
        rows = [r for r in rows if r["name"] != "official"]
    spec = experiment_file(out, rows)
    if args.row_process:
        row, seed = args.row_process
        return row_process(spec, data, out, args.scale, row, int(seed), args.device)
    if not args.data and not (data / "manifest.json").is_file():
        if not Path(args.source).is_dir():
            sys.exit(f"stability: no people2outline at {args.source}; pass --data SPLIT or --source FOLDER")
        rc = cli(["data", "split", args.source, "--out", str(data), "--seed", "0"])
        if rc:
            return rc

    start = time.time()
    names = {r["name"] for r in rows}

    def job(row: str, seed: int):
        run_dir = out / row / f"seed{seed}"
        if (run_dir / "eval" / "test.json").is_file():
            return None
        cmd = [sys.executable, str(Path(__file__).resolve()), "--out", str(out), "--data", str(data)]
        cmd += ["--scale", args.scale, "--device", args.device, "--row-process", row, str(seed)]
        return Job(f"{row} seed {seed}", cmd, run_dir / "experiment.log")

    # seed-major, a few seeds at a time: a partial measurement has every configuration's first seeds;
    # the restart rows of a chunk follow its base runs (trained only where those collapsed); a chunk
    # of --chunk seeds keeps --jobs slots busy (a chunk's last run may run alone)
    chunk = args.chunk or len(args.seeds)
    for i in range(0, len(args.seeds), chunk):
        seeds = args.seeds[i : i + chunk]
        first = [j for s in seeds for r in rows if r["name"] not in SAME_UNTIL_COLLAPSE if (j := job(r["name"], s))]
        run_jobs(first, args, out, JobPool, phase=f"seeds {' '.join(map(str, seeds))}")
        second = []
        for s in seeds:
            for row, base in SAME_UNTIL_COLLAPSE.items():
                if row not in names or not (j := job(row, s)):
                    continue
                if base in names and copy_if_uncollapsed(out, base, row, s):
                    print(f"{row} seed {s}: the {base} run (no collapse at any validation, so no restart)", flush=True)
                else:
                    second.append(j)
        run_jobs(second, args, out, JobPool, phase=f"seeds {' '.join(map(str, seeds))}, restart rows")
    minutes = (time.time() - start) / 60
    print(
        f"\nstability: scale {args.scale}, seeds {' '.join(map(str, args.seeds))}, --jobs {args.jobs}, "
        f"{minutes:.1f} min this call\n"
    )
    print(table(out, rows, args.seeds))
    report_runs = {
        r["name"]: [
            out / r["name"] / f"seed{k}" for k in args.seeds if (out / r["name"] / f"seed{k}" / "eval").is_dir()
        ]
        for r in rows
    }
    report_runs = {k: v for k, v in report_runs.items() if v}
    if report_runs:
        from unpaired.experiments.report import write_report  # noqa: PLC0415

        if official_method.available():
            official_method.register()  # the report builds nothing, but reads the method's display name
        files = write_report(report_runs, out / "report", note=[f"benchmarks/stability.py, scale {args.scale}"])
        print(f"\nreport: {files['markdown']}")
    (out / "stability_table.md").write_text(table(out, rows, args.seeds) + "\n")
    print(json.dumps({"finished_runs": sum(len(v) for v in report_runs.values())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
