"""StyleGAN2-style generator and discriminator of SinCUT (the reference's ``stylegan2`` networks).

Equalized learning rate (weights drawn from N(0, 1), scaled by 1/sqrt(fan_in) at run time), fused
leaky ReLU (bias, slope 0.2, gain sqrt 2), [1,3,3,1] blur around every resampling, residual blocks
averaged with their skip path (/sqrt 2), noise injection after the upsampling convolution.
Channel widths follow the reference's tables, which depend on the crop (and tile) resolution.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .noise import coordinate_noise
from .taps import run_with_taps


def blur_kernel(k=(1, 3, 3, 1)) -> torch.Tensor:
    a = torch.tensor(k, dtype=torch.float32)
    ker = a[None, :] * a[:, None]
    return ker / ker.sum()


class Blur(nn.Module):
    """Depthwise [1,3,3,1] blur with zero padding (pad0 before, pad1 after, on both axes)."""

    def __init__(self, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", blur_kernel() * gain)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a plain int: the channel count is fixed by the weights, and a traced (symbolic) count would
        # give the ONNX exporter a depthwise kernel of unknown shape
        c = int(x.shape[1])
        x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]))
        return F.conv2d(x, self.kernel.to(x.dtype)[None, None].expand(c, 1, -1, -1), groups=c)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias, 0.2) * math.sqrt(2)


class EqualConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1 / math.sqrt(cin * k * k)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    def __init__(self, din: int, dout: int, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dout, din))
        self.bias = nn.Parameter(torch.zeros(dout))
        self.scale = 1 / math.sqrt(din)
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return F.leaky_relu(F.linear(x, self.weight * self.scale) + self.bias, 0.2) * math.sqrt(2)
        return F.linear(x, self.weight * self.scale, self.bias)


class ConvLayer(nn.Sequential):
    """[blur] + equalized conv + [fused leaky ReLU]; the conv has a bias only when not activated."""

    def __init__(self, cin: int, cout: int, k: int, downsample: bool = False, bias: bool = True, activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            p = (4 - 2) + (k - 1)
            layers.append(Blur(((p + 1) // 2, p // 2)))
            layers.append(EqualConv2d(cin, cout, k, stride=2, padding=0, bias=bias and not activate))
        else:
            layers.append(EqualConv2d(cin, cout, k, padding=k // 2, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(cout) if bias else _ScaledLeakyReLU())
        super().__init__(*layers)


class _ScaledLeakyReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool = True):
        super().__init__()
        self.conv1 = ConvLayer(cin, cin, 3)
        self.conv2 = ConvLayer(cin, cout, 3, downsample=downsample)
        self.skip = (
            ConvLayer(cin, cout, 1, downsample=downsample, activate=False, bias=False)
            if cin != cout or downsample
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class NoiseInjection(nn.Module):
    """x + weight * noise. Random noise in training mode; in eval mode the fixed
    :func:`~unpaired.nets.noise.coordinate_noise` of the output pixels' absolute coordinates, so
    translation is deterministic and a tile computed with its ``origin`` sees the whole image's noise.

    ``seed`` tells noise layers apart; ``stride`` is how many input pixels one pixel here spans, to
    turn an origin given in input pixels into this layer's coordinates. Both are fixed at build time."""

    def __init__(self, seed: int = 0, stride: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seed, self.stride = seed, stride

    def forward(self, x: torch.Tensor, origin: torch.Tensor | tuple[int, int] | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.training:
            noise = x.new_empty(b, 1, h, w).normal_()
        else:
            if origin is not None and self.stride != 1:
                origin = (origin[0] // self.stride, origin[1] // self.stride)
            noise = coordinate_noise(origin, h, w, self.seed, x.device, x.dtype)
        return x + self.weight * noise


class UpsampleConv(nn.Module):
    """StyledConv with upsampling and no style: demodulated transposed 3x3 conv (stride 2), blur,
    noise, fused leaky ReLU. Output is exactly 2H x 2W."""

    def __init__(self, cin: int, cout: int, inject_noise: bool = True, noise_seed: int = 0, noise_stride: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, cout, cin, 3, 3))
        self.scale = 1 / math.sqrt(cin * 9)
        p = (4 - 2) - (3 - 1)
        self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)
        self.noise = NoiseInjection(noise_seed, noise_stride) if inject_noise else None
        self.activate = FusedLeakyReLU(cout)

    def forward(self, x: torch.Tensor, origin: torch.Tensor | tuple[int, int] | None = None) -> torch.Tensor:
        w = self.scale * self.weight[0]  # (cout, cin, 3, 3)
        w = w * torch.rsqrt(w.pow(2).sum([1, 2, 3], keepdim=True) + 1e-8)  # demodulation
        out = self.blur(F.conv_transpose2d(x, w.transpose(0, 1), stride=2))
        if self.noise is not None:
            out = self.noise(out, origin)
        return self.activate(out)


def _channels(ngf_or_ndf: float, base: float, cap: int) -> dict[int, int]:
    m = ngf_or_ndf / base
    table = {4: 4096, 8: 2048, 16: 1024, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    rnd = (lambda v: int(round(v))) if base == 32 else int
    return {r: (min(cap, rnd(v * m)) if r <= 32 else rnd(v * m)) for r, v in table.items()}


def working_resolution(size: int) -> int:
    """The reference sizes channels for 2^round(log2(crop)) (e.g. 128 for 128 px crops)."""
    return 2 ** int(np.rint(np.log2(size)))


class StyleGAN2Generator(nn.Module):
    """Encoder (1x1 conv, ``n_down`` downsampling ResBlocks, n_blocks/2 ResBlocks) and decoder
    (n_blocks/2 ResBlocks, ``n_down`` noisy upsampling convs, 1x1 conv). No normalisation layers,
    so it is fully convolutional with local receptive fields: tiles of a large image agree.

    Input sides must be multiples of ``multiple`` (2 ** n_down). ``G(x, origin=(y0, x0))`` translates
    a tile whose top-left pixel sits at (y0, x0) of a larger image (multiples of ``multiple``):
    its eval-mode noise is then the whole image's there. ``origin`` may be an int64 tensor (2,) (what
    the TorchScript and ONNX exports take as their second input)."""

    takes_origin = True  # translate_tiled passes each tile's origin

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 10,
        n_blocks: int = 9,
        n_down: int = 1,
        crop_size: int = 128,
        noise: bool = True,
    ):
        super().__init__()
        ch = _channels(ngf, 32, 512)
        res = working_resolution(crop_size)
        enc: list[nn.Module] = [nn.Identity(), ConvLayer(in_channels, ch[res], 1)]
        for _ in range(n_down):
            enc.append(ResBlock(ch[res], ch[res // 2], downsample=True))
            res //= 2
        enc += [ResBlock(ch[res], ch[res], downsample=False) for _ in range(n_blocks // 2)]
        dec: list[nn.Module] = [ResBlock(ch[res], ch[res], downsample=False) for _ in range(n_blocks // 2)]
        for i in range(n_down):  # the i-th upsampling's output spans 2**(n_down-1-i) input pixels
            dec.append(UpsampleConv(ch[res], ch[res * 2], noise, noise_seed=i, noise_stride=2 ** (n_down - 1 - i)))
            res *= 2
        dec.append(ConvLayer(ch[res], out_channels, 1))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.multiple = 2**n_down

    def forward(self, x: torch.Tensor, origin: torch.Tensor | tuple[int, int] | None = None) -> torch.Tensor:
        return self.decode(self.encoder(x), origin)

    def decode(self, feat: torch.Tensor, origin: torch.Tensor | tuple[int, int] | None = None) -> torch.Tensor:
        for layer in self.decoder:
            feat = layer(feat, origin) if isinstance(layer, UpsampleConv) else layer(feat)
        return feat

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Outputs of the listed encoder layers (reference NCE indices: 0 = the input itself)."""
        return run_with_taps(self.encoder, x, layers, stop_early=True)[1]

    def forward_with_features(self, x: torch.Tensor, layers: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feat, feats = run_with_taps(self.encoder, x, layers, stop_early=False)
        return self.decode(feat), feats


class StyleGAN2Discriminator(nn.Module):
    """Residual discriminator for ``size`` x ``size`` inputs ending in a linear layer (one logit per input)."""

    def __init__(self, in_channels: int = 3, ndf: int = 8, size: int = 64):
        super().__init__()
        if size < 8 or working_resolution(size) != size:
            raise ValueError(f"the StyleGAN2 discriminator needs a power-of-two input size >= 8, got {size}")
        ch = _channels(ndf, 64, 384)
        convs: list[nn.Module] = [ConvLayer(in_channels, ch[size], 1)]
        log = int(math.log2(size))
        for i in range(log, 2, -1):
            convs.append(ResBlock(ch[2**i], ch[2 ** (i - 1)]))
        self.convs = nn.Sequential(*convs)
        self.final_conv = ConvLayer(ch[4], ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activate=True), EqualLinear(ch[4], 1))
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"discriminator input must be {self.size}x{self.size}, got {tuple(x.shape[-2:])}")
        out = self.final_conv(self.convs(x))
        return self.final_linear(out.flatten(1))
