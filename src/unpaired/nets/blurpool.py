"""Anti-aliased resampling (Zhang, "Making convolutional networks shift-invariant again", 2019).

Down: reflect-pad, then a fixed [1,2,1] x [1,2,1] binomial blur with stride 2.
Up: the transposed [1,3,3,1] x [1,3,3,1] blur with stride 2 on a replicate-padded input.
Both are computed separably (the reference uses depthwise convolutions: same values to float
rounding). The filters stay persistent buffers named ``filt``, as in the reference, so its weights
load as they are.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .padding import ReflectionPad2d


def binomial_filter(size: int) -> torch.Tensor:
    """Normalised 2-D binomial filter of the given size (3 -> [1,2,1] outer product / 16)."""
    taps = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}[size]
    a = torch.tensor(taps)
    filt = a[:, None] * a[None, :]
    return filt / filt.sum()


def _cpu_autocast_on() -> bool:
    return torch.is_autocast_enabled("cpu")


try:  # torch >= 2.4 takes the device type; the older per-device function is deprecated there
    _cpu_autocast_on()
except TypeError:
    _cpu_autocast_on = torch.is_autocast_cpu_enabled  # noqa: F811


def _separable(x: torch.Tensor) -> bool:
    """Whether to blur with shifted views instead of a depthwise convolution: on the CPU in low
    precision, where oneDNN's depthwise convolutions are slow (in bf16 as slow as a full 128-channel
    convolution). In float32 and float64 (which takes the float32 path, so that a float64 check
    of a step covers the code fp32 training runs), and on GPUs (where each extra kernel costs a
    launch), the convolution is faster."""
    if x.device.type != "cpu":
        return False
    return x.dtype in (torch.bfloat16, torch.float16) or _cpu_autocast_on()


def _every_other(x: torch.Tensor, dim: int, start: int, count: int) -> torch.Tensor:
    index = [slice(None)] * x.dim()
    index[dim] = slice(start, start + 2 * count - 1, 2)
    return x[tuple(index)]


def _edge_padded(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x with its first and last slice along ``dim`` repeated once (replicate padding)."""
    return torch.cat([x.narrow(dim, 0, 1), x, x.narrow(dim, x.size(dim) - 1, 1)], dim)


class Downsample(nn.Module):
    """Blur then subsample by 2; output is ceil(H/2) x ceil(W/2).

    A depthwise convolution with the [1,2,1] x [1,2,1] / 16 filter, as the reference; on the CPU in
    low precision (see ``_separable``) the filter is applied as [1,2,1] / 4 along each axis with
    strided views and adds instead: the same values to float rounding, 2.5x faster there."""

    def __init__(self, channels: int, filt_size: int = 3):
        super().__init__()
        if filt_size != 3:
            raise ValueError(f"only the reference's 3-tap blur is implemented, got filt_size={filt_size}")
        self.channels = channels
        self.pad = ReflectionPad2d(1)
        self.register_buffer("filt", binomial_filter(filt_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pad(x)
        if not _separable(x):
            return F.conv2d(x, self.filt.to(x.dtype), stride=2, groups=x.shape[1])
        for dim in (2, 3):
            n = (x.size(dim) - 1) // 2
            x = (
                (_every_other(x, dim, 0, n) + _every_other(x, dim, 2, n))
                .add_(_every_other(x, dim, 1, n), alpha=2)
                .mul_(0.25)
            )
        return x


class Upsample(nn.Module):
    """Transposed blur with stride 2; output is exactly 2H x 2W.

    As the reference: replicate-pad by one, a depthwise transposed convolution with
    [1,3,3,1] x [1,3,3,1] / 16 (stride 2, padding 2), one pixel trimmed per side. Per axis that is
    y[2t] = (3 x[t] + x[t-1]) / 4 and y[2t+1] = (3 x[t] + x[t+1]) / 4 with the edge value repeated,
    which is how it is computed on the CPU in low precision (see ``_separable``)."""

    def __init__(self, channels: int, filt_size: int = 4):
        super().__init__()
        if filt_size != 4:
            raise ValueError(f"only the reference's 4-tap blur is implemented, got filt_size={filt_size}")
        self.channels = channels
        # x4 keeps the mean intensity: each output pixel receives a quarter of the filter mass.
        self.register_buffer("filt", (binomial_filter(filt_size) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _separable(x):
            # padding 2 on the replicate-padded input, then trim one row/col on each side: 2H x 2W
            # replicate padding by concatenation: inductor mislabels replication_pad2d_backward's strides
            x = _edge_padded(_edge_padded(x, 2), 3)
            y = F.conv_transpose2d(x, self.filt.to(x.dtype), stride=2, padding=2, groups=x.shape[1])
            return y[:, :, 1:-1, 1:-1]
        for dim in (2, 3):
            n = x.size(dim)
            xp = _edge_padded(x, dim)
            centre = xp.narrow(dim, 1, n)
            even = torch.lerp(xp.narrow(dim, 0, n), centre, 0.75)  # (x[t-1] + 3 x[t]) / 4
            odd = torch.lerp(xp.narrow(dim, 2, n), centre, 0.75)  # (x[t+1] + 3 x[t]) / 4
            x = torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)
        return x
