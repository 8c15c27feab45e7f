"""Inference: translate image files or folders of any size with a trained generator."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from .config import Config, ConfigError
from .data.images import (IMAGE_EXTENSIONS, ImageError, convert_image, load_image, save_image, scan_folder,
                          to_image, to_tensor)
from .devices import select_device
from .outputs import make_dir


def load_generator(checkpoint: str | Path, device: torch.device | str = "cpu",
                   which: str = "latest") -> tuple[torch.nn.Module, Config]:
    """The A->B generator of a run folder (its ``which`` checkpoint) or checkpoint file, in eval
    mode, and the run's config."""
    path = ckpt_io.resolve_path(checkpoint, which)
    return generator_from_state(ckpt_io.load(path), device, source=path)


def generator_from_state(state: dict, device: torch.device | str = "cpu",
                         source: str | Path = "the checkpoint") -> tuple[torch.nn.Module, Config]:
    """The A->B generator of an already loaded checkpoint (read from ``source``), in eval mode, and
    the run's config."""
    from .methods import get_method

    if not isinstance(state.get("model"), dict):
        raise ckpt_io.CheckpointError(f"{source} is not an unpaired checkpoint (it has no model weights); "
                                      f"{ckpt_io.NOT_OURS}")
    cfg = Config.from_dict(state["config"], strict=False)
    model_cls = get_method(cfg.model.name).model
    G = model_cls.build_generator(cfg.model, cfg.data.channels, cfg.data.crop_size)
    prefix = model_cls.GENERATOR_PREFIX
    ckpt_io.load_module_state(G, {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)},
                              source, f"the {cfg.model.name} generator")
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


def check_tiles(tile: int, overlap: int, multiple: int = 4) -> None:
    """A :class:`ConfigError` (a ``ValueError``) unless tiles of ``tile`` px overlapping by ``overlap`` work."""
    if tile % multiple or overlap < 0 or tile < overlap + overlap // 4 + multiple:
        raise ConfigError(f"tile ({tile}) must be a multiple of {multiple} and at least 1.25 x the overlap "
                          f"({overlap}) + {multiple}: choose another --tile or --overlap")


@torch.no_grad()
def translate_tiled(G: torch.nn.Module, x: torch.Tensor, tile: int = 512, overlap: int = 128,
                    multiple: int = 4) -> torch.Tensor:
    """Translate (1, C, H, W) in overlapping ``tile`` x ``tile`` pieces blended with linear ramps.

    Memory beyond the input and output buffers is that of one tile, whatever the image size.
    For a generator without normalisation layers (SinCUT's) whose receptive-field radius is below
    the blending margin (about 3/8 of the overlap; SinCUT's radius is ~41 px, so overlap 128), the
    result equals untiled translation up to float rounding. ResNet generators use instance
    normalisation, whose per-tile statistics make tiles differ slightly from the whole image."""
    check_tiles(tile, overlap, multiple)
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
    return find_inputs(path)[0]


def find_inputs(path: str | Path) -> tuple[list[Path], list[str]]:
    """(:func:`find_images`, one message per entry below ``path`` that the listing rule skipped:
    broken or looping links, links to folders, pipes, ...; see :func:`unpaired.data.images.scan_folder`)."""
    path = Path(path)
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise ImageError(f"input {path} does not exist" if not path.is_symlink() else
                         f"input {path} is a broken link or a link that loops")
    listing = scan_folder(path)
    return listing.images, [f"{p}: not translated, {why}" for p, why in listing.skipped]


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


class Translator:
    """A trained A->B generator that translates images of any size: ``translator(x)``.

    ``x`` is a PIL image (returned: a PIL image of the same size and mode; RGB, L, RGBA and LA keep
    their mode, with the input's alpha channel, other modes come back as the model's RGB or L), a
    float tensor in [-1, 1] of shape (C, H, W) or (B, C, H, W) (returned: the same shape, device and
    dtype), or a list of these. Sides are padded to the generator's multiple and cropped back; images
    above ``AUTO_TILE_PIXELS`` (or all, with ``tile``) are translated in overlapping tiles."""

    def __init__(self, generator: torch.nn.Module, config: Config, device: torch.device | str = "cpu",
                 tile: int | None = None, overlap: int = 128, source: str | None = None):
        if tile:
            check_tiles(tile, overlap)  # before the first image
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.config = config
        self.tile, self.overlap = tile, overlap
        self.source = source

    @property
    def channels(self) -> int:
        return self.config.data.channels

    @property
    def method(self) -> str:
        return self.config.model.name

    def __repr__(self) -> str:
        return f"Translator({self.method}, {self.channels} channels, {self.device}, from {self.source})"

    def __call__(self, x):
        if isinstance(x, (list, tuple)):
            return [self(item) for item in x]
        if isinstance(x, torch.Tensor):
            return self.translate_tensor(x)
        if isinstance(x, Image.Image):
            return self.translate_image(x)
        raise TypeError(f"translate a PIL image, a tensor (C, H, W) or (B, C, H, W) in [-1, 1], or a list of them; "
                        f"got {type(x).__name__}")

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (3, 4) or x.shape[-3] != self.channels:
            raise ValueError(f"expected a tensor (C, H, W) or (B, C, H, W) with C = {self.channels}, "
                             f"got shape {tuple(x.shape)}")
        batch = x[None] if x.dim() == 3 else x
        src = batch.to(self.device, torch.float32)
        if self.tile is None and batch.shape[-2] * batch.shape[-1] <= AUTO_TILE_PIXELS:
            y = translate_tensor(self.generator, src).float()
        else:  # tiled translation works image by image
            y = torch.cat([translate_any(self.generator, src[i:i + 1], self.tile, self.overlap)
                           for i in range(len(src))])
        y = y.to(x.device, x.dtype)
        return y[0] if x.dim() == 3 else y

    def translate_image(self, im: Image.Image) -> Image.Image:
        x = to_tensor(convert_image(im, self.channels))[None]
        out = to_image(translate_any(self.generator, x.to(self.device), self.tile, self.overlap)[0])
        if im.mode in ("RGBA", "LA"):
            out = out.convert(im.mode[:-1])
            out.putalpha(im.getchannel("A"))
        elif im.mode in ("RGB", "L"):
            out = out.convert(im.mode)
        return out


def load(run_or_file: str | Path, device: torch.device | str = "auto", checkpoint: str = "latest",
         tile: int | None = None, overlap: int = 128) -> Translator:
    """A :class:`Translator` from a run folder (its ``checkpoint``: ``latest`` or ``best``) or a
    checkpoint file. ``device``: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."""
    dev = select_device(device)
    G, cfg = load_generator(run_or_file, dev, checkpoint)
    return Translator(G, cfg, dev, tile, overlap, source=str(run_or_file))


def translate_files(checkpoint: str | Path, inputs: str | Path, out_dir: str | Path, device: str = "cpu",
                    ext: str = ".png", show_progress: bool = True, tile: int | None = None,
                    overlap: int = 128) -> tuple[list[Path], list[str]]:
    """Translate every image under ``inputs`` into ``out_dir``. Returns (written files, error messages):
    an unreadable file (or an entry the listing rule skips, such as a broken link) is reported and
    skipped, the others are still translated. Images above
    AUTO_TILE_PIXELS (or all, with ``tile``) are translated in tiles."""
    translator = load(checkpoint, device, tile=tile, overlap=overlap)
    root, out_dir = Path(inputs), Path(out_dir)
    files, errors = find_inputs(root)
    if not files:
        raise ImageError(f"no images found in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
                         + (f"; {errors[0]}" if errors else ""))
    targets = output_paths(files, root, out_dir, ext)
    make_dir(out_dir, "output folder")
    written = []
    for src, dst in tqdm(list(zip(files, targets)), desc="translate", unit="img", disable=not show_progress):
        try:
            im = load_image(src, translator.channels)
        except ImageError as e:
            errors.append(str(e))
            tqdm.write(f"skipped: {e}", file=sys.stderr)
            continue
        save_image(translator.translate_image(im), dst)
        written.append(dst)
    return written, errors


__all__ = ["Translator", "load", "load_generator", "translate_tensor", "translate_files", "find_images"]
