"""Cheap signs that a run has collapsed: translations that no longer depend on their inputs.

A GAN generator can fall into producing (nearly) the same image for every input, e.g. a blank white
page for every photo, which FID alone reports only as a bad number. At each validation the
translations of the val images are compared with their inputs:

- ``diversity_ratio``: mean pairwise distance between the translations divided by that between the
  inputs (both at 32x32): about 1 for a translator that keeps the inputs apart, 0 for a constant one;
- ``near_constant_share``: the share of translations whose pixel standard deviation is below 0.02
  (on a 0..1 scale): blank or flat images;
- with the training statistics: ``d_gap``, the mean discriminator output on real images minus that
  on fakes over the last logged interval, and whether the discriminator is saturated (it separates
  them almost perfectly: a probability gap above 0.9, LSGAN outputs read as probabilities).

A run is *collapsed* when at least half the translations are nearly constant, or when they vary
less than a tenth as much as their inputs; the Trainer judges this from the end of the first epoch
on (a freshly initialised generator outputs nearly constant grey images). Discriminator saturation is reported
beside it, not used
alone: a winning discriminator is common in runs that recover.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

NEAR_CONSTANT_STD = 0.02
COLLAPSED_SHARE = 0.5
COLLAPSED_DIVERSITY = 0.1


def _mean_pairwise_distance(x: torch.Tensor) -> float | None:
    n = len(x)
    if n < 2:
        return None
    d = torch.cdist(x, x)
    return float(d.sum() / (n * (n - 1)))


def collapse_stats(inputs: torch.Tensor, outputs: torch.Tensor) -> dict[str, float]:
    """Diversity of translations against their inputs; both (N, C, H, W) in [-1, 1], any sizes."""

    def small(t: torch.Tensor) -> torch.Tensor:
        t = (t.detach().float().cpu().clamp(-1, 1) + 1) / 2
        return F.interpolate(t, size=(32, 32), mode="area").flatten(1)

    x, y = small(inputs), small(outputs)
    d_in, d_out = _mean_pairwise_distance(x), _mean_pairwise_distance(y)
    stds = y.std(dim=1)
    return {
        "diversity_ratio": d_out / d_in if d_in else None,  # None: fewer than 2 images, or identical inputs
        "near_constant_share": float((stds < NEAR_CONSTANT_STD).float().mean()),
        "output_std": float(stds.mean()),
        "n": len(y),
    }


def discriminator_gap(stats: dict[str, float], gan_mode: str) -> dict[str, Any] | None:
    """Mean D(real) - D(fake) from a log record's ``stats`` and whether D is saturated (None if absent)."""
    if "D_real_mean" not in stats or "D_fake_mean" not in stats:
        return None
    real, fake = stats["D_real_mean"], stats["D_fake_mean"]
    gap = real - fake
    if gan_mode == "lsgan":  # LSGAN targets 1 for real, 0 for fake: outputs read as probabilities
        prob_gap = gap
    else:  # logits
        prob_gap = 1 / (1 + math.exp(-real)) - 1 / (1 + math.exp(-fake))
    return {"d_gap": gap, "d_saturated": prob_gap > 0.9}


def judge(stats: dict[str, float], split: str = "validation") -> str | None:
    """Why the translations (of ``split``) look collapsed, or None."""
    if stats["near_constant_share"] >= COLLAPSED_SHARE:
        return f"{stats['near_constant_share']:.0%} of the {split} translations are nearly constant images"
    ratio = stats["diversity_ratio"]
    if ratio is not None and ratio < COLLAPSED_DIVERSITY:
        return f"the {split} translations vary {1 / max(ratio, 1e-9):.0f}x less than their inputs"
    return None
