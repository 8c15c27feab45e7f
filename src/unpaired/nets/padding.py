"""Padding layers that keep the input's dtype under autocast."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that pads in the input's dtype. CPU autocast runs reflection padding in
    float32, so under bf16 every padded activation would be cast up and, by the next convolution,
    down again: two full copies per pad. Padding only moves values, so its dtype changes nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cuda" and torch.are_deterministic_algorithms_enabled():
            # CUDA's reflection_pad2d_backward adds with atomics: it raises in deterministic mode
            return reflect_pad_by_concat(x, self.padding)
        with torch.autocast(x.device.type, enabled=False):
            return F.pad(x, self.padding, "reflect")


def reflect_pad_by_concat(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """``F.pad(x, padding, "reflect")`` (left, right, top, bottom) from slices and one concatenation
    per axis, whose backward is deterministic on every device."""
    left, right, top, bottom = padding

    def along(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
        n = x.size(dim)
        parts = [x.narrow(dim, 1, before).flip(dim)] if before else []
        parts.append(x)
        if after:
            parts.append(x.narrow(dim, n - 1 - after, after).flip(dim))
        return torch.cat(parts, dim)

    return along(along(x, 3, left, right), 2, top, bottom)
