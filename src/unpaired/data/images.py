"""Image files: discovery, robust loading, conversion to/from tensors."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UnpairedError
from ..files import atomic_path

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class ImageError(UnpairedError, RuntimeError):
    """An image file could not be used; the message names the file."""


@dataclass
class Listing:
    """What :func:`scan_folder` found under ``root``: ``files`` (regular files and links to them,
    sorted by relative path) and ``skipped`` ((path, why) for every entry that is neither)."""

    root: Path
    files: list[Path]
    skipped: list[tuple[Path, str]]

    @property
    def images(self) -> list[Path]:
        return [p for p in self.files if is_image_path(p)]

    def skipped_summary(self) -> str:
        """How many entries were skipped, and the first of them with the reason (part of a line)."""
        return skipped_summary(self.skipped, f"under {self.root}")

    def warn_skipped(self, verb: str = "skipped") -> None:
        """One warning line on stderr naming the skipped entries, if any."""
        if self.skipped:
            print(f"warning: {self.skipped_summary()}: {verb} ('unpaired data check' lists them)", file=sys.stderr)


def skipped_summary(skipped: list[tuple[Path, str]], where: str) -> str:
    """'3 entries under DIR are neither a readable file nor a folder (first: PATH, why)'."""
    n = len(skipped)
    path, why = skipped[0]
    return (
        f"{n} entr{'y' if n == 1 else 'ies'} {where} {'is' if n == 1 else 'are'} neither a readable file nor "
        f"a folder (first: {path}, {why})"
    )


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "neither a file nor a folder"


def why_skipped(path: Path) -> str:
    """Why an entry that is not a regular file (nor a link to one) cannot be listed."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if not stat.S_ISLNK(st.st_mode):
        return "a folder that cannot be read" if stat.S_ISDIR(st.st_mode) else _file_kind(st.st_mode)
    try:
        target = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a link that loops back on itself"
        if e.errno == errno.ENOENT:
            return f"a broken link to {os.readlink(path)}"
        return f"a link whose target cannot be read ({e.strerror})"
    if stat.S_ISDIR(target.st_mode):
        resolved, parent = path.resolve(), path.parent.resolve()
        if resolved == parent or resolved in parent.parents:
            return "a link to a folder above it, not followed (a cycle)"
        return "a link to a folder, not followed"
    return "a link to " + _file_kind(target.st_mode)


def scan_folder(folder: str | Path) -> Listing:
    """The one listing rule of the whole package (training sets, split sources, FID folders,
    translation inputs, checks).

    Every file below ``folder``, recursively, sorted by relative path; names starting with '.'
    (hidden files and folders, our own temporary files) are skipped without a word. Links to files
    are listed. Everything else is *skipped and reported*, never dropped silently: links to
    folders (not followed, so a link cycle cannot hang a walk), broken links, links that loop,
    named pipes, sockets, devices and folders that cannot be read go to ``Listing.skipped`` with
    the reason. What the commands do with them: ``data check`` lists each as a problem (exit
    status 1); ``train`` warns once with their count and the first of them, and refuses to start
    under ``--strict``; ``translate`` lists each as an input it could not translate (exit status
    1, the other inputs are still translated); ``data split`` and ``evaluate`` warn once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder} is not a folder")
    files, skipped = [], []
    unreadable: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable.append):
        here = Path(dirpath)
        kept = []
        for d in dirnames:
            if d.startswith("."):
                continue
            if (here / d).is_symlink():
                skipped.append((here / d, why_skipped(here / d)))
            else:
                kept.append(d)
        dirnames[:] = kept
        for f in filenames:
            if f.startswith("."):
                continue
            p = here / f
            if p.is_file():
                files.append(p)
            else:
                skipped.append((p, why_skipped(p)))
    skipped += [(Path(e.filename), f"a folder that cannot be read ({e.strerror})") for e in unreadable]

    def order(p: Path) -> tuple[str, ...]:
        return p.relative_to(folder).parts if p.is_relative_to(folder) else p.parts

    return Listing(folder, sorted(files, key=order), sorted(skipped, key=lambda s: order(s[0])))


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | Path, warn: bool = False) -> list[Path]:
    """The images of a folder by the one listing rule (:func:`scan_folder`): its files with an image
    extension. ``warn``: print one line on stderr about entries the rule skipped (else they are
    the caller's to report, through :func:`scan_folder`)."""
    listing = scan_folder(folder)
    if warn:
        listing.warn_skipped()
    return listing.images


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _to_8bit(im: Image.Image) -> Image.Image:
    """Integer and float images (16-bit PNG, 32-bit TIFF, ...) scaled to 8 bits, not clipped."""
    arr = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        top = 1.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 255.0
    else:  # I;16* and I: 16-bit data in PIL's integer modes
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
    arr = np.nan_to_num(arr, nan=0.0, posinf=top, neginf=0.0)
    return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


def load_image(path: str | Path, channels: int = 3) -> Image.Image:
    """Open an image, apply its EXIF orientation and convert it to RGB (3) or L (1).

    Handles 16-bit and float images (scaled to 8 bits), CMYK, palette and alpha images (alpha
    composited on white, the usual background of cut-out photos and drawings). Every failure is an
    :class:`ImageError` that names the file and says what is wrong with it.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageError(f"cannot read image {path}: {e.strerror or e}") from None
    return _decode(path, size, str(path), channels)


def decode_image(data: bytes, name: str, channels: int = 3) -> Image.Image:
    """:func:`load_image` for bytes already in memory (an upload): the same conversions and the same
    error messages, with ``name`` in place of the path."""
    return _decode(io.BytesIO(data), len(data), name, channels)


def _decode(source: Path | io.BytesIO, size: int, name: str, channels: int) -> Image.Image:
    if size == 0:
        raise ImageError(f"cannot read image {name}: the file is empty (0 bytes)")
    try:
        with Image.open(source) as im:
            im.load()
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:  # a broken EXIF block should not cost us the pixels
                pass
    except UnidentifiedImageError:
        raise ImageError(f"cannot read image {name}: not an image file, or a format Pillow cannot decode") from None
    except Image.DecompressionBombError as e:  # Pillow refuses to decode more than 2 x MAX_IMAGE_PIXELS
        raise ImageError(f"cannot read image {name}: too large to decode ({e})") from None
    except Exception as e:  # truncated or corrupt data: PIL raises OSError, SyntaxError, ValueError, ...
        raise ImageError(f"cannot read image {name}: the file is corrupt or truncated ({e})") from None
    return convert_image(im, channels, name)


def convert_image(im: Image.Image, channels: int = 3, name: str = "image") -> Image.Image:
    """Any PIL image -> 8-bit RGB (3) or L (1): 16-bit and float images scaled, palettes expanded,
    alpha composited on white. ``name`` identifies the image in the error message."""
    try:
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            im = _to_8bit(im)
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA")
        if im.mode in ("RGBA", "LA", "La", "RGBa"):
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im.convert("RGBA"))
        return im.convert("RGB" if channels == 3 else "L")
    except Exception as e:
        raise ImageError(
            f"cannot convert {name} (mode {im.mode}) to {'RGB' if channels == 3 else 'grayscale'}: {e}"
        ) from None


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL image -> float tensor (C, H, W) in [-1, 1]."""
    arr = np.asarray(im, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).div_(127.5).sub_(1.0)


def to_image(x: torch.Tensor) -> Image.Image:
    """Float tensor (C, H, W) in [-1, 1] -> 8-bit PIL image (L or RGB)."""
    arr = ((x.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).numpy()
    return Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")


def save_image(im: Image.Image, path: str | Path) -> None:
    """Write an image atomically (temporary file + rename): a crash or a full disk never leaves half
    a file, and a failed write is an :class:`unpaired.outputs.OutputError` naming the file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        im.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))


def triptych(columns: list[torch.Tensor]) -> Image.Image:
    """Side-by-side grid: one column per tensor (B, C, H, W), one row per image of the batch."""
    rows = []
    for i in range(columns[0].shape[0]):
        tiles = [c[i].expand(3, -1, -1) if c.shape[1] == 1 else c[i] for c in columns]
        rows.append(torch.cat(tiles, dim=2))
    return to_image(torch.cat(rows, dim=1))
