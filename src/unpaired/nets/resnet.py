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

NORMS = ("instance", "batch", "none")


def _norm(channels: int, norm: str = "instance") -> nn.Module:
    """The reference's normalisation layers: instance norm without affine parameters or running
    statistics (its default), batch norm with both, or none (an Identity, which keeps the indices)."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


class ResnetBlock(nn.Module):
    """x + [reflect-pad, conv3x3, norm, ReLU, (dropout 0.5), reflect-pad, conv3x3, norm](x)."""

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False):
        super().__init__()
        bias = norm == "instance"  # the reference: convolutions followed by batch norm (or none) have no bias
        layers: list[nn.Module] = [
            ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=bias),
            _norm(dim, norm),
            nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(dim, norm)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Image-to-image generator: 7x7 stem, 2 downsamplings, n_blocks residual blocks, 2 upsamplings,
    7x7 head with tanh. Input sides must be multiples of 4.

    The defaults are CUT's: anti-aliased resampling (blur-pool down, blurred up), instance norm, no
    dropout. ``antialias=False`` downsamples with stride-2 convolutions and ``antialias_up=False``
    upsamples with stride-2 transposed convolutions (the reference's ``--no_antialias`` and
    ``--no_antialias_up``; with both it is the CycleGAN repository's generator); ``norm`` is
    instance, batch or none; ``dropout`` puts the reference's Dropout(0.5) in every block."""

    multiple = 4  # 2 ** (number of downsamplings): what translate and export pad input sides to

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        antialias: bool = True,
        antialias_up: bool = True,
        dropout: bool = False,
    ):
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [
            ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            _norm(ngf, norm),
            nn.ReLU(True),
        ]
        for i in range(2):
            c = ngf * 2**i
            if antialias:
                layers += [
                    nn.Conv2d(c, 2 * c, 3, padding=1, bias=bias),
                    _norm(2 * c, norm),
                    nn.ReLU(True),
                    Downsample(2 * c),
                ]
            else:
                layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), _norm(2 * c, norm), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf, norm, dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            if antialias_up:
                layers += [
                    Upsample(c),
                    nn.Conv2d(c, c // 2, 3, padding=1, bias=bias),
                    _norm(c // 2, norm),
                    nn.ReLU(True),
                ]
            else:
                layers += [
                    nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                    _norm(c // 2, norm),
                    nn.ReLU(True),
                ]
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


def resnet_generator(cfg, channels: int = 3) -> ResnetGenerator:
    """The ResNet generator a method's options describe (``ngf``, ``n_blocks`` and the ``g_norm``,
    ``g_antialias``, ``g_antialias_up``, ``g_dropout`` variants of the official code)."""
    return ResnetGenerator(
        channels,
        channels,
        cfg.ngf,
        cfg.n_blocks,
        norm=getattr(cfg, "g_norm", "instance"),
        antialias=getattr(cfg, "g_antialias", True),
        antialias_up=getattr(cfg, "g_antialias_up", True),
        dropout=getattr(cfg, "g_dropout", False),
    )
