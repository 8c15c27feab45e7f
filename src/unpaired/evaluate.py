"""Scoring translations: FID/KID of a run's generator on a dataset split, and of two folders."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .data.images import ImageError, load_image, save_image, to_image, to_tensor
from .metrics.collapse import collapse_stats
from .metrics.fid import cached_folder_features, folder_features, list_image_files, score
from .metrics.inception import features, load_inception
from .translate import eval_mode, translate_tensor


def evaluate_folders(real: str | Path, fake: str | Path, kid: bool = True, device: str = "cpu",
                     size: int | None = None, cache_dir: str | Path | None = None,
                     show_progress: bool = False) -> dict[str, Any]:
    """FID (and KID mean and std) of the images in ``fake`` against those in ``real``, offline,
    pytorch-fid protocol; ``size`` resizes both sides to size x size first. Features of ``real``
    are cached on disk under a hash of its content. Returns {"fid", "kid", "kid_std", "n_real", "n_fake"}."""
    fake_paths = list_image_files(fake)  # before the real features: an empty folder fails at once
    real_feats = cached_folder_features(real, size, device, cache_dir, show_progress)
    fake_feats = folder_features(fake_paths, size, device, show_progress=show_progress, desc="inception fake")
    return score(real_feats, fake_feats, kid=kid)


class SplitScorer:
    """Translates a split's A images with a generator and scores them against its real B images.

    Images are resized to ``size`` x ``size`` (bicubic) on both sides, the resolution the model was
    trained at; real-B features are computed once (and cached on disk by content)."""

    def __init__(self, data_root: str | Path, split: str, channels: int, size: int, device: str = "cpu",
                 num: int | None = None, cache_dir: str | Path | None = None, show_progress: bool = False):
        root = Path(data_root)
        a_dir, b_dir = root / f"{split}A", root / f"{split}B"
        for d in (a_dir, b_dir):
            if not d.is_dir():
                raise ImageError(f"{d} does not exist: scoring the {split} split needs {split}A/ and {split}B/ "
                                 f"(make them with 'unpaired data split')")
        self.a_paths = list_image_files(a_dir)[:num]
        self.b_dir, self.num = b_dir, num
        self.channels, self.size, self.device = channels, size, device
        self.show_progress = show_progress
        self.real = cached_folder_features(b_dir, size, device, cache_dir, show_progress, limit=num)
        self.inputs = [self._input(p) for p in self.a_paths]

    def _input(self, path: Path) -> torch.Tensor:
        im = load_image(path, self.channels)
        return to_tensor(im.resize((self.size, self.size), Image.BICUBIC))

    @torch.no_grad()
    def translate(self, G: torch.nn.Module) -> list[torch.Tensor]:
        with eval_mode(G):
            return [translate_tensor(G, x[None].to(self.device))[0].cpu()
                    for x in tqdm(self.inputs, desc="translate", unit="img", disable=not self.show_progress)]

    def score(self, G: torch.nn.Module, save_dir: Path | None = None) -> dict[str, Any]:
        """FID/KID of G's translations, and ``collapse``: their diversity against the inputs."""
        fakes = self.translate(G)
        images = [to_image(f) for f in fakes]
        rgb = np.stack([np.asarray(im.convert("RGB")) for im in images])
        if save_dir is not None:
            for p, im in zip(self.a_paths, images):
                save_image(im, save_dir / f"{p.stem}.png")
        fake_feats = features(rgb, load_inception(self.device), self.device)
        return {**score(self.real, fake_feats), "collapse": collapse_stats(torch.stack(self.inputs), torch.stack(fakes))}


def evaluate_run(run_dir: str | Path, data_root: str | Path, split: str = "test", num: int | None = None,
                 which: str = "best", device: str = "cpu", size: int | None = None,
                 cache_dir: str | Path | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Score a run's generator on a split; writes RUN_DIR/eval/<split>.json and the translations."""
    from . import checkpoint as ckpt_io
    from .translate import generator_from_state

    run_dir = Path(run_dir)
    if which == "best" and run_dir.is_dir() and not (run_dir / "checkpoints" / "best.pt").is_file():
        print(f"note: {run_dir} has no best checkpoint (it was trained without validation); "
              f"scoring the latest one", file=sys.stderr)
        which = "latest"
    path = ckpt_io.resolve_path(run_dir, which)
    state = ckpt_io.load(path)
    G, cfg = generator_from_state(state, device)
    size = size or cfg.data.crop_size
    t0 = time.perf_counter()
    scorer = SplitScorer(data_root, split, cfg.data.channels, size, device, num, cache_dir, show_progress)
    out_dir = run_dir / "eval" / split
    if out_dir.exists():
        shutil.rmtree(out_dir)
    result = scorer.score(G, save_dir=out_dir)
    result.update({
        "split": split, "checkpoint": path.name, "iteration": state["progress"]["iteration"],
        "epoch": state["progress"]["epoch"], "size": size, "data": str(Path(data_root).resolve()),
        "real_dir": str(scorer.b_dir.resolve()), "inputs": [str(p.resolve()) for p in scorer.a_paths],
        "seconds": time.perf_counter() - t0,
    })
    tmp = run_dir / "eval" / f".{split}.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(run_dir / "eval" / f"{split}.json")
    return result
