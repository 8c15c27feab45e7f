"""A trained generator as a callable that translates images of any size (:class:`Translator`), and
:func:`load`, which makes one from a run folder, a checkpoint or an export."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from ..amp import DTYPES, autocast
from ..config import Config, ConfigError
from ..data.images import convert_image, to_image, to_tensor
from ..devices import select_device
from ..errors import one_line
from ..tiling import (
    AUTO_TILE_PIXELS,
    check_tiles,
    input_multiple,
    translate_any,
    translate_tensor,
)
from .artifacts import is_export, load_export
from .generator import model_info, open_generator


def check_precision(precision: str, device: torch.device, generator: torch.nn.Module) -> str:
    """``precision`` if inference can run in it on ``device`` with ``generator``, else a ConfigError."""
    if precision not in DTYPES:
        raise ConfigError(f"precision must be one of {', '.join(DTYPES)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError(
            "fp16 inference needs a GPU (cuda or mps): CPUs lack fast fp16 kernels; "
            "on the CPU use --precision bf16 or fp32"
        )
    fixed = getattr(generator, "fixed_precision", None)  # TorchScript and ONNX exports run as traced
    if fixed is not None and precision != fixed:
        raise ConfigError(
            f"this {generator.format_name} export runs in {fixed} only; use --precision {fixed}, "
            f"or the .safetensors export (or the run itself) for {precision}"
        )
    return precision


TRANSLATE_MODES = ("auto", "off", "compile")  # how the generator runs: translate --compile


def choose_translate_mode(mode: str, device: torch.device) -> tuple[str, str]:
    """The mode (``off`` or ``compile``) that ``mode`` stands for on ``device``, and why."""
    if mode not in TRANSLATE_MODES:
        raise ConfigError(f"compile must be one of {', '.join(TRANSLATE_MODES)}, got {mode!r}")
    if mode != "auto":
        return mode, "asked for"
    # auto compiles only where a measurement showed compiled translation faster (docs/measured/speed.md)
    if device.type == "cuda":
        return "off", (
            "auto on cuda: no GPU measurement has shown compiled translation faster yet "
            "(benchmarks/translate_speed.py --modes off compile)"
        )
    if device.type == "cpu":
        return "off", (
            "auto on cpu: compiling takes 10-20 s per image size and precision; a 2-core CPU measured the "
            "compiled generator 1.1-1.6x faster after that (docs/measured/speed.md), so --compile compile "
            "pays off for many images of one size"
        )
    return "off", f"auto on {device.type}: compiled translation has not been measured on this device class"


class _CompiledForward:
    """``generator.forward`` compiled by ``torch.compile``; should compiling fail on the first call,
    the generator's own forward takes over and ``log`` gets one line saying why."""

    def __init__(self, generator: torch.nn.Module, log: Callable[[str], None]):
        self.generator, self.log = generator, log
        self.compiled = torch.compile(generator.forward)
        self.first = True

    def __call__(self, *args, **kwargs):
        if not self.first:
            return self.compiled(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any compiler failure: translate eagerly, saying so
            del self.generator.forward  # the class's forward again
            self.log(f"translate: torch.compile failed ({one_line(e)}); translating with the eager generator instead")
            return self.generator(*args, **kwargs)
        self.first = False
        return out


class Translator:
    """A trained A->B generator that translates images of any size: ``translator(x)``.

    ``x`` is a PIL image (returned: a PIL image of the same size and mode; RGB, L, RGBA and LA keep
    their mode, with the input's alpha channel, other modes come back as the model's RGB or L), a
    float tensor in [-1, 1] of shape (C, H, W) or (B, C, H, W) (returned: the same shape, device and
    dtype), or a list of these (a list of PIL images is translated ``batch_size`` same-sized images
    at a time). Sides are padded to the generator's multiple and cropped back; images above
    ``AUTO_TILE_PIXELS`` (or all, with ``tile``) are translated in overlapping tiles.

    ``precision``: fp32, bf16 or fp16 (autocast; fp16 needs a GPU). ``compile``: off, compile
    (``torch.compile`` of the generator; the first batch of each new shape compiles) or auto (off
    until a measurement shows it faster; ``compile_reason`` says why). ``info`` describes the model
    alike for runs and exports: method, display_name, iterations, source, input_multiple, channels,
    train_size, format."""

    def __init__(
        self,
        generator: torch.nn.Module,
        config: Config,
        device: torch.device | str = "cpu",
        tile: int | None = None,
        overlap: int = 128,
        source: str | None = None,
        precision: str = "fp32",
        batch_size: int = 1,
        info: dict | None = None,
        compile: str = "off",
        log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    ):
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
        self.compile, self.compile_reason = choose_translate_mode(compile, self.device)
        if self.compile == "compile":
            if not isinstance(self.generator, torch.nn.Module) or hasattr(self.generator, "fixed_precision"):
                kind = getattr(self.generator, "format_name", type(self.generator).__name__)
                raise ConfigError(
                    f"--compile compile needs the generator's weights; a {kind} export runs as "
                    f"it was traced: translate from the run, its checkpoint or its .safetensors export"
                )
            # a shallow copy (the same weights) carries the compiled forward: the caller's module stays as it was
            self.generator = copy.copy(self.generator)
            self.generator.forward = _CompiledForward(self.generator, log)

    @property
    def channels(self) -> int:
        return self.config.data.channels

    @property
    def method(self) -> str:
        return self.config.model.name

    def __repr__(self) -> str:
        return (
            f"Translator({self.method}, {self.channels} channels, {self.device}, {self.precision}, from {self.source})"
        )

    def __call__(self, x):
        if isinstance(x, (list, tuple)):
            if x and all(isinstance(item, Image.Image) for item in x):
                return self.translate_images(list(x))
            return [self(item) for item in x]
        if isinstance(x, torch.Tensor):
            return self.translate_tensor(x)
        if isinstance(x, Image.Image):
            return self.translate_image(x)
        raise TypeError(
            f"translate a PIL image, a tensor (C, H, W) or (B, C, H, W) in [-1, 1], or a list of them; "
            f"got {type(x).__name__}"
        )

    def _tiles(self, x: torch.Tensor) -> bool:
        return bool(self.tile) or (self.tile is None and x.shape[-2] * x.shape[-1] > AUTO_TILE_PIXELS)

    @torch.no_grad()
    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        """Translate a float32 batch on ``self.device``: whole when small, else image by image in tiles."""
        with autocast(self.precision, self.device):
            if not self._tiles(batch):
                return translate_tensor(self.generator, batch).float()
            return torch.cat(
                [translate_any(self.generator, b[None], self.tile, self.overlap).to(self.device) for b in batch]
            )

    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (3, 4) or x.shape[-3] != self.channels:
            raise ValueError(
                f"expected a tensor (C, H, W) or (B, C, H, W) with C = {self.channels}, got shape {tuple(x.shape)}"
            )
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


def load(
    run_or_file: str | Path,
    device: torch.device | str = "auto",
    checkpoint: str = "latest",
    tile: int | None = None,
    overlap: int = 128,
    precision: str = "fp32",
    batch_size: int = 1,
    compile: str = "off",
) -> Translator:
    """A :class:`Translator` from a run folder (its ``checkpoint``: ``latest`` or ``best``), a
    checkpoint file, or a file written by ``unpaired export`` (.safetensors; TorchScript and .onnx
    too, in fp32, when torch.jit / onnxruntime can run them). ``device``: auto (cuda, then mps, then
    cpu), cpu, cuda, cuda:N or mps; an .onnx export runs on the CPU (or CUDA where onnxruntime has it).
    ``compile``: off, compile or auto, as :class:`Translator`'s."""
    path = Path(run_or_file)
    if path.is_file() and is_export(path):
        G, cfg, info, dev = load_export(path, device)
    else:
        dev = select_device(device)
        G, cfg, about = open_generator(path, dev, checkpoint)
        info = {"iterations": about["iterations"], "format": about["format"]}
        if "official" in about:  # an official file: named after its folder and file
            info["name"] = about["name"]
            info["official_file"] = Path(about["official"]["file"]).name
            info["train_size"] = about["official"]["crop_size"]  # unknown without train_opt.txt
    return Translator(
        G,
        cfg,
        dev,
        tile,
        overlap,
        source=str(run_or_file),
        precision=precision,
        batch_size=batch_size,
        info=info,
        compile=compile,
    )


__all__ = ["Translator", "load", "check_precision", "choose_translate_mode", "TRANSLATE_MODES"]
