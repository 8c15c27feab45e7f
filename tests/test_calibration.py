"""Calibration of the intervals over seeds, by simulation (no training): the 95% intervals cover the
known truth 95% of the time, and a verdict on two rows of one method (A/A) says "better"/"worse"
at most 5% of the time, within 3 Monte-Carlo standard errors, sqrt(0.05 x 0.95 / reps): 0.0069 at
1000 repetitions, 0.0126 at 300, 0.0218 at 100. The full table (more cells, more repetitions, and
the methods before issue 19) is benchmarks/calibration.py's."""

import math

import numpy as np
import pytest

from unpaired.metrics.calibration import (
    Features,
    PerImage,
    features_trial,
    nominal_se,
    per_image_trial,
    per_image_values,
    rates,
    seed_values_trial,
)
from unpaired.metrics.uncertainty import (
    paired_difference,
    paired_metric_difference,
    t_quantile,
    two_level_interval,
)


def within(rate, nominal, reps):
    return abs(rate - nominal) <= 3 * nominal_se(nominal, reps)


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (0.7, 1, 2, 2.5, 3, 4, 9, 19, 57.3, 1e3, 1e6):
        for p in (0.001, 0.025, 0.3, 0.6, 0.975, 0.9999):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9, abs=1e-12)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959963984540054)


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_row_mean_interval_covers_at_any_number_of_seeds(k):
    reps = 1000
    r = rates(lambda g: seed_values_trial(g, k), reps, seed=k)
    assert within(r["coverage"], 0.95, reps), r


def test_bootstrap_of_three_seeds_does_not_cover():
    """The interval before issue 19, a percentile bootstrap of 3 values, is ~[min, max]: 75%."""

    def old(v):
        means = v[np.random.default_rng(0).integers(0, len(v), (2000, len(v)))].mean(1)
        return {"ci": tuple(np.percentile(means, [2.5, 97.5]))}

    r = rates(lambda g: seed_values_trial(g, 3, method=old), 300)
    assert r["coverage"] < 0.95 - 3 * nominal_se(0.95, 300) and r["coverage"] < 0.85


@pytest.mark.parametrize("k,n,reps", [(2, 20, 300), (3, 20, 300), (5, 100, 300), (10, 20, 300), (3, 500, 150)])
def test_paired_metric_aa_false_alarms_and_coverage(k, n, reps):
    """A/A: both rows one method (image difficulty shared, seeds and residuals independent)."""
    r = rates(lambda g: per_image_trial(g, k, n, PerImage()), reps, seed=k * 1000 + n)
    assert r["exclude_zero"] <= 0.05 + 3 * nominal_se(0.05, reps), r
    assert within(r["coverage"], 0.95, reps), r


@pytest.mark.parametrize("k,n", [(2, 20), (3, 200), (10, 20)])
def test_paired_metric_coverage_with_method_by_image_interaction(k, n):
    """B differs from A and suits some images better (an interaction shared by every seed): the
    interval covers the expected difference over seeds and test images; it may be conservative
    (both parts non-zero) but never below 95% - 3 MC se."""
    reps = 300
    p = PerImage(delta=0.5, interaction=2.0)
    r = rates(lambda g: per_image_trial(g, k, n, p), reps, seed=k * 7 + n)
    assert 0.95 - 3 * nominal_se(0.95, reps) <= r["coverage"] <= 0.995, r


def test_seeds_alone_miss_the_shared_test_set_part():
    """Ten seeds, 20 test images, an interaction much larger than the seed effects: a t interval
    over the per-seed differences alone covers far less than 95%; the two-level one covers."""
    p, reps = PerImage(delta=0.5, interaction=6.0, seed_sd=0.3), 300

    def seeds_only(a, b):
        d = [np.mean([b[s][name] - a[s][name] for name in a[s]]) for s in range(len(a))]
        return two_level_interval(d, None)

    naive = rates(lambda g: per_image_trial(g, 10, 20, p, method=seeds_only), reps)
    full = rates(lambda g: per_image_trial(g, 10, 20, p), reps)
    assert naive["coverage"] < 0.8 and within(full["coverage"], 0.95, reps), (naive, full)


@pytest.mark.parametrize("metric", ["fid", "kid"])
def test_fid_kid_aa_false_alarms(metric):
    """A/A on Inception-like features (3 seeds, 20 shared test inputs and real images, 8-d):
    100 repetitions (MC se 2.2%), jackknife over 10 groups of 2 images."""
    reps = 100
    r = rates(lambda g: features_trial(g, 3, 20, 8, Features(), Features(), 0.0, metric, groups=10), reps, seed=3)
    assert r["no_interval"] == 0 and r["exclude_zero"] <= 0.05 + 3 * nominal_se(0.05, reps), r


def test_one_seed_gives_no_interval():
    a, b = per_image_values(np.random.default_rng(0), 1, 20, PerImage())
    r = paired_metric_difference(a, b, metric="ssim")
    assert r["ci"] is None and r["verdict"] == "too few seeds"
    rng = np.random.default_rng(1)
    f = paired_difference([rng.normal(size=(10, 4))], [rng.normal(size=(10, 4))], rng.normal(size=(10, 4)))
    assert f["ci"] is None and f["verdict"] == "too few seeds"
