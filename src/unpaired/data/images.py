"""Image files: discovery, robust loading, conversion to/from tensors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class ImageError(RuntimeError):
    """An image file could not be used; the message names the file."""


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (by extension), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_image(path: str | Path, channels: int = 3) -> Image.Image:
    """Open an image, apply its EXIF orientation and convert it to RGB (3) or L (1).

    Transparent images are composited on white (the usual background of cut-out photos and
    drawings) rather than keeping whatever colour hides under the alpha channel.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()
    except Exception as e:  # PIL raises many types for bad files
        raise ImageError(f"cannot read image {path}: {e}") from None
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit integer images: scale to 8 bits instead of clipping at 255
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im.convert("RGBA"))
    return im.convert("RGB" if channels == 3 else "L")


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
    """Write an image atomically (temporary file + rename), so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    im.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    tmp.replace(path)


def triptych(columns: list[torch.Tensor]) -> Image.Image:
    """Side-by-side grid: one column per tensor (B, C, H, W), one row per image of the batch."""
    rows = []
    for i in range(columns[0].shape[0]):
        tiles = [c[i].expand(3, -1, -1) if c.shape[1] == 1 else c[i] for c in columns]
        rows.append(torch.cat(tiles, dim=2))
    return to_image(torch.cat(rows, dim=1))
