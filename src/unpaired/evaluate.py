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
from .outputs import make_dir, write_text
from .data.datasets import split_folders
from .metrics.fid import cached_folder_features, folder_features, list_image_files, require_images, score
from .metrics.inception import features, load_inception
from .translate import eval_mode, translate_tensor


def evaluate_folders(real: str | Path, fake: str | Path, kid: bool = True, device: str = "cpu",
                     size: int | None = None, cache_dir: str | Path | None = None,
                     show_progress: bool = False) -> dict[str, Any]:
    """FID (and KID mean and std) of the images in ``fake`` against those in ``real``, offline,
    pytorch-fid protocol; ``size`` resizes both sides to size x size first. Features of ``real``
    are cached on disk under a hash of its content. Returns {"fid", "kid", "kid_std", "n_real", "n_fake"}."""
    # every input is checked before the first feature is computed: a bad folder fails at once
    fake_paths, real_paths = list_image_files(fake), list_image_files(real)
    require_images(fake_paths, fake)
    require_images(real_paths, real)
    real_feats = cached_folder_features(real, size, device, cache_dir, show_progress, paths=real_paths)
    fake_feats = folder_features(fake_paths, size, device, show_progress=show_progress, desc="inception fake")
    return score(real_feats, fake_feats, kid=kid)


class SplitScorer:
    """Translates a split's A images with a generator and scores them against its real B images.

    Images are resized to ``size`` x ``size`` (bicubic) on both sides, the resolution the model was
    trained at; real-B features are computed once (and cached on disk by content)."""

    def __init__(self, data_root: str | Path, split: str, channels: int, size: int, device: str = "cpu",
                 num: int | None = None, cache_dir: str | Path | None = None, show_progress: bool = False):
        root = Path(data_root)
        listings, problems = split_folders(root, split)  # the rule training and `data check` apply too
        if problems:
            raise ImageError("; ".join(problems) + f" (scoring the {split} split; 'unpaired data split' makes "
                                                   f"{split}A/ and {split}B/)")
        for listing in listings.values():
            if listing.skipped:
                print(f"warning: {listing.skipped_summary()}: skipped ('unpaired data check' lists them)",
                      file=sys.stderr)
        if num is not None and num < 2:
            raise ImageError(f"scoring {num} image(s) per side was asked for (--num, train.val_num): FID and KID "
                             f"need at least 2 images on each side")
        for side in ("A", "B"):
            require_images(listings[side].images, root / f"{split}{side}")
        self.a_paths = listings["A"].images[:num]
        b_paths = listings["B"].images[:num]
        self.b_dir, self.num = root / f"{split}B", num
        self.channels, self.size, self.device = channels, size, device
        self.show_progress = show_progress
        self.real = cached_folder_features(self.b_dir, size, device, cache_dir, show_progress, paths=b_paths)
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
    G, cfg = generator_from_state(state, device, source=path)
    size = size or cfg.data.crop_size
    make_dir(run_dir / "eval", "evaluation folder")  # before any feature: an unwritable run fails at once
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
    write_text(run_dir / "eval" / f"{split}.json", json.dumps(result, indent=2))
    return result
