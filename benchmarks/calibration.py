"""Coverage and A/A false-alarm rates of the intervals over seeds, today's and the earlier ones, on
synthetic data with a known truth (no training; :mod:`unpaired.metrics.calibration`).

    python benchmarks/calibration.py                 # the full table (~10-20 min on a 2-core CPU)
    python benchmarks/calibration.py --reps 200 --quick

Rows:
- "row mean": the interval of one row's mean over k seeds; today Student-t
  (:func:`unpaired.metrics.uncertainty.seeds_summary`), earlier a percentile bootstrap of the k
  values (``old_seeds_interval`` below, the code before issue 19). Normal and log-normal seeds.
- "paired metric": B - A of a per-image metric (L1-like) over k seeds x n images; today
  :func:`paired_metric_difference`; earlier the report gave none, shown here is the hierarchical
  percentile bootstrap the FID comparison used (``old_hierarchical``), applied to it.
- "FID"/"KID": B - A from Inception-like features; today :func:`paired_difference` (two-level t,
  jackknife over test images); earlier the hierarchical paired bootstrap (``old_paired_fid``).
A/A rows: both rows from one distribution; "excl. 0" is then the false-alarm rate of the verdict
("better"/"worse"), nominally 5%. A/B rows: the rows differ and the method x image interaction is
non-zero; "coverage" is the share of intervals containing the true expected difference, nominally
95%. "MC se": the binomial standard error at the nominal rate, sqrt(0.05 x 0.95 / reps).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from unpaired.metrics.calibration import (  # noqa: E402
    Features,
    PerImage,
    draw_features,
    features_truth,
    nominal_se,
    per_image_values,
    rates,
    seed_values_trial,
)
from unpaired.metrics.uncertainty import (  # noqa: E402
    _FID,
    _KID,
    _interval,
    paired_difference,
    paired_metric_difference,
)


# ------------------------------------------------------------------ the methods before issue 19
def old_seeds_interval(values, n_boot=10000, seed=0):
    """seeds_summary's interval before issue 19: percentile bootstrap of the mean of the k values."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return {"ci": None}
    means = v[np.random.default_rng(seed).integers(0, len(v), (n_boot, len(v)))].mean(1)
    return {"ci": _interval(means)}


def old_hierarchical(a, b, n_boot=1000, seed=0):
    """The hierarchical paired bootstrap (seeds, then the same images for every seed) on per-image
    values: percentile interval of the mean of B - A (vectorised: row means of image resamples,
    then seed resamples of those)."""
    names = sorted(a[0])
    d = np.array([[bs[n] - as_[n] for n in names] for as_, bs in zip(a, b)])
    k, n = d.shape
    rng = np.random.default_rng(seed)
    t = rng.integers(0, n, (n_boot, n))
    row_means = d[:, t].mean(-1)  # k x n_boot
    s = rng.integers(0, k, (n_boot, k))
    vals = row_means[s, np.arange(n_boot)[:, None]].mean(1)
    return {"ci": _interval(vals)}


def old_paired_fid(fa, fb, real, metric="fid", n_boot=200, seed=0):
    """paired_difference before issue 19 (FID/KID): seeds, test inputs and real images redrawn with
    replacement, percentile interval of the mean over drawn seeds of metric(B) - metric(A)."""
    k, n_test, n_real = len(fa), len(fa[0]), len(real)
    rng = np.random.default_rng(seed)
    if metric == "fid":
        f = _FID(real, fa + fb)

        def diff(i, ri, ti):
            return f(k + i, ri, ti) - f(i, ri, ti)
    else:
        kid = _KID(real, fa + fb)

        def diff(i, ri, ti):
            m = min(len(ri), len(ti)) // 2
            subsets = [
                (rng.choice(len(ri), m, replace=False), rng.choice(len(ti), m, replace=False)) for _ in range(10)
            ]
            return kid(k + i, ri, ti, subsets) - kid(i, ri, ti, subsets)

    vals = np.empty(n_boot)
    for j in range(n_boot):
        s = rng.integers(0, k, k)
        ti, ri = rng.integers(0, n_test, n_test), rng.integers(0, n_real, n_real)
        per = {i: diff(i, ri, ti) for i in np.unique(s)}
        vals[j] = np.mean([per[i] for i in s])
    return {"ci": _interval(vals)}


# ------------------------------------------------------------------ the table
def line(what, k, n, method, r, t0):
    print(
        f"| {what} | {k} | {n if n else '-'} | {method} | {r['coverage']:.3f} | {r['exclude_zero']:.3f} | "
        f"{nominal_se(0.95, r['reps']):.3f} | {r['reps']} | {time.perf_counter() - t0:.0f} s |",
        flush=True,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=1000, help="repetitions per cell (FID/KID cells: a fifth, min 100)")
    p.add_argument("--quick", action="store_true", help="fewer cells: 2, 3, 10 seeds; 20 and 200 images")
    p.add_argument("--parts", nargs="+", default=["seeds", "paired", "fid", "kid"], help="which tables")
    p.add_argument("--seeds", type=int, nargs="+", help="numbers of seeds (default 2 3 5 10)")
    p.add_argument("--images", type=int, nargs="+", help="test-set sizes (default 20 100 500)")
    args = p.parse_args(argv)
    reps, reps_f = args.reps, max(100, args.reps // 5)
    seeds = args.seeds or ((2, 3, 10) if args.quick else (2, 3, 5, 10))
    sizes = args.images or ((20, 200) if args.quick else (20, 100, 500))
    t0 = time.perf_counter()
    print("| what | seeds | images | method | coverage | excl. 0 | MC se | reps | elapsed |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for skew in (False, True) if "seeds" in args.parts else ():
        what = "row mean, " + ("log-normal" if skew else "normal")
        for k in seeds:
            line(what, k, 0, "t (now)", rates(lambda g, k=k, skew=skew: seed_values_trial(g, k, skew), reps), t0)
            line(
                what,
                k,
                0,
                "bootstrap (before)",
                rates(lambda g, k=k, skew=skew: seed_values_trial(g, k, skew, old_seeds_interval), reps),
                t0,
            )
    scen = {"A/A": PerImage(), "A/B": PerImage(delta=0.5, interaction=2.0)}
    for name, par in scen.items() if "paired" in args.parts else ():
        for k in seeds:
            for n in sizes:

                def now(g, k=k, n=n, par=par):
                    a, b = per_image_values(g, k, n, par)
                    return paired_metric_difference(a, b, metric="l1")["ci"], par.delta

                def before(g, k=k, n=n, par=par):
                    a, b = per_image_values(g, k, n, par)
                    return old_hierarchical(a, b)["ci"], par.delta

                line(f"paired metric {name}", k, n, "two-level t (now)", rates(now, reps), t0)
                line(f"paired metric {name}", k, n, "hier. bootstrap (before)", rates(before, reps), t0)
    d = 8
    fscen = {"A/A": (Features(), Features()), "A/B": (Features(), Features(scale=0.8, shift=0.2))}
    for metric in [m for m in ("fid", "kid") if m in args.parts]:
        for name, (fa_p, fb_p) in fscen.items():
            for n in sizes:
                truth = 0.0 if name == "A/A" else features_truth(metric, n, d, fa_p, fb_p, draws=2000)[0]
                for k in seeds:

                    def now(g, k=k, n=n, fa_p=fa_p, fb_p=fb_p, metric=metric, truth=truth):
                        real, fa, fb = draw_features(g, k, n, d, fa_p, fb_p)
                        return paired_difference(fa, fb, real, metric=metric)["ci"], truth

                    def before(g, k=k, n=n, fa_p=fa_p, fb_p=fb_p, metric=metric, truth=truth):
                        real, fa, fb = draw_features(g, k, n, d, fa_p, fb_p)
                        return old_paired_fid(fa, fb, real, metric)["ci"], truth

                    line(f"{metric.upper()} {name}", k, n, "two-level t (now)", rates(now, reps_f), t0)
                    if n <= 100:
                        line(
                            f"{metric.upper()} {name}", k, n, "hier. bootstrap (before)", rates(before, reps_f // 2), t0
                        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
