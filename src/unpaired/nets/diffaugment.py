"""Differentiable augmentation for the discriminator (DiffAugment: Zhao et al., "Differentiable
Augmentation for Data-Efficient GAN Training", NeurIPS 2020).

With few training images a GAN's discriminator memorises them and its gradients stop helping the
generator. DiffAugment shows the discriminator only augmented images: real and generated ones,
with the same policy, in the discriminator's update and in the generator's, each image drawn
independently. Every operation is differentiable in its input, so the generator's gradients flow
through it. The policy is a comma-separated list of the paper's groups:

- ``color``: brightness (add U(-0.5, 0.5)), then saturation (scale the deviation from the
  per-pixel channel mean by U(0, 2)), then contrast (scale the deviation from the image mean by
  U(0.5, 1.5));
- ``translation``: shift by up to 1/8 of the side in each direction, filling with zeros;
- ``cutout``: zero a square of half the side centred at a random pixel (clipped at the borders).

Images are in [-1, 1], as everywhere in the package, so zero is mid-grey. Draws come from the
global torch generator on the images' device, and only when a policy is set: without one the
networks and random streams are exactly those of a run without augmentation.
"""

from __future__ import annotations

import torch

__all__ = ["POLICIES", "parse_policy", "augment", "brightness", "saturation", "contrast", "translation", "cutout"]

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(policy: str) -> list[str]:
    """``"color,translation"`` -> ``["color", "translation"]``; "" -> []. Raises ValueError naming
    an unknown group."""
    groups = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [g for g in groups if g not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
    return groups


def _per_image(x: torch.Tensor) -> torch.Tensor:
    """One U(0, 1) draw per image, shaped to broadcast over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)


def brightness(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """x + (u - 0.5), u in [0, 1) per image."""
    return x + (u - 0.5)


def saturation(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Deviation from each pixel's channel mean scaled by 2u."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (2 * u) + mean


def contrast(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Deviation from each image's mean scaled by u + 0.5."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (u + 0.5) + mean


def translation(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Image i shifted down by dy[i] and right by dx[i] pixels (integers), zeros shifted in."""
    b, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :] - dy[:, None]  # (B, H): source row of each output row
    cols = torch.arange(w, device=x.device)[None, :] - dx[:, None]
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # (B, H, W)
    rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return out * valid[:, None].to(x.dtype)


def cutout(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero the size[0] x size[1] square of each image whose top-left corner is (cy - size[0] // 2,
    cx - size[1] // 2), clipped at the borders."""
    _, _, h, w = x.shape
    top, left = cy - size[0] // 2, cx - size[1] // 2
    r = torch.arange(h, device=x.device)[None, :]
    c = torch.arange(w, device=x.device)[None, :]
    inside_r = (r >= top[:, None]) & (r < top[:, None] + size[0])  # (B, H)
    inside_c = (c >= left[:, None]) & (c < left[:, None] + size[1])  # (B, W)
    keep = ~(inside_r[:, :, None] & inside_c[:, None, :])
    return x * keep[:, None].to(x.dtype)


def augment(x: torch.Tensor, policy: list[str] | str) -> torch.Tensor:
    """``x`` (N, C, H, W) with the policy's augmentations, drawn independently for each image;
    ``x`` itself when the policy is empty."""
    groups = parse_policy(policy) if isinstance(policy, str) else policy
    if not groups:
        return x
    b, _, h, w = x.shape
    for g in groups:
        if g == "color":
            x = brightness(x, _per_image(x))
            x = saturation(x, _per_image(x))
            x = contrast(x, _per_image(x))
        elif g == "translation":
            sy, sx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
            dy = torch.randint(-sy, sy + 1, (b,), device=x.device)
            dx = torch.randint(-sx, sx + 1, (b,), device=x.device)
            x = translation(x, dy, dx)
        elif g == "cutout":
            size = (int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5))
            cy = torch.randint(0, h, (b,), device=x.device)
            cx = torch.randint(0, w, (b,), device=x.device)
            x = cutout(x, cy, cx, size)
    return x
