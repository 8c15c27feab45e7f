"""Inference: translate image files or folders of any size with a trained generator."""
from __future__ import annotations

import sys
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
    state = ckpt_io.load(checkpoint)
    cfg = Config.from_dict(state["config"])
    cls = MODELS[cfg.model.name]
    G = cls.build_generator(cfg)
    prefix = cls.GENERATOR_PREFIX
    G.load_state_dict({k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)})
    return G.to(device).eval(), cfg


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
                    ext: str = ".png", show_progress: bool = True) -> tuple[list[Path], list[str]]:
    """Translate every image under ``inputs`` into ``out_dir``. Returns (written files, error messages):
    an unreadable file is reported and skipped, the others are still translated."""
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
        y = translate_tensor(G, to_tensor(im)[None].to(device))
        save_image(to_image(y[0]), dst)
        written.append(dst)
    return written, errors


__all__ = ["load_generator", "translate_tensor", "translate_files", "find_images"]
