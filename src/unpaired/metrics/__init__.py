"""Metrics: offline FID/KID (Inception from local weights) and speed/memory profiling."""
from .fid import fid_from_features, frechet_distance, kid_from_features, score, statistics
from .inception import InceptionUnavailable, load_inception

__all__ = ["fid_from_features", "frechet_distance", "kid_from_features", "score", "statistics",
           "InceptionUnavailable", "load_inception"]
