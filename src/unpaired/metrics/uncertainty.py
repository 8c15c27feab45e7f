"""Uncertainty of FID and KID: bootstrap intervals over test images, summaries over seeds, and a
paired comparison of two rows (methods) trained with the same seeds. Pure numpy, on Inception
features (no images, no network): features saved by ``evaluate run`` can be re-used.

What the intervals mean. A test set is one sample of images; a training seed is one sample of the
training randomness. A bootstrap redraws that sample with replacement and recomputes the metric, so
the spread of the redrawn values says how much the number would move with another test set (and,
in :func:`paired_difference`, another seed) of the same size. It is about *variability*: FID and KID
of a set with duplicated images are biased upwards (a duplicate adds no new information but counts
twice), so the redrawn values sit somewhat above the observed one and a percentile interval need
not be centred on it, or even contain it for FID on small sets. Compare intervals with intervals,
differences with the interval of the difference; do not read an interval as "the true FID lies
here". All intervals are percentile intervals (the 2.5th and 97.5th percentiles for 95%).

Cost. FID from features of small sets is computed exactly from the n1 x n2 cross-product (see
:func:`unpaired.metrics.fid.fid_from_features`); redrawing images only re-indexes Gram matrices that
are computed once, so a resample costs an n x n double-centring and an SVD of an n1 x n2 matrix
(about 0.3 ms for 55 x 55), not a pass over the 2048-d features. KID redraws index precomputed
kernel matrices the same way. The default number of resamples (:func:`default_n_boot`) falls with the
set size so that an interval takes seconds to a minute on a laptop CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .fid import (
    default_kid_subset_size,
    fid_from_features,
    kid_from_features,
    kid_kernel,
)

LEVEL = 0.95
BOOT_KID_SUBSETS = 10  # KID inside a bootstrap: 10 subsets per resample instead of 100
KERNEL_MAX_ENTRIES = 60_000_000  # precompute KID kernels up to this many float64 entries (~480 MB)


def default_n_boot(n1: int, n2: int) -> int:
    """Resamples used when ``n_boot`` is not given, from the larger of the two set sizes ``n``:
    1000 up to 300 images, 300 up to 1000, 100 up to 2048, 30 above (where FID goes through 2048 x 2048
    covariances and two eigendecompositions, ~2 s per resample). Percentile intervals from fewer than
    ~1000 resamples are coarser (their ends move by a few percent of the width between runs); the
    number used is always returned with the interval."""
    n = max(n1, n2)
    return 1000 if n <= 300 else 300 if n <= 1000 else 100 if n <= 2048 else 30


def _interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the finite values (a KID resample of a tiny set can have no pair of
    different images in a subset, and no value)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        raise ValueError("no resample gave a finite value (sets too small?)")
    alpha = (1 - level) / 2 * 100
    low, high = np.percentile(v, [alpha, 100 - alpha])
    return float(low), float(high)


def _as_f64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array (images x dimensions), got shape {x.shape}")
    return x


class _FID:
    """FID of resampled real and fake features, exactly as :func:`fid_from_features` computes it.

    For small sets (n1 n2 <= d^2, fid_from_features' exact path) everything comes from Gram matrices
    computed once: with rows indexed by resamples i, j and the centring matrices C,
    ||mu1 - mu2||^2 = mean(G11[i,i]) + mean(G22[j,j]) - 2 mean(G12[i,j]), Tr S1 = (tr G11[i,i] -
    sum G11[i,i] / n1) / (n1 - 1), and Tr (S1 S2)^1/2 is the sum of the singular values of
    C G12[i,j] C / sqrt((n1-1)(n2-1)). Features are shifted by the real mean first (FID is invariant
    to a common shift), which keeps the Gram entries small. Larger sets call fid_from_features."""

    def __init__(self, real: np.ndarray, fakes: Sequence[np.ndarray]):
        self.real, self.fakes = real, list(fakes)
        d = real.shape[1]
        self.gram = all(len(real) * len(f) <= d * d for f in self.fakes)
        if self.gram:
            shift = real.mean(0)
            r = real - shift
            fs = [f - shift for f in self.fakes]
            self.g_rr = r @ r.T
            self.g_ff = [f @ f.T for f in fs]
            self.g_rf = [r @ f.T for f in fs]

    def __call__(self, k: int, ri: np.ndarray, fi: np.ndarray) -> float:
        """FID of real[ri] against fakes[k][fi]."""
        if not self.gram:
            return fid_from_features(self.real[ri], self.fakes[k][fi])
        n1, n2 = len(ri), len(fi)
        g11 = self.g_rr[np.ix_(ri, ri)]
        g22 = self.g_ff[k][np.ix_(fi, fi)]
        g12 = self.g_rf[k][np.ix_(ri, fi)]
        s11, s22 = g11.sum(), g22.sum()
        mean_diff = s11 / n1**2 + s22 / n2**2 - 2 * g12.sum() / (n1 * n2)
        tr1 = (np.trace(g11) - s11 / n1) / (n1 - 1)
        tr2 = (np.trace(g22) - s22 / n2) / (n2 - 1)
        row, col = g12.mean(1, keepdims=True), g12.mean(0, keepdims=True)
        cross = g12 - row - col + g12.mean()
        tr_covmean = np.linalg.svd(cross, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
        return float(mean_diff + tr1 + tr2 - 2 * tr_covmean)


class _KID:
    """KID (mean over random subsets of the unbiased MMD^2, kernel (x.y/d + 1)^3) of resampled sets,
    indexing kernel matrices computed once (from the features directly when they would be too big).

    The unbiased estimator averages k over pairs of *different* images (it leaves out k(x, x), which
    is larger than k(x, y)); in a resample with duplicates, a pair of copies of one image is such a
    self-pair and is left out too. Without this, duplicates would add about
    2 (mean k(x,x) - mean k(x,y)) / n to KID, for 55 test images more than KID itself often is.
    On the original sets (no duplicates) this is exactly the usual estimator."""

    def __init__(self, real: np.ndarray, fakes: Sequence[np.ndarray]):
        self.real, self.fakes = real, list(fakes)
        n_r, n_f = len(real), sum(len(f) for f in self.fakes)
        self.pre = n_r * n_r + n_f * max(len(f) for f in self.fakes) + n_r * n_f <= KERNEL_MAX_ENTRIES
        if self.pre:
            self.k_rr = kid_kernel(real, real)
            self.k_ff = [kid_kernel(f, f) for f in self.fakes]
            self.k_rf = [kid_kernel(real, f) for f in self.fakes]

    def _blocks(self, k: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.pre:
            return self.k_rr[np.ix_(a, a)], self.k_ff[k][np.ix_(b, b)], self.k_rf[k][np.ix_(a, b)]
        x, y = self.real[a], self.fakes[k][b]
        return kid_kernel(x, x), kid_kernel(y, y), kid_kernel(x, y)

    def __call__(self, k: int, ri: np.ndarray, fi: np.ndarray, subsets: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """KID of real[ri] against fakes[k][fi]; ``subsets`` are positions into ri and fi."""
        values = []
        for pa, pb in subsets:
            a, b = ri[pa], fi[pb]
            kxx, kyy, kxy = self._blocks(k, a, b)
            same_x, same_y = a[:, None] == a[None, :], b[:, None] == b[None, :]  # self-pairs and duplicates
            pairs_x, pairs_y = same_x.size - same_x.sum(), same_y.size - same_y.sum()
            if pairs_x and pairs_y:
                values.append(kxx[~same_x].sum() / pairs_x + kyy[~same_y].sum() / pairs_y - 2 * kxy.mean())
        return float(np.mean(values)) if values else float("nan")


def _subsets(rng: np.random.Generator, n1: int, n2: int, num: int, size: int | None) -> list:
    m = min(n1, n2, default_kid_subset_size(n1, n2) if size is None else size)
    return [(rng.choice(n1, m, replace=False), rng.choice(n2, m, replace=False)) for _ in range(num)]


def bootstrap_fid(
    real_feats: np.ndarray, fake_feats: np.ndarray, n_boot: int | None = None, seed: int = 0, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile interval (95% by default) of FID when the test images are redrawn with replacement.

    Each of ``n_boot`` resamples draws len(real) real and len(fake) fake feature rows with replacement,
    real and fake independently, and computes FID exactly as :func:`fid_from_features` does.
    ``n_boot=None`` uses :func:`default_n_boot` (1000 up to 300 images per side, fewer above).
    Duplicated images bias FID upwards (the redrawn sets are less diverse than the originals), so the
    interval tends to lie above the observed FID, for small sets possibly entirely: it describes how
    much FID varies with the choice of test images, not where the "true" FID is."""
    real, fake = _as_f64(real_feats), _as_f64(fake_feats)
    n1, n2 = len(real), len(fake)
    n_boot = default_n_boot(n1, n2) if n_boot is None else n_boot
    rng = np.random.default_rng(seed)
    fid = _FID(real, [fake])
    values = [fid(0, rng.integers(0, n1, n1), rng.integers(0, n2, n2)) for _ in range(n_boot)]
    return _interval(np.array(values), level)


def bootstrap_kid(
    real_feats: np.ndarray,
    fake_feats: np.ndarray,
    n_boot: int | None = None,
    seed: int = 0,
    level: float = LEVEL,
    num_subsets: int = BOOT_KID_SUBSETS,
    subset_size: int | None = None,
) -> tuple[float, float]:
    """Percentile interval (95% by default) of KID when the test images are redrawn with replacement.

    As :func:`bootstrap_fid` (real and fake redrawn independently, ``n_boot=None``:
    :func:`default_n_boot`), with a cheaper KID inside the bootstrap: the mean over ``num_subsets``
    (10) random subsets instead of 100, of the size :func:`unpaired.metrics.fid.default_kid_subset_size`
    gives for the set sizes (or ``subset_size``). The subset noise this adds is part of the spread, so
    the interval is slightly wider than with 100 subsets. Duplicates bias KID upwards as they do FID
    (a duplicated image pairs with itself in the "different images" sums): the interval is about
    variability."""
    real, fake = _as_f64(real_feats), _as_f64(fake_feats)
    n1, n2 = len(real), len(fake)
    n_boot = default_n_boot(n1, n2) if n_boot is None else n_boot
    rng = np.random.default_rng(seed)
    kid = _KID(real, [fake])
    values = []
    for _ in range(n_boot):
        ri, fi = rng.integers(0, n1, n1), rng.integers(0, n2, n2)
        values.append(kid(0, ri, fi, _subsets(rng, n1, n2, num_subsets, subset_size)))
    return _interval(np.array(values), level)


def seeds_summary(values: Sequence[float], n_boot: int = 10000, seed: int = 0, level: float = LEVEL) -> dict[str, Any]:
    """Mean, standard deviation (ddof=1) and a percentile bootstrap interval of the mean over seeds.

    ``values``: one metric value per training seed. Returns {"n", "mean", "std", "ci"}; ``ci`` is
    (low, high) of the mean when the seeds are redrawn with replacement. With 3 seeds this interval is
    crude (the resampled means take only 10 distinct values and the interval is narrower than the
    true uncertainty); treat it as a description of the spread, not a calibrated 95% interval. With
    one seed ``std`` and ``ci`` are None: one seed says nothing about seed-to-seed variation."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) == 0:
        raise ValueError("seeds_summary needs at least one value")
    out: dict[str, Any] = {"n": int(len(v)), "mean": float(v.mean()), "std": None, "ci": None}
    if len(v) >= 2:
        out["std"] = float(v.std(ddof=1))
        rng = np.random.default_rng(seed)
        means = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1)
        out["ci"] = _interval(means, level)
    return out


def _by_seed(feats: Mapping[Any, np.ndarray] | Sequence[np.ndarray]) -> dict[Any, np.ndarray]:
    if isinstance(feats, Mapping):
        return {k: _as_f64(v) for k, v in feats.items()}
    return {i: _as_f64(v) for i, v in enumerate(feats)}


def paired_difference(
    feats_by_seed_a: Mapping[Any, np.ndarray] | Sequence[np.ndarray],
    feats_by_seed_b: Mapping[Any, np.ndarray] | Sequence[np.ndarray],
    real_feats: np.ndarray,
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "fid",
    n_boot: int | None = None,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, Any]:
    """Is row B better than row A? Mean over seeds of metric(B) - metric(A), with a hierarchical
    paired bootstrap interval and a verdict.

    Rows A and B (two methods) were trained with the same seeds and translated the same test inputs:
    ``feats_by_seed_a[s]`` and ``feats_by_seed_b[s]`` are the Inception features of the translations
    of seed ``s``, one row per test input, in the same input order for every seed and both rows.
    Give dicts {seed: features} (seeds matched by key) or lists (matched by position). When the rows'
    seeds differ only the common seeds are used, and the result's ``note`` (and a warning) says so.
    ``real_feats``: features of the real target images. ``metric``: "fid", "kid" (mean over 10 random
    subsets inside the bootstrap, the same subsets for A and B; 100 for the observed value) or a
    function metric(real_feats, fake_feats) -> float, lower is better.

    Each of ``n_boot`` resamples (``None``: :func:`default_n_boot`) redraws, with replacement,
    (1) the seeds: the same seed indices for A and B (paired), (2) the test inputs: the same indices
    for every seed of both rows, so A and B are compared on the same inputs, and (3) the real images,
    independently of the inputs (they are not paired with them), shared by A and B; and computes the
    mean over the drawn seeds of metric(B) - metric(A). The interval covers seed-to-seed and
    test-set variation; the upward bias of duplicated images (see the module notes) largely cancels
    in the difference. With one seed only test-set variation is covered; with 2-3 seeds the seed part
    is crude (few distinct resamples).

    Returns {"metric", "difference" (observed: mean over the common seeds of metric(B) - metric(A) on
    the full sets), "ci": (low, high), "level", "verdict", "seeds", "n_boot", "n_test", "n_real",
    "note"}. ``verdict``: "better" when the interval lies entirely below 0 (B has the lower FID/KID),
    "worse" when entirely above 0, "within noise" otherwise."""
    a, b = _by_seed(feats_by_seed_a), _by_seed(feats_by_seed_b)
    seeds = [s for s in a if s in b]
    if not seeds:
        raise ValueError("the two rows have no seed in common")
    note = None
    if set(a) != set(b):
        only_a, only_b = [s for s in a if s not in b], [s for s in b if s not in a]
        note = (
            f"the rows' seeds differ (only in A: {only_a}, only in B: {only_b}); "
            f"paired on the {len(seeds)} common seeds {seeds}"
        )
        warnings.warn(note, stacklevel=2)
    real = _as_f64(real_feats)
    fakes_a, fakes_b = [a[s] for s in seeds], [b[s] for s in seeds]
    n_test = len(fakes_a[0])
    if any(len(f) != n_test for f in fakes_a + fakes_b):
        raise ValueError(
            "every seed of both rows must have features for the same test inputs "
            f"(got {[len(f) for f in fakes_a]} and {[len(f) for f in fakes_b]} rows)"
        )
    n_real, k = len(real), len(seeds)
    n_boot = default_n_boot(n_real, n_test) if n_boot is None else n_boot
    rng = np.random.default_rng(seed)
    all_r, all_t = np.arange(n_real), np.arange(n_test)

    if metric == "fid":
        fid = _FID(real, fakes_a + fakes_b)
        observed = [fid(k + i, all_r, all_t) - fid(i, all_r, all_t) for i in range(k)]

        def diff(i, ri, ti):
            return fid(k + i, ri, ti) - fid(i, ri, ti)
    elif metric == "kid":
        kid = _KID(real, fakes_a + fakes_b)
        observed = [
            kid_from_features(real, fakes_b[i])[0] - kid_from_features(real, fakes_a[i])[0] for i in range(k)
        ]  # same subset draws (seed 0) for A and B

        def diff(i, ri, ti):
            return kid(k + i, ri, ti, subsets) - kid(i, ri, ti, subsets)
    elif callable(metric):
        observed = [metric(real, fakes_b[i]) - metric(real, fakes_a[i]) for i in range(k)]

        def diff(i, ri, ti):
            return metric(real[ri], fakes_b[i][ti]) - metric(real[ri], fakes_a[i][ti])
    else:
        raise ValueError(f"metric must be 'fid', 'kid' or a function, not {metric!r}")

    values = np.empty(n_boot)
    for j in range(n_boot):
        s = rng.integers(0, k, k)
        ti, ri = rng.integers(0, n_test, n_test), rng.integers(0, n_real, n_real)
        if metric == "kid":
            subsets = _subsets(rng, n_real, n_test, BOOT_KID_SUBSETS, None)
        per_seed = {i: diff(i, ri, ti) for i in np.unique(s)}
        values[j] = np.mean([per_seed[i] for i in s])
    low, high = _interval(values, level)
    verdict = "better" if high < 0 else "worse" if low > 0 else "within noise"
    return {
        "metric": metric if isinstance(metric, str) else getattr(metric, "__name__", "custom"),
        "difference": float(np.mean(observed)),
        "ci": (low, high),
        "level": level,
        "verdict": verdict,
        "seeds": seeds,
        "n_boot": int(n_boot),
        "n_test": int(n_test),
        "n_real": int(n_real),
        "note": note,
    }
