"""Inference: translate image files or folders of any size with a trained generator."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from .config import Config
from .data.images import IMAGE_EXTENSIONS, ImageError, load_image, save_image, to_image, to_tensor
from .models import MODELS


def load_generator(checkpoint: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, Config]:
    """The A->B generator of a run folder or checkpoint file, in eval mode, and the run's config."""
    return generator_from_state(ckpt_io.load(checkpoint), device)


def generator_from_state(state: dict, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, Config]:
    """The A->B generator of an already loaded checkpoint, in eval mode, and the run's config."""
    cfg = Config.from_dict(state["config"])
    cls = MODELS[cfg.model.name]
    G = cls.build_generator(cfg)
    prefix = cls.GENERATOR_PREFIX
    G.load_state_dict({k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)})
    return G.to(device).eval(), cfg


@contextmanager
def eval_mode(module: torch.nn.Module):
    """Temporarily in eval mode (fixed SinCUT noise), restoring the previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@torch.no_grad()
def translate_tensor(G: torch.nn.Module, x: torch.Tensor, multiple: int = 4, minimum: int = 8) -> torch.Tensor:
    """Run G on (B, C, H, W) of any H, W: pad to a multiple of ``multiple`` (and at least ``minimum``,
    below which the residual blocks' reflect padding fails), translate, crop back."""
    h, w = x.shape[-2:]
    ph, pw = max(minimum, -(-h // multiple) * multiple) - h, max(minimum, -(-w // multiple) * multiple) - w
    if ph or pw:
        # reflect needs the pad to be smaller than the side; tiny images fall back to replicate
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return G(x)[..., :h, :w]


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
        w[margin:margin + ramp] = r
    if end:
        w[n - margin:] = 0
        w[n - margin - ramp:n - margin] = r.flip(0)
    return w


def _tile_starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


@torch.no_grad()
def translate_tiled(G: torch.nn.Module, x: torch.Tensor, tile: int = 512, overlap: int = 128,
                    multiple: int = 4) -> torch.Tensor:
    """Translate (1, C, H, W) in overlapping ``tile`` x ``tile`` pieces blended with linear ramps.

    Memory beyond the input and output buffers is that of one tile, whatever the image size.
    For a generator without normalisation layers (SinCUT's) whose receptive-field radius is below
    the blending margin (about 3/8 of the overlap; SinCUT's radius is ~41 px, so overlap 128), the
    result equals untiled translation up to float rounding. ResNet generators use instance
    normalisation, whose per-tile statistics make tiles differ slightly from the whole image."""
    if tile % multiple or overlap < 0 or tile < overlap + overlap // 4 + multiple:
        raise ValueError(f"tile ({tile}) must be a multiple of {multiple} and at least 1.25 x the overlap "
                         f"({overlap}) + {multiple}")
    _, c, h, w = x.shape
    ph, pw = max(tile, -(-h // multiple) * multiple), max(tile, -(-w // multiple) * multiple)
    if (ph, pw) != (h, w):
        mode = "reflect" if ph - h < h and pw - w < w else "replicate"
        x = F.pad(x, (0, pw - w, 0, ph - h), mode=mode)
    out, weight = None, torch.zeros(1, 1, ph, pw)
    ys, xs = _tile_starts(ph, tile, tile - overlap), _tile_starts(pw, tile, tile - overlap)
    set_origin = getattr(G, "set_noise_origin", None)
    for y0 in ys:
        for x0 in xs:
            if set_origin is not None:
                set_origin((y0, x0))
            y = G(x[:, :, y0:y0 + tile, x0:x0 + tile]).float().cpu()
            if out is None:
                out = torch.zeros(1, y.shape[1], ph, pw)
            wy = _ramp(tile, overlap, y0 > 0, y0 + tile < ph)
            wx = _ramp(tile, overlap, x0 > 0, x0 + tile < pw)
            wt = wy[:, None] * wx[None, :]
            out[:, :, y0:y0 + tile, x0:x0 + tile] += y * wt
            weight[:, :, y0:y0 + tile, x0:x0 + tile] += wt
    if set_origin is not None:
        set_origin((0, 0))
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


def find_images(path: str | Path) -> list[Path]:
    """``path`` itself if it is a file, else every image below it (recursively), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ImageError(f"input {path} does not exist")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def output_paths(inputs: list[Path], root: Path, out_dir: Path, ext: str) -> list[Path]:
    """One output per input: same relative folder and file stem, extension ``ext``; refuses collisions."""
    outs = [out_dir / (p.relative_to(root).with_suffix(ext) if root.is_dir() else p.with_suffix(ext).name)
            for p in inputs]
    seen: dict[Path, Path] = {}
    for src, dst in zip(inputs, outs):
        if dst in seen:
            raise ImageError(f"{seen[dst]} and {src} would both be written to {dst}; rename one of them")
        seen[dst] = src
    return outs


def translate_files(checkpoint: str | Path, inputs: str | Path, out_dir: str | Path, device: str = "cpu",
                    ext: str = ".png", show_progress: bool = True, tile: int | None = None,
                    overlap: int = 128) -> tuple[list[Path], list[str]]:
    """Translate every image under ``inputs`` into ``out_dir``. Returns (written files, error messages):
    an unreadable file is reported and skipped, the others are still translated. Images above
    AUTO_TILE_PIXELS (or all, with ``tile``) are translated in tiles."""
    G, cfg = load_generator(checkpoint, device)
    root, out_dir = Path(inputs), Path(out_dir)
    files = find_images(root)
    if not files:
        raise ImageError(f"no images found in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    targets = output_paths(files, root, out_dir, ext)
    written, errors = [], []
    for src, dst in tqdm(list(zip(files, targets)), desc="translate", unit="img", disable=not show_progress):
        try:
            im = load_image(src, cfg.data.channels)
        except ImageError as e:
            errors.append(str(e))
            tqdm.write(f"skipped: {e}", file=sys.stderr)
            continue
        y = translate_any(G, to_tensor(im)[None].to(device), tile, overlap)
        save_image(to_image(y[0]), dst)
        written.append(dst)
    return written, errors


__all__ = ["load_generator", "translate_tensor", "translate_files", "find_images"]
