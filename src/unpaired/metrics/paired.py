"""Paired metrics: a translation against the real target of the same input, where a split keeps pairs
(``<split>A/x.png`` and ``<split>B/x.png`` show the same scene, as ``unpaired data split`` makes them
for paired sources).

Per image pair, on RGB uint8 arrays of the same size (``evaluate run`` resizes both to the evaluation
size, bicubic, as it does for FID):

- ``l1``: mean absolute difference in [0, 1] units (levels / 255), over pixels and channels;
- ``psnr``: 10 log10(1 / MSE) in dB with data range 1, capped at :data:`PSNR_CAP` (100 dB) so that
  identical images (infinite PSNR) keep means and JSON finite; a real 8-bit difference of one level
  in one channel of one pixel of a 256 x 256 image already gives ~101 dB, so the cap only ever
  replaces "identical" and "nearly identical";
- ``ssim``: the standard SSIM of Wang et al. 2004: 11 x 11 Gaussian window with sigma 1.5, K1 = 0.01,
  K2 = 0.03, data range 1, population (not sample) variances, the mean of the SSIM map over the
  positions where the window lies inside the image, computed per RGB channel and averaged (as
  scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=-1)`` does);
- ``pixel_acc``: the fraction of pixels whose every RGB channel is within ``tolerance`` levels
  (out of 255) of the target's: the per-pixel accuracy used for photo -> label-map tasks such as
  Google maps or face parsing, where the target is made of flat colours and a pixel is "right" when
  it has the right colour. Papers use different small tolerances; the default is
  :data:`DEFAULT_TOLERANCE` (10 levels, ~4%), recorded with every result. It means little for
  photographic targets (nearly every pixel of a photo differs by more than a few levels).

These measure closeness to one particular target; an unpaired translation may be good and still far
from it (another plausible outline, another colour of shirt), so read them next to FID/KID.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PSNR_CAP = 100.0
DEFAULT_TOLERANCE = 10
SSIM_SIGMA, SSIM_RADIUS, SSIM_K1, SSIM_K2 = 1.5, 5, 0.01, 0.03


def _float(x: np.ndarray) -> np.ndarray:
    """uint8 -> [0, 1] float64; floats are taken to be in [0, 1] already."""
    x = np.asarray(x)
    return x.astype(np.float64) / 255 if x.dtype == np.uint8 else x.astype(np.float64)


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"paired images must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def l1(image: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference in [0, 1] units (uint8 inputs are divided by 255)."""
    a, b = _pair(image, target)
    return float(np.abs(_float(a) - _float(b)).mean())


def psnr(image: np.ndarray, target: np.ndarray, cap: float | None = PSNR_CAP) -> float:
    """Peak signal-to-noise ratio in dB with data range 1: 10 log10(1 / MSE); ``cap`` (100 dB, None
    for none) bounds it, identical images give ``cap`` (or inf)."""
    a, b = _pair(image, target)
    mse = float(((_float(a) - _float(b)) ** 2).mean())
    value = float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
    return float(value if cap is None else min(value, cap))


def _gaussian_window() -> np.ndarray:
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of (..., H, W) with the 1-D window g on both axes."""
    win = np.lib.stride_tricks.sliding_window_view
    x = win(x, len(g), axis=-1) @ g
    return np.moveaxis(win(np.moveaxis(x, -2, -1), len(g), axis=-1) @ g, -1, -2)


def ssim(image: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM (Gaussian window 11 x 11, sigma 1.5, K1 0.01, K2 0.03, data range 1), per channel
    of (H, W, C) images (or (H, W) grey images), averaged over channels. Images need at least 11 x 11
    pixels."""
    a, b = _pair(image, target)
    x, y = _float(a), _float(b)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    if min(x.shape[:2]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(
            f"SSIM needs images of at least {2 * SSIM_RADIUS + 1} x {2 * SSIM_RADIUS + 1} pixels, "
            f"got {x.shape[0]} x {x.shape[1]}"
        )
    x, y = np.moveaxis(x, -1, 0), np.moveaxis(y, -1, 0)  # (C, H, W)
    g = _gaussian_window()
    mx, my, xx, yy, xy = (_filter_valid(v, g) for v in (x, y, x * x, y * y, x * y))
    vx, vy, cxy = xx - mx * mx, yy - my * my, xy - mx * my
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean(axis=(1, 2)).mean())


def pixel_accuracy(image: np.ndarray, target: np.ndarray, tolerance: int = DEFAULT_TOLERANCE) -> float:
    """Fraction of pixels whose every channel differs from the target's by at most ``tolerance``
    levels (uint8 images, 0-255), the accuracy used for label-map targets (maps, face parsing)."""
    a, b = _pair(image, target)
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError("pixel_accuracy compares 8-bit levels: give uint8 images")
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    ok = diff <= tolerance
    return float((ok.all(axis=-1) if ok.ndim == 3 else ok).mean())


def pair_metrics(image: np.ndarray, target: np.ndarray, tolerance: int = DEFAULT_TOLERANCE) -> dict[str, float]:
    """{"l1", "psnr", "ssim", "pixel_acc"} of one translation against its target."""
    return {
        "l1": l1(image, target),
        "psnr": psnr(image, target),
        "ssim": ssim(image, target),
        "pixel_acc": pixel_accuracy(image, target, tolerance),
    }


def paired_scores(
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    names: Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Means over pairs and per-image values keyed by ``names``:
    {"l1", "psnr", "ssim", "pixel_acc" (means), "tolerance", "n_pairs", "per_image": {name: {...}}}."""
    if not (len(images) == len(targets) == len(names)) or not names:
        raise ValueError("paired_scores needs as many images, targets and names, at least one")
    per_image = {n: pair_metrics(i, t, tolerance) for n, i, t in zip(names, images, targets)}
    keys = ("l1", "psnr", "ssim", "pixel_acc")
    means = {k: float(np.mean([v[k] for v in per_image.values()])) for k in keys}
    return {**means, "tolerance": int(tolerance), "n_pairs": len(per_image), "per_image": per_image}


def find_pairs(inputs: Sequence[Path], target_files: Sequence[Path]) -> list[Path] | None:
    """The target of every input (same file stem), or None when one input has none (or several):
    the split does not keep pairs."""
    by_stem: dict[str, list[Path]] = {}
    for p in target_files:
        by_stem.setdefault(Path(p).stem, []).append(Path(p))
    out = []
    for p in inputs:
        found = by_stem.get(Path(p).stem, [])
        if len(found) != 1:
            return None
        out.append(found[0])
    return out
