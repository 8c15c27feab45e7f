"""Uncertainty of FID, KID and the paired metrics: bootstrap intervals over test images, Student-t
intervals of a row's mean over seeds, and paired comparisons of two rows (methods) whose intervals
cover both training seeds and test images. Pure numpy, on Inception features and per-image values
(no images, no network): what ``evaluate run`` saves can be re-used.

Over seeds (:func:`seeds_summary`, :func:`paired_difference`, :func:`paired_metric_difference`).
Seeds are few (2, 3, 5), and a bootstrap of 3 values is [min, max] of them, a "95% interval" that
covers the mean only 75% of the time. The intervals over seeds are Student-t intervals instead,
exact for normally distributed per-seed values at any number of seeds >= 2 (and wide at 2: t with 1
degree of freedom has a 97.5% quantile of 12.7). A comparison of two rows adds the test images as a
second level: the same test inputs serve every seed, so their sampling error is shared by all seeds
and does not shrink with more seeds; :func:`two_level_interval` estimates that shared part with a
jackknife over test images and adds it to the seed-to-seed part, each scaled by its own t
quantile. The coverage of these intervals and the false-alarm rate of the verdicts on two rows of
one method (A/A) are measured on synthetic data (:mod:`unpaired.metrics.calibration`) by
tests/test_calibration.py and benchmarks/calibration.py. With one seed there is no interval ("too
few seeds").

Over test images (:func:`bootstrap_fid`, :func:`bootstrap_kid`).

What the intervals mean. A test set is one sample of images; a training seed is one sample of the
training randomness. A bootstrap redraws that sample with replacement and recomputes the metric, so
the spread of the redrawn values says how much the number would move with another test set (and,
before this module's intervals over seeds, another seed) of the same size. It is about *variability*: FID and KID
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

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from .fid import (
    default_kid_subset_size,
    fid_from_features,
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


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float, xc: float | None = None) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0 and x in [0, 1]; ``xc``: 1 - x
    when the caller has it more accurately than 1 - x (x near 1)."""
    xc = 1.0 - x if xc is None else xc
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(xc))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, xc) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom (df may be fractional, as
    Welch-Satterthwaite degrees of freedom are; ``math.inf``: the standard normal)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2))
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t), t * t / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` > 0 degrees of freedom (fractional allowed;
    ``math.inf``: the standard normal), by Newton steps on :func:`t_cdf` kept inside a bisection
    bracket; accurate to ~1e-12 relative (tests compare it with scipy.stats.t.ppf)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p == 0.5:
        return 0.0
    if df >= 1e5:  # Cornish-Fisher series in 1/df (error ~ 1/df^4); lgamma differences lose digits here
        z = NormalDist().inv_cdf(p)
        if math.isinf(df):
            return z
        return (
            z
            + (z**3 + z) / (4 * df)
            + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
        )
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:  # bracket: the quantile lies in [low, high]
        low, high = high, high * 4
    t = min(max(NormalDist().inv_cdf(p), low), high)  # start from the normal quantile
    for _ in range(200):
        f = t_cdf(t, df) - p
        if f == 0:
            return float(t)
        if f > 0:
            high = t
        else:
            low = t
        dens = (
            math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
            if math.isinf(df)
            else math.exp(
                math.lgamma((df + 1) / 2)
                - math.lgamma(df / 2)
                - 0.5 * math.log(df * math.pi)
                - (df + 1) / 2 * math.log1p(t * t / df)
            )
        )
        step = t - f / dens if dens > 0 else None
        t_next = step if step is not None and low <= step <= high else (low + high) / 2
        if abs(t_next - t) <= 1e-13 * max(1.0, abs(t)) or high - low <= 1e-13 * max(1.0, high):
            return float(t_next)
        t = t_next
    return float(t)


def t_interval(mean: float, var: float, df: float, level: float = LEVEL) -> tuple[float, float]:
    """mean ± t_{df, (1 + level) / 2} sqrt(var)."""
    half = t_quantile((1 + level) / 2, df) * math.sqrt(max(var, 0.0))
    return float(mean - half), float(mean + half)


def seeds_summary(values: Sequence[float], level: float = LEVEL) -> dict[str, Any]:
    """Mean, standard deviation (ddof=1) and the Student-t interval of the mean over seeds.

    ``values``: one metric value per training seed, all on the same test set. Returns {"n", "mean",
    "std", "ci", "df", "method"}; ``ci`` is mean ± t_{n-1} std / sqrt(n), which covers the mean over
    seeds (on this test set) with probability ``level`` when the per-seed values are normally
    distributed, for any n >= 2 (measured: tests/test_calibration.py). It is wide at 2 seeds (t_1 =
    12.7) and 3 (t_2 = 4.3): that is what two or three values say. With one seed ``std`` and ``ci``
    are None ("too few seeds")."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) == 0:
        raise ValueError("seeds_summary needs at least one value")
    n = len(v)
    out: dict[str, Any] = {"n": n, "mean": float(v.mean()), "std": None, "ci": None, "df": None, "method": "student-t"}
    if n >= 2:
        out["std"] = float(v.std(ddof=1))
        out["df"] = n - 1
        out["ci"] = t_interval(out["mean"], out["std"] ** 2 / n, n - 1, level)
    return out


def _jackknife_var(replicates: np.ndarray) -> np.ndarray:
    """Delete-a-group jackknife variance over the last axis (G leave-one-group-out values)."""
    g = replicates.shape[-1]
    return (g - 1) / g * ((replicates - replicates.mean(-1, keepdims=True)) ** 2).sum(-1)


def two_level_interval(
    per_seed: Sequence[float], replicates: np.ndarray | None = None, level: float = LEVEL
) -> dict[str, Any]:
    """Interval of the mean over seeds of a statistic measured on one shared test set.

    ``per_seed``: the statistic (a metric, or a difference of two rows' metrics) of each of k seeds on
    the full test set. ``replicates``: k x G values of the same statistic with the g-th group of test
    images left out (a delete-a-group jackknife; the same groups for every seed), or None when the
    test set is not a sample to generalise over.

    Model: value(seed s) = truth + seed effect + test-set effect shared by all seeds + a seed-specific
    response to the test set. The sample variance of the k values over k estimates the seed part
    (seed effects and seed-specific test-set responses), with k - 1 degrees of freedom. The shared
    test-set part is the jackknife variance of the seed-averaged statistic minus the seed-specific
    part, (k V(avg) - mean_s V(s)) / (k - 1), floored at 0, with G - 1 degrees of freedom (for means
    of per-image values this is exactly the two-way ANOVA estimate (MS_images - MS_residual) / (k n)).
    Each part is scaled by its own t quantile and the two are added in quadrature:
    half-width = sqrt(t_{k-1}^2 V_seeds + t_{G-1}^2 V_test). This is the Student-t interval when the
    test-set part is 0 (as in an A/A comparison), the jackknife-t one when the seed part is 0, and
    conservative in between; the usual Welch-Satterthwaite pooling instead covers only ~88-91% at 2
    seeds (measured, benchmarks/calibration.py), because it trusts a seed variance with 1 degree of
    freedom as soon as the test-set part looks non-zero. The interval is for the expectation over
    seeds *and* test sets of the same size.

    Returns {"mean", "ci" (None with one seed), "se", "var_seeds", "var_test_set", "df_seeds",
    "df_test_set", "n_seeds"}."""
    x = np.asarray(per_seed, dtype=np.float64).ravel()
    k = len(x)
    out: dict[str, Any] = {"mean": float(x.mean()), "ci": None, "se": None, "n_seeds": k}
    out.update(var_seeds=None, var_test_set=None, df_seeds=None, df_test_set=None)
    if k < 2:
        return out
    v_seed = float(x.var(ddof=1) / k)
    v_test, df_test = 0.0, None
    if replicates is not None:
        r = np.asarray(replicates, dtype=np.float64)
        if r.ndim != 2 or r.shape[0] != k or r.shape[1] < 2:
            raise ValueError(f"replicates must be k x G with G >= 2 (k = {k}), got shape {r.shape}")
        v_avg, v_per = float(_jackknife_var(r.mean(0))), float(_jackknife_var(r).mean())
        v_test, df_test = max(0.0, (k * v_avg - v_per) / (k - 1)), r.shape[1] - 1
    q = (1 + level) / 2
    half = math.sqrt(t_quantile(q, k - 1) ** 2 * v_seed + (t_quantile(q, df_test) ** 2 * v_test if v_test else 0.0))
    out.update(
        var_seeds=v_seed,
        var_test_set=v_test,
        df_seeds=k - 1,
        df_test_set=df_test,
        se=math.sqrt(v_seed + v_test),
        ci=(out["mean"] - half, out["mean"] + half),
    )
    return out


def verdict(ci: tuple[float, float] | None, higher_is_better: bool = False) -> str:
    """'better' (B better than A) when the interval of B - A excludes 0 on B's good side, 'worse' when
    it excludes 0 on the other, 'within noise' when it contains 0, 'too few seeds' without one."""
    if ci is None:
        return "too few seeds"
    low, high = ci
    if high < 0 or (high == 0 and low < 0):
        return "worse" if higher_is_better else "better"
    if low > 0 or (low == 0 and high > 0):
        return "better" if higher_is_better else "worse"
    return "within noise"


def _by_seed(feats: Mapping[Any, Any] | Sequence[Any]) -> dict[Any, Any]:
    return dict(feats.items()) if isinstance(feats, Mapping) else dict(enumerate(feats))


def _common_seeds(a: dict, b: dict) -> tuple[list, str | None]:
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
        warnings.warn(note, stacklevel=3)
    return seeds, note


def _groups(rng: np.random.Generator, n: int, g: int) -> list[np.ndarray]:
    """n items in g groups of (nearly) equal size, at random."""
    return np.array_split(rng.permutation(n), g)


JACKKNIFE_GROUPS = 20


def paired_difference(
    feats_by_seed_a: Mapping[Any, np.ndarray] | Sequence[np.ndarray],
    feats_by_seed_b: Mapping[Any, np.ndarray] | Sequence[np.ndarray],
    real_feats: np.ndarray,
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "fid",
    groups: int = JACKKNIFE_GROUPS,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, Any]:
    """Is row B better than row A? Mean over seeds of metric(B) - metric(A), with a two-level
    Student-t interval (seeds and test images, :func:`two_level_interval`) and a verdict.

    Rows A and B (two methods, or one method twice for an A/A check) were trained with k seeds and
    translated the same test inputs: ``feats_by_seed_a[s]`` and ``feats_by_seed_b[s]`` are the
    Inception features of the translations of seed ``s``, one row per test input, in the same input
    order for every seed and both rows. Give dicts {seed: features} (seeds matched by key) or lists
    (matched by position: the i-th run of A with the i-th of B). When the rows' seeds differ only
    the common seeds are used, and the result's ``note`` (and a warning) says so. ``real_feats``:
    features of the real target images. ``metric``: "fid", "kid" (the unbiased MMD^2 over all pairs
    of the full sets, the quantity KID's subset average estimates, without its subset noise) or a
    function metric(real_feats, fake_feats) -> float, lower is better.

    The per-seed differences on the full sets give the seed part of the variance; a delete-a-group
    jackknife (``groups`` groups of test inputs, each deleted together with a group of real images;
    the same groups for every seed and both rows) gives the test-set part shared by all seeds. The
    interval (:func:`two_level_interval`) covers the expected difference over seeds and test sets of
    this size (its coverage, and the false-alarm rate of the verdict on A/A data, are measured by
    tests/test_calibration.py and benchmarks/calibration.py); with one seed there is none and the
    verdict is "too few seeds".

    Returns {"metric", "difference", "ci": (low, high) or None, "level", "verdict", "seeds", "se",
    "var_seeds", "var_test_set", "df_seeds", "df_test_set", "per_seed", "groups", "n_test", "n_real",
    "method", "note"}.
    ``verdict``: "better" when the interval lies entirely below 0 (B has the lower FID/KID),
    "worse" when entirely above 0, "within noise" otherwise."""
    a, b = _by_seed(feats_by_seed_a), _by_seed(feats_by_seed_b)
    seeds, note = _common_seeds(a, b)
    real = _as_f64(real_feats)
    fakes_a, fakes_b = [_as_f64(a[s]) for s in seeds], [_as_f64(b[s]) for s in seeds]
    n_test = len(fakes_a[0])
    if any(len(f) != n_test for f in fakes_a + fakes_b):
        raise ValueError(
            "every seed of both rows must have features for the same test inputs "
            f"(got {[len(f) for f in fakes_a]} and {[len(f) for f in fakes_b]} rows)"
        )
    n_real, k = len(real), len(seeds)

    if metric == "fid":
        fid = _FID(real, fakes_a + fakes_b)

        def diff(i, ri, ti):
            return fid(k + i, ri, ti) - fid(i, ri, ti)
    elif metric == "kid":
        kid = _KID(real, fakes_a + fakes_b)

        def diff(i, ri, ti):
            whole = [(np.arange(len(ri)), np.arange(len(ti)))]
            return kid(k + i, ri, ti, whole) - kid(i, ri, ti, whole)
    elif callable(metric):

        def diff(i, ri, ti):
            return metric(real[ri], fakes_b[i][ti]) - metric(real[ri], fakes_a[i][ti])
    else:
        raise ValueError(f"metric must be 'fid', 'kid' or a function, not {metric!r}")

    all_r, all_t = np.arange(n_real), np.arange(n_test)
    observed = np.array([diff(i, all_r, all_t) for i in range(k)])
    replicates = None
    g = min(groups, n_test, n_real)
    if k >= 2 and g >= 2:
        rng = np.random.default_rng(seed)
        test_groups, real_groups = _groups(rng, n_test, g), _groups(rng, n_real, g)
        keep = [
            (np.setdiff1d(all_r, rg, assume_unique=True), np.setdiff1d(all_t, tg, assume_unique=True))
            for rg, tg in zip(real_groups, test_groups)
        ]
        replicates = np.array([[diff(i, ri, ti) for ri, ti in keep] for i in range(k)])
    res = two_level_interval(observed, replicates, level)
    return {
        "metric": metric if isinstance(metric, str) else getattr(metric, "__name__", "custom"),
        "difference": res["mean"],
        "ci": res["ci"],
        "level": level,
        "verdict": verdict(res["ci"]),
        "seeds": seeds,
        **{key: res[key] for key in ("se", "var_seeds", "var_test_set", "df_seeds", "df_test_set")},
        "per_seed": observed.tolist(),
        "groups": int(g),
        "n_test": int(n_test),
        "n_real": int(n_real),
        "method": "two-level t (seeds; jackknife over test images)",
        "note": note,
    }


HIGHER_IS_BETTER = {"fid": False, "kid": False, "l1": False, "psnr": True, "ssim": True, "pixel_acc": True}


def paired_metric_difference(
    values_by_seed_a: Mapping[Any, Mapping[str, float]] | Sequence[Mapping[str, float]],
    values_by_seed_b: Mapping[Any, Mapping[str, float]] | Sequence[Mapping[str, float]],
    metric: str = "l1",
    higher_is_better: bool | None = None,
    level: float = LEVEL,
) -> dict[str, Any]:
    """Is row B better than row A on a per-image metric (L1, PSNR, SSIM, pixel accuracy)?

    ``values_by_seed_a[s]``: {test input name: value} of row A's seed ``s`` (the ``per_image`` values
    ``evaluate run`` saves, one metric); the same for B. Seeds are matched as in
    :func:`paired_difference`, images by name (those every seed of both rows has). The difference
    B - A per seed and image is averaged; the interval is :func:`two_level_interval` with the exact
    leave-one-image-out replicates (the two-way seeds x images ANOVA). ``higher_is_better``: default
    from :data:`HIGHER_IS_BETTER` (L1 lower, PSNR/SSIM/pixel accuracy higher); the verdict is from
    B's side ("better": B is better).

    Returns the keys of :func:`paired_difference` (``groups`` is the number of images) and
    ``higher_is_better``."""
    if higher_is_better is None:
        if metric not in HIGHER_IS_BETTER:
            raise ValueError(f"say whether a higher {metric!r} is better (higher_is_better=True/False)")
        higher_is_better = HIGHER_IS_BETTER[metric]
    a, b = _by_seed(values_by_seed_a), _by_seed(values_by_seed_b)
    seeds, note = _common_seeds(a, b)
    names = sorted(set.intersection(*(set(a[s]) & set(b[s]) for s in seeds)))
    if len(names) < 2:
        raise ValueError(f"the rows share fewer than 2 test images with {metric} values for every seed")
    d = np.array([[b[s][n] - a[s][n] for n in names] for s in seeds], dtype=np.float64)  # k x n
    k, n = d.shape
    observed = d.mean(1)
    loo = (d.sum(1, keepdims=True) - d) / (n - 1) if k >= 2 else None  # leave-one-image-out means
    res = two_level_interval(observed, loo, level)
    return {
        "metric": metric,
        "difference": res["mean"],
        "ci": res["ci"],
        "level": level,
        "verdict": verdict(res["ci"], higher_is_better),
        "higher_is_better": higher_is_better,
        "seeds": seeds,
        **{key: res[key] for key in ("se", "var_seeds", "var_test_set", "df_seeds", "df_test_set")},
        "per_seed": observed.tolist(),
        "groups": int(n),
        "n_test": int(n),
        "n_real": int(n),
        "method": "two-level t (seeds; images, two-way ANOVA)",
        "note": note,
    }
