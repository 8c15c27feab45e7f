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
        with torch.autocast(x.device.type, enabled=False):
            return F.pad(x, self.padding, "reflect")
