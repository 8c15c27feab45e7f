"""Bootstrap intervals, seed summaries and the paired comparison, on synthetic features."""

import time

import numpy as np
import pytest

from unpaired.metrics.fid import fid_from_features, kid_from_features
from unpaired.metrics.uncertainty import (
    _FID,
    _KID,
    bootstrap_fid,
    bootstrap_kid,
    default_n_boot,
    paired_difference,
    paired_metric_difference,
    seeds_summary,
    two_level_interval,
)

D = 16


def mmd2(x, y):
    """Unbiased MMD^2 over all pairs with KID's kernel, written out."""
    kxx, kyy, kxy = ((a @ b.T / a.shape[1] + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    n, m = len(x), len(y)
    return (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()


def gauss(rng, n, shift=0.0, scale=1.0, d=D):
    return rng.standard_normal((n, d)) * scale + shift


def test_resampled_fid_and_kid_equal_direct_computation():
    """The Gram-matrix FID and the kernel-matrix KID of a resample equal the direct formulas."""
    rng = np.random.default_rng(0)
    real, fake = gauss(rng, 30, d=64), gauss(rng, 25, 0.3, d=64)
    fid, kid = _FID(real, [fake]), _KID(real, [fake])
    assert fid.gram
    for _ in range(3):
        ri, fi = rng.integers(0, 30, 30), rng.integers(0, 25, 25)
        assert fid(0, ri, fi) == pytest.approx(fid_from_features(real[ri], fake[fi]), rel=1e-9, abs=1e-9)
    # without duplicates the KID of the kernel matrices is kid_from_features' estimator
    pa, pb = rng.choice(30, 12, replace=False), rng.choice(25, 12, replace=False)
    x, y = real[pa], fake[pb]
    kxx, kyy, kxy = ((a @ b.T / 64 + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    want = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (12 * 11) - 2 * kxy.mean()
    assert kid(0, np.arange(30), np.arange(25), [(pa, pb)]) == pytest.approx(want, rel=1e-10)
    # large sets (n1 n2 > d^2) take fid_from_features' covariance path
    big = _FID(gauss(rng, 40, d=4), [gauss(rng, 40, d=4)])
    assert not big.gram


def test_bootstrap_fid_fast_and_narrows_with_sample_size():
    rng = np.random.default_rng(1)
    real, fake = gauss(rng, 55, d=2048), gauss(rng, 55, 0.2, d=2048)
    t0 = time.perf_counter()
    low, high = bootstrap_fid(real, fake, n_boot=1000)
    assert time.perf_counter() - t0 < 20  # ~0.5 s on one free core; generous for a loaded machine
    # the documented upward bias of duplicates: 55 images in 2048-d, the interval lies above the value
    assert fid_from_features(real, fake) < low < high
    widths = []
    for n in (40, 400):  # in 4-d the bias is small next to the spread
        r, f = gauss(rng, n, d=4), gauss(rng, n, 0.5, d=4)
        lo, hi = bootstrap_fid(r, f, n_boot=300)
        assert lo < fid_from_features(r, f) < hi
        widths.append(hi - lo)
    assert widths[1] < 0.5 * widths[0]  # ~1/sqrt(10) expected


def test_bootstrap_kid_contains_observed_value():
    rng = np.random.default_rng(2)
    real, fake = gauss(rng, 60), gauss(rng, 60, 0.7)
    kid, _ = kid_from_features(real, fake)
    low, high = bootstrap_kid(real, fake, n_boot=300)
    assert low < kid < high and low > 0  # clearly different distributions: the whole interval above 0


def test_default_n_boot_falls_with_set_size():
    assert default_n_boot(55, 55) == 1000 and default_n_boot(55, 800) == 300
    assert default_n_boot(2000, 2000) == 100 and default_n_boot(10000, 500) == 30


def test_seeds_summary_is_a_student_t_interval():
    v = [31.2, 29.8, 33.5]
    s = seeds_summary(v)
    assert s["n"] == 3 and s["mean"] == pytest.approx(np.mean(v)) and s["std"] == pytest.approx(np.std(v, ddof=1))
    half = 4.302652729749464 * np.std(v, ddof=1) / np.sqrt(3)  # t_{2, 0.975}
    assert s["ci"] == pytest.approx((np.mean(v) - half, np.mean(v) + half)) and s["df"] == 2
    assert s["ci"][0] < min(v) and s["ci"][1] > max(v)  # 3 values: wider than their range
    one = seeds_summary([30.0])
    assert one["mean"] == 30.0 and one["std"] is None and one["ci"] is None


def test_two_level_interval_adds_the_shared_test_set_part():
    """Means of per-image values: the two-way ANOVA (seeds x images) estimate, by hand."""
    rng = np.random.default_rng(5)
    k, n = 3, 12
    d = rng.normal(size=(k, n)) + rng.normal(size=n) * 2  # a large image effect shared by the seeds
    loo = (d.sum(1, keepdims=True) - d) / (n - 1)
    r = two_level_interval(d.mean(1), loo)
    grand, seed_m, img_m = d.mean(), d.mean(1), d.mean(0)
    ms_img = k * ((img_m - grand) ** 2).sum() / (n - 1)
    ms_err = ((d - seed_m[:, None] - img_m[None, :] + grand) ** 2).sum() / ((k - 1) * (n - 1))
    assert r["var_seeds"] == pytest.approx(seed_m.var(ddof=1) / k)
    assert r["var_test_set"] == pytest.approx((ms_img - ms_err) / (k * n))
    half = np.sqrt(4.302652729749464**2 * r["var_seeds"] + 2.200985160082949**2 * r["var_test_set"])  # t_2, t_11
    assert r["ci"] == pytest.approx((grand - half, grand + half))
    no_images = two_level_interval(d.mean(1))
    assert no_images["var_test_set"] == 0 and no_images["ci"][1] - no_images["ci"][0] < r["ci"][1] - r["ci"][0]
    assert two_level_interval([1.0])["ci"] is None


def test_paired_metric_difference_direction_and_pairing():
    rng = np.random.default_rng(6)
    names = [f"x{i}.png" for i in range(15)]
    a = {s: {n: 0.5 + 0.05 * rng.normal() for n in names} for s in (0, 1, 2)}
    b = {s: {n: v + 0.1 for n, v in a[s].items()} | {"extra.png": 9.0} for s in (0, 1, 2)}  # B higher everywhere
    up = paired_metric_difference(a, b, metric="ssim")  # higher is better
    assert up["difference"] == pytest.approx(0.1) and up["verdict"] == "better" and up["n_test"] == 15
    down = paired_metric_difference(a, b, metric="l1")  # lower is better
    assert down["verdict"] == "worse"
    with pytest.raises(ValueError, match="higher_is_better"):
        paired_metric_difference(a, b, metric="lpips")


@pytest.mark.parametrize("metric", ["fid", "kid"])
def test_paired_difference_finds_the_better_row(metric):
    rng = np.random.default_rng(3)
    real = gauss(rng, 50)
    close = {s: gauss(rng, 50, 0.1) for s in (0, 1, 2)}  # near the real distribution
    far = {s: gauss(rng, 50, 0.8) for s in (0, 1, 2)}  # clearly shifted
    r = paired_difference(far, close, real, metric=metric)  # B = close: lower FID/KID
    assert r["verdict"] == "better" and r["difference"] < 0 and r["ci"][0] <= r["difference"] <= r["ci"][1]
    assert r["seeds"] == [0, 1, 2] and r["n_test"] == 50 and r["note"] is None
    want = (
        np.mean([fid_from_features(real, close[s]) - fid_from_features(real, far[s]) for s in (0, 1, 2)])
        if metric == "fid"
        else np.mean([mmd2(real, close[s]) - mmd2(real, far[s]) for s in (0, 1, 2)])
    )
    assert r["difference"] == pytest.approx(want)
    swapped = paired_difference(close, far, real, metric=metric)
    assert swapped["verdict"] == "worse" and swapped["difference"] == pytest.approx(-r["difference"])


def test_paired_difference_pairs_common_seeds_and_custom_metric():
    rng = np.random.default_rng(4)
    real = gauss(rng, 30)
    a = {0: gauss(rng, 30, 0.5), 1: gauss(rng, 30, 0.5), 7: gauss(rng, 30, 0.5)}
    b = {0: gauss(rng, 30, 0.5), 1: gauss(rng, 30, 0.5), 2: gauss(rng, 30, 0.5)}

    def mean_gap(r, f):
        return float(np.abs(r.mean(0) - f.mean(0)).sum())

    with pytest.warns(UserWarning, match="common seeds"):
        r = paired_difference(a, b, real, metric=mean_gap)
    assert r["seeds"] == [0, 1] and "only in A: [7]" in r["note"] and r["metric"] == "mean_gap"
    with pytest.raises(ValueError, match="same test inputs"):
        paired_difference({0: a[0]}, {0: a[0][:20]}, real)
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({0: a[0]}, {1: a[0]}, real)


def test_resampled_kid_leaves_out_pairs_of_copies():
    """In a resample with duplicates, a pair of copies of one image is a self-pair: the KID of the
    kernel matrices averages k only over pairs of *different* original images (explicit loops here)."""
    rng = np.random.default_rng(5)
    real, fake = gauss(rng, 12, d=8), gauss(rng, 10, 0.4, d=8)
    ri, fi = rng.integers(0, 12, 12), rng.integers(0, 10, 10)
    assert len(set(ri)) < 12 and len(set(fi)) < 10  # the draw has duplicates
    pa, pb = np.arange(12), np.arange(10)  # one subset: the whole resample

    def k(u, v):
        return (u @ v / 8 + 1) ** 3

    def within(feats, idx):
        pairs = [(i, j) for i in idx for j in idx if i != j]  # i, j: original images (copies share one)
        return sum(k(feats[i], feats[j]) for i, j in pairs) / len(pairs)

    cross = np.mean([k(real[i], fake[j]) for i in ri for j in fi])
    want = within(real, ri) + within(fake, fi) - 2 * cross
    assert _KID(real, [fake])(0, ri, fi, [(pa, pb)]) == pytest.approx(want, rel=1e-10)


def test_bootstrap_kid_of_one_distribution_covers_zero():
    """Two samples of one distribution: the interval contains 0 (counting copies as different images
    would add ~2 (mean k(x,x) - mean k(x,y)) / n and lift the whole interval above 0: (0.11, 0.75) here)."""
    for s in range(3):
        rng = np.random.default_rng(s)
        real, fake = gauss(rng, 40), gauss(rng, 40)
        low, high = bootstrap_kid(real, fake, n_boot=200)
        assert low < 0 < high
        assert low < kid_from_features(real, fake)[0] < high
