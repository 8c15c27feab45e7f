"""ResNet generator of CUT/CycleGAN with anti-aliased resampling and encoder feature taps.

The layer list mirrors the reference ``ResnetGenerator`` index for index, so the reference's NCE
layer numbers (0, 4, 8, 12, 16) mean the same thing here and its state dicts load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .blurpool import Downsample, Upsample
from .padding import ReflectionPad2d
from .taps import run_with_taps


def _norm(channels: int) -> nn.Module:
    # Instance norm without affine parameters or running statistics, as in the reference.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """x + [reflect-pad, conv3x3, IN, ReLU, reflect-pad, conv3x3, IN](x)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            _norm(dim),
            nn.ReLU(True),
            ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            _norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Image-to-image generator: 7x7 stem, 2 anti-aliased downsamplings, n_blocks residual blocks,
    2 anti-aliased upsamplings, 7x7 head with tanh. Input sides must be multiples of 4."""

    multiple = 4  # 2 ** (number of downsamplings): what translate and export pad input sides to

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [
            ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=True),
            _norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, padding=1, bias=True), _norm(2 * c), nn.ReLU(True), Downsample(2 * c)]
        layers += [ResnetBlock(4 * ngf) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [Upsample(c), nn.Conv2d(c, c // 2, 3, padding=1, bias=True), _norm(c // 2), nn.ReLU(True)]
        layers += [ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Outputs of the listed layer indices, running the network only as far as the last one."""
        return run_with_taps(self.model, x, layers, stop_early=True)[1]

    def forward_with_features(self, x: torch.Tensor, layers: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The output and the listed layers' outputs, in one pass."""
        return run_with_taps(self.model, x, layers, stop_early=False)
