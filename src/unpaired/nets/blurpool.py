"""Anti-aliased resampling (Zhang, "Making convolutional networks shift-invariant again", 2019).

Down: reflect-pad, then a fixed [1,2,1] x [1,2,1] binomial blur applied depthwise with stride 2.
Up: replicate-pad (one pixel), then a depthwise transposed conv with the [1,3,3,1] x [1,3,3,1] filter.
The filters are persistent buffers named ``filt``, as in the reference, so its weights load as-is.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def binomial_filter(size: int) -> torch.Tensor:
    """Normalised 2-D binomial filter of the given size (3 -> [1,2,1] outer product / 16)."""
    taps = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0],
            5: [1.0, 4.0, 6.0, 4.0, 1.0]}[size]
    a = torch.tensor(taps)
    filt = a[:, None] * a[None, :]
    return filt / filt.sum()


class Downsample(nn.Module):
    """Blur then subsample by 2; output is ceil(H/2) x ceil(W/2)."""

    def __init__(self, channels: int, filt_size: int = 3):
        super().__init__()
        self.channels = channels
        self.pad = nn.ReflectionPad2d((filt_size - 1) // 2)
        self.register_buffer("filt", binomial_filter(filt_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt.to(x.dtype), stride=2, groups=x.shape[1])


def replicate_pad1(x: torch.Tensor) -> torch.Tensor:
    """Replicate-pad one pixel on each side (``nn.ReplicationPad2d(1)``'s values), by concatenation:
    torch.compile's inductor mislabels the strides of replication_pad2d_backward (torch 2.13)."""
    x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
    return torch.cat([x[:, :, :, :1], x, x[:, :, :, -1:]], dim=3)


class Upsample(nn.Module):
    """Transposed blur with stride 2; output is exactly 2H x 2W."""

    def __init__(self, channels: int, filt_size: int = 4):
        super().__init__()
        self.channels = channels
        # x4 keeps the mean intensity: each output pixel receives a quarter of the filter mass.
        self.register_buffer("filt", (binomial_filter(filt_size) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # padding 2 on the replicate-padded input, then trim one row/col on each side: 2H x 2W.
        y = F.conv_transpose2d(replicate_pad1(x), self.filt.to(x.dtype), stride=2, padding=2, groups=x.shape[1])
        return y[:, :, 1:-1, 1:-1]
