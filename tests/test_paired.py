"""Paired metrics against scikit-image and hand-made examples."""

from pathlib import Path

import numpy as np
import pytest

from unpaired.metrics.paired import PSNR_CAP, find_pairs, l1, paired_scores, pixel_accuracy, psnr, ssim


def noisy_pair(seed=0, shape=(40, 37, 3), noise=40):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize("seed,shape", [(0, (40, 37, 3)), (1, (64, 64, 3)), (2, (23, 31))])
def test_psnr_ssim_match_scikit_image(seed, shape):
    metrics = pytest.importorskip("skimage.metrics")
    a, b = noisy_pair(seed, shape)
    kw = {"channel_axis": -1} if len(shape) == 3 else {}
    want = metrics.structural_similarity(
        a / 255, b / 255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, **kw
    )
    assert ssim(a, b) == pytest.approx(want, abs=1e-10)
    assert psnr(a, b) == pytest.approx(metrics.peak_signal_noise_ratio(a / 255, b / 255, data_range=1), rel=1e-12)
    # smooth images too (the random ones have little structure)
    y, x = np.mgrid[:48, :48]
    c = np.stack([np.sin(x / 5), np.cos(y / 7), np.sin((x + y) / 9)], -1) * 0.5 + 0.5
    d = np.clip(c + 0.05 * np.random.default_rng(seed).standard_normal(c.shape), 0, 1)
    want = metrics.structural_similarity(
        c, d, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
    )
    assert ssim(c, d) == pytest.approx(want, abs=1e-10)


def test_identical_images():
    a, _ = noisy_pair()
    assert l1(a, a) == 0 and psnr(a, a) == PSNR_CAP and psnr(a, a, cap=None) == float("inf")
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12) and pixel_accuracy(a, a, 0) == 1.0


def test_l1_and_pixel_accuracy_by_hand():
    target = np.zeros((2, 2, 3), np.uint8)
    image = target.copy()
    image[0, 0] = (10, 10, 10)  # within 10 levels on every channel: right
    image[0, 1] = (0, 11, 0)  # one channel 11 levels off: wrong
    image[1, 0] = (255, 0, 0)  # wrong
    assert pixel_accuracy(image, target, tolerance=10) == 0.5
    assert pixel_accuracy(image, target, tolerance=11) == 0.75
    assert pixel_accuracy(image, target, tolerance=255) == 1.0
    assert l1(image, target) == pytest.approx((30 + 11 + 255) / 255 / 12)
    with pytest.raises(ValueError, match="uint8"):
        pixel_accuracy(image / 255, target / 255)
    with pytest.raises(ValueError, match="same shape"):
        l1(image, target[:1])


def test_paired_scores_and_find_pairs():
    a, b = noisy_pair()
    r = paired_scores([a, a], [b, a], ["x.png", "y.png"], tolerance=5)
    assert r["n_pairs"] == 2 and r["tolerance"] == 5 and set(r["per_image"]) == {"x.png", "y.png"}
    assert r["per_image"]["y.png"]["l1"] == 0 and r["l1"] == pytest.approx(l1(a, b) / 2)
    assert r["psnr"] == pytest.approx((psnr(a, b) + PSNR_CAP) / 2)
    inputs = [Path("A/1.png"), Path("A/2.jpg")]
    assert find_pairs(inputs, [Path("B/2.png"), Path("B/1.png"), Path("B/3.png")]) == [Path("B/1.png"), Path("B/2.png")]
    assert find_pairs(inputs, [Path("B/1.png")]) is None
