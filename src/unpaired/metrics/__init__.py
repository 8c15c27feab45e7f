"""Metrics: offline FID/KID (Inception from local weights), their bootstrap intervals, intervals over
seeds and paired comparisons (with their calibration, :mod:`.calibration`), paired image metrics
(L1, PSNR, SSIM, pixel accuracy), speed/memory profiling."""

from .fid import (
    default_kid_subset_size,
    fid_from_features,
    frechet_distance,
    kid_from_features,
    score,
    statistics,
)
from .inception import InceptionUnavailable, load_inception
from .paired import paired_scores
from .uncertainty import (
    bootstrap_fid,
    bootstrap_kid,
    paired_difference,
    paired_metric_difference,
    seeds_summary,
    t_quantile,
    two_level_interval,
)

__all__ = [
    "fid_from_features",
    "frechet_distance",
    "kid_from_features",
    "score",
    "statistics",
    "default_kid_subset_size",
    "InceptionUnavailable",
    "load_inception",
    "paired_scores",
    "bootstrap_fid",
    "bootstrap_kid",
    "paired_difference",
    "paired_metric_difference",
    "seeds_summary",
    "t_quantile",
    "two_level_interval",
]
