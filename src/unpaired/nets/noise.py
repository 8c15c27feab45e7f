"""Fixed noise as a pure function of absolute pixel coordinates (SinCUT's eval-mode noise).

``coordinate_noise(origin, h, w, seed)`` gives the same N(0, 1) value for a pixel wherever the
computation starts: an image and any tile of it (given the tile's ``origin``) see the same noise,
the same input always gives the same output, nothing is stored between calls (thread-safe), and
everything is integer arithmetic plus one Box-Muller transform in torch, so the function traces
into TorchScript and ONNX with dynamic height and width.

The hash works on 31-bit values held in int64 and alternates h + h // 2**15 (high bits fold into
low ones) with h * (2h + 1) = h + 2h**2 (a permutation polynomial modulo 2**31, Rivest 2001:
non-linear and invertible; every product stays below 2**63): exact and identical on every backend. It uses only
+, *, floor
division and remainder (no xor or bit shifts, which ONNX runtimes do not all implement for int64).
Measured on a 1024 x 1024 field: no two pixels share a hash, mean 0, std 1, kurtosis 3.0, all
neighbour correlations below 0.002 and a flat power spectrum (tests/test_noise.py checks these).
"""

from __future__ import annotations

import math

import torch

_M = 2**31
_ROUND_CONSTANTS = (0x2545F491, 0x1B873593)
_SECOND = 0x5BD1E995  # offset for the second uniform drawn per pixel


def mix31(h: torch.Tensor) -> torch.Tensor:
    """A 31-bit integer hash of int64 values in [0, 2**31)."""
    for c in _ROUND_CONSTANTS:
        h = (h + h // 32768) % _M
        h = (h * (2 * h + 1)) % _M
        h = (h + c) % _M
    return (h + h // 32768) % _M


def hash_coordinates(y: torch.Tensor, x: torch.Tensor, seed: int) -> torch.Tensor:
    """Hash of (seed, y, x) by chaining: mix(mix(mix(seed) + y) + x); y, x broadcastable int64 >= 0."""
    h = mix31(torch.full_like(y, seed % _M))
    h = mix31((h + y) % _M)
    return mix31((h + x) % _M)


def _uniform(h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The top 24 bits of a 31-bit hash as a float in (0, 1): exact in float32, never 0."""
    return ((h // 128).to(dtype) + 0.5) * (1.0 / 2**24)


def coordinate_noise(
    origin: torch.Tensor | tuple[int, int] | None,
    height: int,
    width: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """N(0, 1) noise (1, 1, height, width) for the pixels whose top-left one sits at ``origin`` = (y0, x0)
    (ints or an int64 tensor of shape (2,); None = (0, 0)) of an unbounded plane fixed by ``seed``."""
    y = torch.arange(height, device=device, dtype=torch.int64)[:, None]
    x = torch.arange(width, device=device, dtype=torch.int64)[None, :]
    if origin is not None:
        if isinstance(origin, torch.Tensor):
            origin = origin.to(device=device, dtype=torch.int64)
        y = y + origin[0]
        x = x + origin[1]
    h = hash_coordinates(y, x, seed)
    # float32 at least: the 24-bit uniforms are exact there (half types would round them)
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    u1 = _uniform(h, work)
    u2 = _uniform(mix31((h + _SECOND) % _M), work)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)  # Box-Muller
    return z.to(dtype)[None, None]
