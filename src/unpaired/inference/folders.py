"""Translating folders: which files, where each output goes, and the batch loop with a progress bar."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from ..data.images import (
    IMAGE_EXTENSIONS,
    ImageError,
    load_image,
    save_image,
    scan_folder,
)
from ..files import make_dir
from .translator import Translator, load


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
        raise ImageError(
            f"input {path} does not exist"
            if not path.is_symlink()
            else f"input {path} is a broken link or a link that loops"
        )
    listing = scan_folder(path)
    return listing.images, [f"{p}: not translated, {why}" for p, why in listing.skipped]


def output_paths(inputs: list[Path], root: Path, out_dir: Path, ext: str) -> list[Path]:
    """One output per input: same relative folder and file stem, extension ``ext``; refuses collisions."""
    outs = [
        out_dir / (p.relative_to(root).with_suffix(ext) if root.is_dir() else p.with_suffix(ext).name) for p in inputs
    ]
    seen: dict[Path, Path] = {}
    for src, dst in zip(inputs, outs):
        if dst in seen:
            raise ImageError(f"{seen[dst]} and {src} would both be written to {dst}; rename one of them")
        seen[dst] = src
    return outs


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
        raise ImageError(
            f"no images found in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
            + (f"; {errors[0]}" if errors else "")
        )
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


def translate_files(
    checkpoint: str | Path,
    inputs: str | Path,
    out_dir: str | Path,
    device: str = "cpu",
    ext: str = ".png",
    show_progress: bool = True,
    tile: int | None = None,
    overlap: int = 128,
    batch_size: int = 1,
    precision: str = "fp32",
    skip_existing: bool = False,
    translator: Translator | None = None,
    plan: TranslationPlan | None = None,
) -> tuple[list[Path], list[str]]:
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
        for out, dst in zip(
            translator.translate_images([im for im, _ in pending], batch_size), [d for _, d in pending]
        ):
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
