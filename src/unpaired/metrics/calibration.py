"""Synthetic experiments with a known truth, to measure how often the intervals of
:mod:`unpaired.metrics.uncertainty` cover it and how often a verdict on two rows of one method (an
A/A comparison) says "better" or "worse". No training: per-seed values, per-image values and
Inception-like features are drawn from known distributions.

Each ``*_trial`` function draws one experiment (k seeds, n test images) and returns (interval,
truth); :func:`rates` repeats it and returns the coverage and the false-alarm rate (the share of
intervals that exclude 0 when the truth is 0) with their Monte-Carlo standard errors,
sqrt(p (1 - p) / reps). tests/test_calibration.py checks the rates at a few hundred repetitions;
benchmarks/calibration.py prints the full table, for today's intervals and the earlier bootstrap.

Models (all effects independent, normal unless said):

- seed values (:func:`seed_values_trial`): k values of one row's metric, normal or, with
  ``skew``, log-normal (a long right tail, as FID over seeds has when a seed goes bad).
- per-image paired metrics (:func:`per_image_trial`): value(row, seed, image) = image difficulty
  (shared by both rows: cancels in B - A) + row x image interaction (``interaction``, the part
  of an image that suits one method better) + seed effect (``seed_sd``) + residual (``noise_sd``),
  plus ``delta`` for row B. The truth is ``delta``: the expected B - A over seeds and test images.
- features (:func:`features_trial`): test inputs z_i ~ N(0, I_d) shared by every seed and both
  rows, real images N(0, I_d) shared too; the translation of z_i by a row's seed s is
  ``scale`` z_i + u_s + ``noise`` e, with a seed shift u_s ~ N(``shift``, ``seed_sd``^2 I). The
  truth is the expected FID (or KID) difference at these set sizes, estimated once by
  :func:`features_truth` from independent draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .uncertainty import paired_difference, paired_metric_difference, seeds_summary

Interval = tuple[float, float] | None


def seed_values_trial(
    rng: np.random.Generator, k: int, skew: bool = False, method: Callable = seeds_summary
) -> tuple[Interval, float]:
    """One row's k per-seed values with true mean 0 (normal, sd 1) or 0-mean log-normal (sigma 1)."""
    if skew:
        v = rng.lognormal(0.0, 1.0, k) - np.exp(0.5)
    else:
        v = rng.standard_normal(k)
    return method(v)["ci"], 0.0


@dataclass
class PerImage:
    """Parameters of :func:`per_image_trial` (in units of the metric)."""

    delta: float = 0.0
    seed_sd: float = 1.0
    noise_sd: float = 3.0
    interaction: float = 0.0
    difficulty: float = 5.0


def per_image_values(
    rng: np.random.Generator, k: int, n: int, p: PerImage
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """{image name: value} per seed for rows A and B."""
    names = [f"img{i:04d}" for i in range(n)]
    difficulty = rng.standard_normal(n) * p.difficulty
    inter = rng.standard_normal((2, n)) * p.interaction
    rows = []
    for row in (0, 1):
        seeds = rng.standard_normal((k, 1)) * p.seed_sd
        v = difficulty + inter[row] + seeds + rng.standard_normal((k, n)) * p.noise_sd + (p.delta if row else 0.0)
        rows.append([dict(zip(names, vs.tolist())) for vs in v])
    return rows[0], rows[1]


def per_image_trial(
    rng: np.random.Generator, k: int, n: int, p: PerImage, method: Callable | None = None
) -> tuple[Interval, float]:
    """B - A of a lower-is-better per-image metric over k seeds and n shared test images."""
    a, b = per_image_values(rng, k, n, p)
    method = method or (lambda a, b: paired_metric_difference(a, b, metric="l1"))
    return method(a, b)["ci"], p.delta


@dataclass
class Features:
    """One row's translations in :func:`features_trial`."""

    scale: float = 1.0
    shift: float = 0.3
    seed_sd: float = 0.15
    noise: float = 0.5


def draw_features(
    rng: np.random.Generator, k: int, n: int, d: int, a: Features, b: Features
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Real features (n x d) and k translations' features per row (n x d each), inputs shared."""
    z, real = rng.standard_normal((n, d)), rng.standard_normal((n, d))

    def row(f: Features) -> list[np.ndarray]:
        return [
            f.scale * z + (f.shift + f.seed_sd * rng.standard_normal(d)) + f.noise * rng.standard_normal((n, d))
            for _ in range(k)
        ]

    return real, row(a), row(b)


def features_truth(
    metric: str, n: int, d: int, a: Features, b: Features, draws: int = 4000, seed: int = 12345
) -> tuple[float, float]:
    """The expected metric(B) - metric(A) for one seed each on shared test sets of n images, and its
    Monte-Carlo standard error, from ``draws`` independent experiments."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        real, fa, fb = draw_features(rng, 1, n, d, a, b)
        values.append(paired_difference([fa[0]], [fb[0]], real, metric=metric)["difference"])
    v = np.array(values)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(draws))


def features_trial(
    rng: np.random.Generator,
    k: int,
    n: int,
    d: int,
    a: Features,
    b: Features,
    truth: float,
    metric: str = "fid",
    method: Callable | None = None,
    groups: int = 20,
) -> tuple[Interval, float]:
    """B - A of FID or KID over k seeds on n shared test inputs and n real images in d dimensions
    (``groups``: jackknife groups of :func:`paired_difference`)."""
    real, fa, fb = draw_features(rng, k, n, d, a, b)
    method = method or (lambda fa, fb, real, metric: paired_difference(fa, fb, real, metric=metric, groups=groups))
    return method(fa, fb, real, metric)["ci"], truth


def rates(trial: Callable[[np.random.Generator], tuple[Interval, float]], reps: int, seed: int = 0) -> dict[str, Any]:
    """Repeat ``trial`` ``reps`` times: {"coverage", "exclude_zero" (intervals that lie wholly on one
    side of 0: on A/A data the false-alarm rate), "no_interval", "se_coverage", "se_exclude_zero",
    "reps", "median_width"}; the standard errors are binomial, sqrt(p (1 - p) / reps)."""
    rng = np.random.default_rng(seed)
    covered = excluded = missing = 0
    widths = []
    for _ in range(reps):
        ci, truth = trial(rng)
        if ci is None:
            missing += 1
            continue
        low, high = ci
        covered += low <= truth <= high
        excluded += high < 0 or low > 0
        widths.append(high - low)
    m = reps - missing
    cov, exc = (covered / m, excluded / m) if m else (float("nan"), float("nan"))
    return {
        "coverage": cov,
        "exclude_zero": exc,
        "no_interval": missing,
        "se_coverage": float(np.sqrt(cov * (1 - cov) / m)) if m else float("nan"),
        "se_exclude_zero": float(np.sqrt(exc * (1 - exc) / m)) if m else float("nan"),
        "reps": reps,
        "median_width": float(np.median(widths)) if widths else float("nan"),
    }


def nominal_se(level: float, reps: int) -> float:
    """Binomial standard error of a rate whose true value is ``level``: sqrt(level (1 - level) / reps)."""
    return float(np.sqrt(level * (1 - level) / reps))


__all__ = [
    "PerImage",
    "Features",
    "seed_values_trial",
    "per_image_values",
    "per_image_trial",
    "draw_features",
    "features_truth",
    "features_trial",
    "rates",
    "nominal_se",
]
