"""Inference: translate image files or folders of any size with a trained generator."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from .amp import DTYPES, autocast
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


def input_multiple(G: torch.nn.Module) -> int:
    """What the generator's input sides must be multiples of: 2 ** (its number of downsamplings),
    declared by the generator as ``multiple`` (4 for the ResNet generator; generators of added
    methods that declare nothing are taken to downsample twice, as the ResNet)."""
    return int(getattr(G, "multiple", 4))


def model_info(config: Config, generator: torch.nn.Module, source: str | None = None,
               iterations: int | None = None, fmt: str | None = None) -> dict:
    """What a :class:`Translator` says about its model (``translator.info``): method, display_name,
    iterations (trained; None when unknown), source, input_multiple, channels, train_size, format
    (checkpoint, safetensors, torchscript, onnx; None for a generator handed over in memory)."""
    from .methods import METHODS

    method = METHODS.get(config.model.name)
    return {"method": config.model.name, "display_name": method.display if method else config.model.name,
            "iterations": iterations, "source": source, "input_multiple": input_multiple(generator),
            "channels": config.data.channels, "train_size": config.data.crop_size, "format": fmt}


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
    recipe for running an exported generator too (README, Export)."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, w, multiple, minimum)
    if (ph, pw) == (h, w):
        return x
    mode = "reflect" if ph - h < h and pw - w < w else "replicate"
    return F.pad(x, (0, pw - w, 0, ph - h), mode=mode)


@torch.no_grad()
def translate_tensor(G: torch.nn.Module, x: torch.Tensor, multiple: int | None = None, minimum: int = 8) -> torch.Tensor:
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
                    multiple: int | None = None) -> torch.Tensor:
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
            piece = x[:, :, y0:y0 + tile, x0:x0 + tile]
            y = (G(piece, origin=(y0, x0)) if takes_origin else G(piece)).float().cpu()
            if out is None:
                out = torch.zeros(1, y.shape[1], ph, pw)
            wy = _ramp(tile, overlap, y0 > 0, y0 + tile < ph)
            wx = _ramp(tile, overlap, x0 > 0, x0 + tile < pw)
            wt = wy[:, None] * wx[None, :]
            out[:, :, y0:y0 + tile, x0:x0 + tile] += y * wt
            weight[:, :, y0:y0 + tile, x0:x0 + tile] += wt
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


def check_precision(precision: str, device: torch.device, generator: torch.nn.Module) -> str:
    """``precision`` if inference can run in it on ``device`` with ``generator``, else a ConfigError."""
    if precision not in DTYPES:
        raise ConfigError(f"precision must be one of {', '.join(DTYPES)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("fp16 inference needs a GPU (cuda or mps): CPUs lack fast fp16 kernels; "
                          "on the CPU use --precision bf16 or fp32")
    fixed = getattr(generator, "fixed_precision", None)  # TorchScript and ONNX exports run as traced
    if fixed is not None and precision != fixed:
        raise ConfigError(f"this {generator.format_name} export runs in {fixed} only; use --precision {fixed}, "
                          f"or the .safetensors export (or the run itself) for {precision}")
    return precision


class Translator:
    """A trained A->B generator that translates images of any size: ``translator(x)``.

    ``x`` is a PIL image (returned: a PIL image of the same size and mode; RGB, L, RGBA and LA keep
    their mode, with the input's alpha channel, other modes come back as the model's RGB or L), a
    float tensor in [-1, 1] of shape (C, H, W) or (B, C, H, W) (returned: the same shape, device and
    dtype), or a list of these (a list of PIL images is translated ``batch_size`` same-sized images
    at a time). Sides are padded to the generator's multiple and cropped back; images above
    ``AUTO_TILE_PIXELS`` (or all, with ``tile``) are translated in overlapping tiles.

    ``precision``: fp32, bf16 or fp16 (autocast; fp16 needs a GPU). ``info`` describes the model
    alike for runs and exports: method, display_name, iterations, source, input_multiple, channels,
    train_size, format."""

    def __init__(self, generator: torch.nn.Module, config: Config, device: torch.device | str = "cpu",
                 tile: int | None = None, overlap: int = 128, source: str | None = None,
                 precision: str = "fp32", batch_size: int = 1, info: dict | None = None):
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        if tile:
            check_tiles(tile, overlap, input_multiple(generator))  # before the first image
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.config = config
        self.tile, self.overlap = tile, overlap
        self.source = source
        self.precision = check_precision(precision, self.device, self.generator)
        self.batch_size = batch_size
        self.info = {**model_info(config, self.generator, source), **(info or {})}

    @property
    def channels(self) -> int:
        return self.config.data.channels

    @property
    def method(self) -> str:
        return self.config.model.name

    def __repr__(self) -> str:
        return (f"Translator({self.method}, {self.channels} channels, {self.device}, {self.precision}, "
                f"from {self.source})")

    def __call__(self, x):
        if isinstance(x, (list, tuple)):
            if x and all(isinstance(item, Image.Image) for item in x):
                return self.translate_images(list(x))
            return [self(item) for item in x]
        if isinstance(x, torch.Tensor):
            return self.translate_tensor(x)
        if isinstance(x, Image.Image):
            return self.translate_image(x)
        raise TypeError(f"translate a PIL image, a tensor (C, H, W) or (B, C, H, W) in [-1, 1], or a list of them; "
                        f"got {type(x).__name__}")

    def _tiles(self, x: torch.Tensor) -> bool:
        return bool(self.tile) or (self.tile is None and x.shape[-2] * x.shape[-1] > AUTO_TILE_PIXELS)

    @torch.no_grad()
    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        """Translate a float32 batch on ``self.device``: whole when small, else image by image in tiles."""
        with autocast(self.precision, self.device):
            if not self._tiles(batch):
                return translate_tensor(self.generator, batch).float()
            return torch.cat([translate_any(self.generator, b[None], self.tile, self.overlap).to(self.device)
                              for b in batch])

    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (3, 4) or x.shape[-3] != self.channels:
            raise ValueError(f"expected a tensor (C, H, W) or (B, C, H, W) with C = {self.channels}, "
                             f"got shape {tuple(x.shape)}")
        batch = x[None] if x.dim() == 3 else x
        y = self._run(batch.to(self.device, torch.float32)).to(x.device, x.dtype)
        return y[0] if x.dim() == 3 else y

    def translate_image(self, im: Image.Image) -> Image.Image:
        return self.translate_images([im])[0]

    def translate_images(self, images: list[Image.Image], batch_size: int | None = None) -> list[Image.Image]:
        """Translate PIL images, ``batch_size`` (default ``self.batch_size``) neighbouring same-sized
        images per generator call; the outputs are in input order."""
        batch_size = batch_size or self.batch_size
        tensors = [to_tensor(convert_image(im, self.channels)) for im in images]
        outputs: list[Image.Image] = []
        i = 0
        while i < len(tensors):
            j = i + 1
            while j < len(tensors) and j - i < batch_size and tensors[j].shape == tensors[i].shape:
                j += 1
            y = self._run(torch.stack(tensors[i:j]).to(self.device)).cpu()
            outputs += [_like(to_image(out), im) for out, im in zip(y, images[i:j])]
            i = j
        return outputs


def _like(out: Image.Image, im: Image.Image) -> Image.Image:
    """The translation ``out`` in the mode of its input ``im`` (with ``im``'s alpha channel)."""
    if im.mode in ("RGBA", "LA"):
        out = out.convert(im.mode[:-1])
        out.putalpha(im.getchannel("A"))
    elif im.mode in ("RGB", "L"):
        out = out.convert(im.mode)
    return out


def load(run_or_file: str | Path, device: torch.device | str = "auto", checkpoint: str = "latest",
         tile: int | None = None, overlap: int = 128, precision: str = "fp32", batch_size: int = 1) -> Translator:
    """A :class:`Translator` from a run folder (its ``checkpoint``: ``latest`` or ``best``), a
    checkpoint file, or a file written by ``unpaired export`` (.safetensors; TorchScript and .onnx
    too, in fp32, when torch.jit / onnxruntime can run them). ``device``: auto (cuda, then mps, then
    cpu), cpu, cuda, cuda:N or mps; an .onnx export runs on the CPU (or CUDA where onnxruntime has it)."""
    from .export import is_export, load_export

    path = Path(run_or_file)
    if path.is_file() and is_export(path):
        G, cfg, info, dev = load_export(path, device)
    else:
        dev = select_device(device)
        state = ckpt_io.load(ckpt_io.resolve_path(path, checkpoint))
        G, cfg = generator_from_state(state, dev, source=path)
        info = {"iterations": state.get("progress", {}).get("iteration"), "format": "checkpoint"}
    return Translator(G, cfg, dev, tile, overlap, source=str(run_or_file), precision=precision,
                      batch_size=batch_size, info=info)


@dataclass
class TranslationPlan:
    """The inputs of a translation, their output files, those of the outputs that already exist, and
    one message per entry the listing rule skipped (broken links, pipes, ...)."""
    inputs: list[Path]
    outputs: list[Path]
    existing: list[Path]
    skipped: list[str]


def plan_translation(inputs: str | Path, out_dir: str | Path, ext: str = ".png") -> TranslationPlan:
    """Every image under ``inputs`` and its output file in ``out_dir`` (see :func:`output_paths`)."""
    root, out_dir = Path(inputs), Path(out_dir)
    files, errors = find_inputs(root)
    if not files:
        raise ImageError(f"no images found in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
                         + (f"; {errors[0]}" if errors else ""))
    targets = output_paths(files, root, out_dir, ext)
    return TranslationPlan(files, targets, [t for t in targets if t.exists()], errors)


def _header_size(path: Path) -> tuple[int, int]:
    """An image's (width, height) after its EXIF rotation, from its header; (0, 0) if unreadable
    (loading it reports why)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112) in (5, 6, 7, 8)  # orientations that swap the sides
        return (h, w) if turned else (w, h)
    except Exception:
        return (0, 0)


def translate_files(checkpoint: str | Path, inputs: str | Path, out_dir: str | Path, device: str = "cpu",
                    ext: str = ".png", show_progress: bool = True, tile: int | None = None,
                    overlap: int = 128, batch_size: int = 1, precision: str = "fp32",
                    skip_existing: bool = False, translator: Translator | None = None,
                    plan: TranslationPlan | None = None) -> tuple[list[Path], list[str]]:
    """Translate every image under ``inputs`` into ``out_dir``. Returns (written files, error messages):
    an unreadable file is reported and skipped, the others are still translated. Existing outputs
    are overwritten, or kept (and their inputs not translated) with ``skip_existing``. With
    ``batch_size`` > 1, same-sized images are translated that many at a time (inputs are visited
    in order of size for that). Images above AUTO_TILE_PIXELS (or all, with ``tile``) are
    translated in tiles, one at a time. ``translator`` replaces loading ``checkpoint``, ``plan``
    (:func:`plan_translation` of the same arguments) listing ``inputs`` again."""
    translator = translator or load(checkpoint, device, tile=tile, overlap=overlap, precision=precision)
    plan = plan or plan_translation(inputs, out_dir, ext)
    make_dir(Path(out_dir), "output folder")
    existing = set(plan.existing) if skip_existing else set()
    todo = [(src, dst) for src, dst in zip(plan.inputs, plan.outputs) if dst not in existing]
    if batch_size > 1:  # neighbours of the same size make full batches (a stable sort keeps name order within a size)
        todo.sort(key=lambda pair: _header_size(pair[0]))
    written, errors = [], list(plan.skipped)
    pending: list[tuple[Image.Image, Path]] = []

    def flush() -> None:
        for out, dst in zip(translator.translate_images([im for im, _ in pending], batch_size), [d for _, d in pending]):
            save_image(out, dst)
            written.append(dst)
        bar.update(len(pending))
        pending.clear()

    with tqdm(total=len(todo), desc="translate", unit="img", disable=not show_progress) as bar:
        for src, dst in todo:
            try:
                im = load_image(src, translator.channels)
            except ImageError as e:
                errors.append(str(e))
                tqdm.write(f"skipped: {e}", file=sys.stderr)
                bar.update(1)
                continue
            if pending and (len(pending) >= batch_size or pending[0][0].size != im.size):
                flush()
            pending.append((im, dst))
        if pending:
            flush()
    return written, errors


__all__ = ["Translator", "load", "load_generator", "translate_tensor", "translate_files", "find_images",
           "pad_to_multiple", "padded_size", "input_multiple", "plan_translation"]
