"""Running a generator on an image tensor of any size: eval mode, padding to the generator's input
multiple, and overlapping tiles blended with linear ramps for images too large for one pass.

Training (validation images, samples) and inference (translate, export, serve) both run
generators this way, so it lives below both."""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .errors import ConfigError


def input_multiple(G: torch.nn.Module) -> int:
    """What the generator's input sides must be multiples of: 2 ** (its number of downsamplings),
    declared by the generator as ``multiple`` (4 for the ResNet generator; generators of added
    methods that declare nothing are taken to downsample twice, as the ResNet)."""
    return int(getattr(G, "multiple", 4))


@contextmanager
def eval_mode(module: torch.nn.Module):
    """Temporarily in eval mode (fixed SinCUT noise), restoring the previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def padded_size(h: int, w: int, multiple: int, minimum: int = 8) -> tuple[int, int]:
    """The smallest sides >= (h, w) and >= ``minimum`` that are multiples of ``multiple``."""

    def side(n: int) -> int:
        return -(-max(n, minimum) // multiple) * multiple

    return side(h), side(w)


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 8) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom and right to :func:`padded_size`: reflect padding, or replicate
    where the pad is not smaller than the side (reflect cannot pad that far). This is the padding
    recipe for running an exported generator too (docs/guides/inference.md, Export)."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, w, multiple, minimum)
    if (ph, pw) == (h, w):
        return x
    mode = "reflect" if ph - h < h and pw - w < w else "replicate"
    return F.pad(x, (0, pw - w, 0, ph - h), mode=mode)


@torch.no_grad()
def translate_tensor(
    G: torch.nn.Module, x: torch.Tensor, multiple: int | None = None, minimum: int = 8
) -> torch.Tensor:
    """Run G on (B, C, H, W) of any H, W: pad to a multiple of ``multiple`` (default: the generator's,
    see :func:`input_multiple`) and at least ``minimum`` (below which the residual blocks' reflect
    padding fails), translate, crop back."""
    h, w = x.shape[-2:]
    return G(pad_to_multiple(x, multiple or input_multiple(G), minimum))[..., :h, :w]


def _ramp(n: int, overlap: int, start: bool, end: bool) -> torch.Tensor:
    """1-D blending weights of a tile side. Where a neighbour overlaps, the outer ``margin`` pixels
    (those a tile computes from its zero-padded border) get weight 0, then the weight rises linearly
    over ``overlap // 4`` pixels to 1; the neighbour's mirror-image ramp makes the sum positive."""
    w = torch.ones(n)
    ramp = max(1, overlap // 4)
    margin = (overlap - ramp) // 2
    r = (torch.arange(ramp, dtype=torch.float32) + 0.5) / ramp
    if start:
        w[:margin] = 0
        w[margin : margin + ramp] = r
    if end:
        w[n - margin :] = 0
        w[n - margin - ramp : n - margin] = r.flip(0)
    return w


def _tile_starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def check_tiles(tile: int, overlap: int, multiple: int = 4) -> None:
    """A :class:`ConfigError` (a ``ValueError``) unless tiles of ``tile`` px overlapping by ``overlap`` work."""
    if tile % multiple or overlap < 0 or tile < overlap + overlap // 4 + multiple:
        raise ConfigError(
            f"tile ({tile}) must be a multiple of {multiple} and at least 1.25 x the overlap "
            f"({overlap}) + {multiple}: choose another --tile or --overlap"
        )


@torch.no_grad()
def translate_tiled(
    G: torch.nn.Module, x: torch.Tensor, tile: int = 512, overlap: int = 128, multiple: int | None = None
) -> torch.Tensor:
    """Translate (1, C, H, W) in overlapping ``tile`` x ``tile`` pieces blended with linear ramps.

    Memory beyond the input and output buffers is that of one tile, whatever the image size.
    Tiles start at multiples of the generator's ``multiple`` (the overlap grows by up to
    ``multiple - 1`` pixels for that), so each tile sees the whole image's sampling grid, and a
    generator with ``takes_origin`` (SinCUT's) gets each tile's position for its fixed noise.
    For a generator without normalisation layers (SinCUT's) whose receptive-field radius is below
    the blending margin (about 3/8 of the overlap; SinCUT's radius is ~41 px, so overlap 128), the
    result equals untiled translation up to float rounding. ResNet generators use instance
    normalisation, whose per-tile statistics make tiles differ slightly from the whole image."""
    multiple = multiple or input_multiple(G)
    check_tiles(tile, overlap, multiple)
    _, c, h, w = x.shape
    x = pad_to_multiple(x, multiple, minimum=tile)  # tile is a multiple of ``multiple``
    ph, pw = x.shape[-2:]
    out, weight = None, torch.zeros(1, 1, ph, pw)
    step = (tile - overlap) // multiple * multiple
    ys, xs = _tile_starts(ph, tile, step), _tile_starts(pw, tile, step)
    takes_origin = getattr(G, "takes_origin", False)
    for y0 in ys:
        for x0 in xs:
            piece = x[:, :, y0 : y0 + tile, x0 : x0 + tile]
            y = (G(piece, origin=(y0, x0)) if takes_origin else G(piece)).float().cpu()
            if out is None:
                out = torch.zeros(1, y.shape[1], ph, pw)
            wy = _ramp(tile, overlap, y0 > 0, y0 + tile < ph)
            wx = _ramp(tile, overlap, x0 > 0, x0 + tile < pw)
            wt = wy[:, None] * wx[None, :]
            out[:, :, y0 : y0 + tile, x0 : x0 + tile] += y * wt
            weight[:, :, y0 : y0 + tile, x0 : x0 + tile] += wt
    return out.div_(weight)[..., :h, :w]  # in place: no third image-sized buffer


# above this many pixels, `translate` tiles automatically (a 1024 x 1024 image fits any machine)
AUTO_TILE_PIXELS = 1024 * 1024


def translate_any(G: torch.nn.Module, x: torch.Tensor, tile: int | None = None, overlap: int = 128) -> torch.Tensor:
    """Whole-image translation, tiled when ``tile`` is given or the image exceeds AUTO_TILE_PIXELS;
    ``tile=0`` never tiles."""
    if tile is None and x.shape[-2] * x.shape[-1] > AUTO_TILE_PIXELS:
        tile = 512
    if tile:
        return translate_tiled(G, x, tile, overlap)
    return translate_tensor(G, x).float().cpu()
