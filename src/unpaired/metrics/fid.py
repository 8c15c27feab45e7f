"""FID and KID between image sets, and cached reference statistics.

FID (Heusel et al. 2017) as pytorch-fid computes it: float64 mean and covariance of Inception pool
features, ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2). pytorch-fid takes scipy's sqrtm of S1 S2
(~13 s for 2048 x 2048 on 2 cores, complex round-off for singular covariances). The trace only
needs the eigenvalues of S1 S2, which are real and non-negative:
- from features (n1, n2 < 2048, the usual test-set case): with centred features X1, X2,
  S1 S2 has the non-zero eigenvalues of (X1 X2^T)(X1 X2^T)^T / ((n1-1)(n2-1)), so the trace is the
  sum of the singular values of the small n1 x n2 matrix X1 X2^T: exact, and 0 to 1e-12 for a set
  against itself;
- from statistics: Tr((S1^1/2 S2 S1^1/2)^1/2) through two symmetric eigendecompositions (~2 s).

KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel (x.y / d + 1)^3, averaged over random
subsets (mean and standard deviation), suited to small test sets. Being unbiased for *independent*
samples, it is slightly negative for a set scored against itself. Subset size: see
:func:`default_kid_subset_size` (1000, or half the smaller set when a set has fewer than 2000 images).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..data.images import ImageError, file_sha256, list_images, load_image
from .inception import WEIGHTS_SHA1, features, load_inception

STATS_VERSION = 1  # bump when preprocessing or the feature pipeline changes: old caches become stale


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    diff = mu1 - mu2
    w1, v1 = np.linalg.eigh(sigma1)
    sqrt1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    m = sqrt1 @ sigma2 @ sqrt1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)
    n1, n2, d = len(f1), len(f2), f1.shape[1]
    if n1 < 2 or n2 < 2:
        raise ValueError("FID needs at least 2 images on each side")
    if n1 * n2 > d * d:  # large sets: the covariance form is cheaper
        return frechet_distance(*statistics(f1), *statistics(f2))
    mu1, mu2 = f1.mean(0), f2.mean(0)
    x1, x2 = f1 - mu1, f2 - mu2
    tr1 = (x1 * x1).sum() / (n1 - 1)
    tr2 = (x2 * x2).sum() / (n2 - 1)
    tr_covmean = np.linalg.svd(x1 @ x2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = mu1 - mu2
    return float(diff @ diff + tr1 + tr2 - 2 * tr_covmean)


KID_SUBSET_SIZE = 1000  # the usual choice (Binkowski et al.; torch-fidelity, clean-fid) for large sets


def default_kid_subset_size(n1: int, n2: int, preferred: int = KID_SUBSET_SIZE) -> int:
    """The KID subset size for sets of ``n1`` and ``n2`` images.

    ``preferred`` (1000) when both sets have at least twice as many images, else half the smaller set
    (at least 2). A subset size equal to the set size would draw the whole set every time, so the
    standard deviation over subsets would be 0 and say nothing; half the set keeps the subsets
    different. The mean over subsets estimates the same quantity for any subset size (the estimator
    is unbiased; its expectation over random subsets is the full-set unbiased MMD^2), only its spread
    depends on the size."""
    m = min(n1, n2)
    return preferred if m >= 2 * preferred else max(2, m // 2)


def kid_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's polynomial kernel (x . y / d + 1) ** 3 between the rows of x and y."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def kid_from_features(
    f1: np.ndarray, f2: np.ndarray, num_subsets: int = 100, subset_size: int | None = None, seed: int = 0
) -> tuple[float, float]:
    """Mean and standard deviation of the unbiased MMD^2 over random subsets of both sets.

    Each of ``num_subsets`` subsets draws ``subset_size`` images from each set without replacement;
    ``None`` picks :func:`default_kid_subset_size` (1000 when both sets have at least 2000 images, else half
    the smaller set, at least 2); an explicit size is capped at the smaller set. The standard
    deviation (ddof=0) is the spread of KID over subsets *of that size*: it is not the standard error
    of the mean and not an interval for the test set's KID (see
    :func:`unpaired.metrics.uncertainty.bootstrap_kid` for that)."""
    if min(len(f1), len(f2)) < 2:
        raise ValueError("KID needs at least 2 images on each side")
    if subset_size is None:
        subset_size = default_kid_subset_size(len(f1), len(f2))
    m = min(len(f1), len(f2), subset_size)
    if m < 2:
        raise ValueError("KID needs subsets of at least 2 images")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = kid_kernel(x, x), kid_kernel(y, y), kid_kernel(x, y)
        values.append(
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
        )
    return float(np.mean(values)), float(np.std(values))


def list_image_files(folder: str | Path) -> list[Path]:
    """The images of ``folder`` (:func:`unpaired.data.images.list_images`, warning about entries the
    listing rule skipped); an error if there are none."""
    files = list_images(folder, warn=True)
    if not files:
        raise ImageError(f"{folder} contains no images")
    return files


def require_images(paths: list[Path], folder: str | Path, minimum: int = 2) -> None:
    """FID and KID need at least two images on each side (a covariance, an unbiased MMD)."""
    if len(paths) < minimum:
        raise ImageError(
            f"{folder} holds {len(paths)} image{'s' if len(paths) != 1 else ''}: FID and KID "
            f"need at least {minimum} images on each side"
        )


def load_uint8(paths: list[Path], size: int | None = None) -> list[np.ndarray]:
    """RGB uint8 arrays; ``size`` resizes to size x size (bicubic) first, else images keep their size."""
    out = []
    for p in paths:
        im = load_image(p, 3)
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        out.append(np.asarray(im))
    return out


def folder_features(
    paths: list[Path],
    size: int | None = None,
    device: str = "cpu",
    batch_size: int = 4,
    show_progress: bool = False,
    desc: str = "inception",
) -> np.ndarray:
    """Inception features of image files; images of different sizes are batched by size."""
    model = load_inception(device)
    arrays = load_uint8(paths, size)
    feats = np.zeros((len(arrays), 2048))
    by_shape: dict[tuple, list[int]] = {}
    for i, a in enumerate(arrays):
        by_shape.setdefault(a.shape, []).append(i)
    with tqdm(total=len(arrays), desc=desc, unit="img", disable=not show_progress) as bar:
        for idx in by_shape.values():
            for j in range(0, len(idx), batch_size):
                chunk = idx[j : j + batch_size]
                feats[chunk] = features(np.stack([arrays[k] for k in chunk]), model, device, batch_size)
                bar.update(len(chunk))
    return feats


def content_key(paths: list[Path], root: Path, size: int | None) -> str:
    """Hash of the folder's content (names and bytes), the resize and the feature pipeline."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": STATS_VERSION, "net": WEIGHTS_SHA1, "size": size}).encode())
    for p in paths:
        h.update(str(p.relative_to(root)).encode() + b"\0" + file_sha256(p).encode() + b"\n")
    return h.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("UNPAIRED_CACHE", Path.home() / ".cache" / "unpaired")) / "inception"


def cached_folder_features(
    folder: str | Path,
    size: int | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
    limit: int | None = None,
    paths: list[Path] | None = None,
) -> np.ndarray:
    """Features of a folder of real images (``paths``: its images, when already listed), cached under
    a key of its content: a changed folder (any file added, removed, renamed or edited) never
    reuses a stale cache."""
    folder = Path(folder)
    paths = (list_image_files(folder) if paths is None else paths)[:limit]
    key = content_key(paths, folder, size)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    feats = folder_features(paths, size, device, show_progress=show_progress, desc=f"inception {folder.name}")
    tmp = cache / f".{key}.{os.getpid()}.tmp.npy"  # per process: runs started together may write the same key
    try:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(tmp, feats)
        tmp.replace(path)
    except OSError as e:  # the cache only saves time: say so, and go on with the features in hand
        with contextlib.suppress(OSError):
            tmp.unlink()
        print(
            f"warning: could not cache the features of {folder} in {cache} ({e.strerror or e}); they will be "
            f"computed again next time (UNPAIRED_CACHE moves the cache)",
            file=sys.stderr,
        )
    return feats


def score(
    real: np.ndarray, fake: np.ndarray, kid: bool = True, kid_subsets: int = 100, kid_subset_size: int | None = None
) -> dict[str, float]:
    """FID and (unless ``kid=False``) KID mean and std of fake features against real features.

    ``kid_subset_size=None`` uses :func:`default_kid_subset_size` (1000, or half the smaller set below 2000
    images); the size used is returned as ``kid_subset_size``."""
    result = {"fid": fid_from_features(real, fake)}
    if kid:
        m = default_kid_subset_size(len(real), len(fake)) if kid_subset_size is None else kid_subset_size
        result["kid"], result["kid_std"] = kid_from_features(real, fake, kid_subsets, m)
        result["kid_subset_size"] = int(min(m, len(real), len(fake)))
    return {**result, "n_real": int(len(real)), "n_fake": int(len(fake))}
