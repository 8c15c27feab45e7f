"""Scoring translations: FID/KID of a generator on a dataset split (:class:`SplitScorer`, used by
training's validation and by :func:`unpaired.inference.evaluation.evaluate_run`) and of two
folders, with bootstrap intervals over the test images and, where the split keeps pairs, paired metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .data.datasets import split_folders
from .data.images import ImageError, load_image, save_image, to_image, to_tensor
from .metrics.collapse import collapse_stats
from .metrics.fid import (
    cached_folder_features,
    folder_features,
    list_image_files,
    load_uint8,
    require_images,
    score,
)
from .metrics.inception import features, load_inception
from .metrics.paired import DEFAULT_TOLERANCE, find_pairs, paired_scores
from .metrics.uncertainty import (
    BOOT_KID_SUBSETS,
    LEVEL,
    bootstrap_fid,
    bootstrap_kid,
    default_n_boot,
)
from .runs import RunFolder
from .tiling import eval_mode, translate_tensor


def intervals(
    real: np.ndarray, fake: np.ndarray, kid: bool = True, n_boot: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """``fid_ci`` (and ``kid_ci``): 95% percentile bootstrap intervals over the test images (real and
    fake redrawn with replacement, independently; :mod:`unpaired.metrics.uncertainty`), each with the
    number of resamples. ``n_boot=None``: :func:`unpaired.metrics.uncertainty.default_n_boot`."""
    n = default_n_boot(len(real), len(fake)) if n_boot is None else n_boot
    low, high = bootstrap_fid(real, fake, n, seed)
    out: dict[str, Any] = {
        "fid_ci": {
            "low": low,
            "high": high,
            "level": LEVEL,
            "n_boot": n,
            "resampled": "test images (real and fake independently)",
        }
    }
    if kid:
        low, high = bootstrap_kid(real, fake, n, seed)
        out["kid_ci"] = {
            "low": low,
            "high": high,
            "level": LEVEL,
            "n_boot": n,
            "subsets": BOOT_KID_SUBSETS,
            "resampled": "test images (real and fake independently)",
        }
    return out


def evaluate_folders(
    real: str | Path,
    fake: str | Path,
    kid: bool = True,
    device: str = "cpu",
    size: int | None = None,
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
    ci: bool = True,
    n_boot: int | None = None,
) -> dict[str, Any]:
    """FID (and KID mean and std) of the images in ``fake`` against those in ``real``, offline,
    pytorch-fid protocol; ``size`` resizes both sides to size x size first. Features of ``real``
    are cached on disk under a hash of its content. Returns {"fid", "kid", "kid_std", "kid_subset_size",
    "n_real", "n_fake"} and, with ``ci`` (default), "fid_ci" (and "kid_ci"): 95% bootstrap intervals
    over the images, see :func:`intervals` (``n_boot`` resamples, default by set size)."""
    # every input is checked before the first feature is computed: a bad folder fails at once
    fake_paths, real_paths = list_image_files(fake), list_image_files(real)
    require_images(fake_paths, fake)
    require_images(real_paths, real)
    real_feats = cached_folder_features(real, size, device, cache_dir, show_progress, paths=real_paths)
    fake_feats = folder_features(fake_paths, size, device, show_progress=show_progress, desc="inception fake")
    result = score(real_feats, fake_feats, kid=kid)
    if ci:
        result.update(intervals(real_feats, fake_feats, kid, n_boot))
    return result


class SplitScorer:
    """Translates a split's A images with a generator and scores them against its real B images.

    Images are resized to ``size`` x ``size`` (bicubic) on both sides, the resolution the model was
    trained at; real-B features are computed once (and cached on disk by content). ``self.targets``
    holds, when the split keeps pairs (every A image has exactly one B image with the same file
    stem), the B file of each A image, else None."""

    def __init__(
        self,
        data_root: str | Path,
        split: str,
        channels: int,
        size: int,
        device: str = "cpu",
        num: int | None = None,
        cache_dir: str | Path | None = None,
        show_progress: bool = False,
    ):
        root = Path(data_root)
        listings, problems = split_folders(root, split)  # the rule training and `data check` apply too
        if problems:
            raise ImageError(
                "; ".join(problems) + f" (scoring the {split} split; 'unpaired data split' makes "
                f"{split}A/ and {split}B/)"
            )
        for listing in listings.values():
            listing.warn_skipped()
        if num is not None and num < 2:
            raise ImageError(
                f"scoring {num} image(s) per side was asked for (--num, train.val_num): FID and KID "
                f"need at least 2 images on each side"
            )
        for side in ("A", "B"):
            require_images(listings[side].images, root / f"{split}{side}")
        self.a_paths = listings["A"].images[:num]
        b_paths = listings["B"].images[:num]
        self.b_dir, self.num = root / f"{split}B", num
        self.channels, self.size, self.device = channels, size, device
        self.show_progress = show_progress
        self.real = cached_folder_features(self.b_dir, size, device, cache_dir, show_progress, paths=b_paths)
        self.inputs = [self._input(p) for p in self.a_paths]
        self.targets = find_pairs(self.a_paths, listings["B"].images)
        self.fake_features: np.ndarray | None = None  # of the last translations scored

    def _input(self, path: Path) -> torch.Tensor:
        im = load_image(path, self.channels)
        return to_tensor(im.resize((self.size, self.size), Image.BICUBIC))

    @torch.no_grad()
    def translate(self, G: torch.nn.Module) -> list[torch.Tensor]:
        with eval_mode(G):
            return [
                translate_tensor(G, x[None].to(self.device))[0].cpu()
                for x in tqdm(self.inputs, desc="translate", unit="img", disable=not self.show_progress)
            ]

    def score(
        self,
        G: torch.nn.Module,
        save_dir: Path | None = None,
        ci: bool = False,
        paired: bool = False,
        pixel_tolerance: int = DEFAULT_TOLERANCE,
        n_boot: int | None = None,
    ) -> dict[str, Any]:
        """FID/KID of G's translations (:func:`unpaired.metrics.fid.score`); ``ci`` adds "fid_ci" and
        "kid_ci" (:func:`intervals`), ``paired`` adds "paired" (means, tolerance, number of pairs and
        per-image values keyed by the A file name; :func:`unpaired.metrics.paired.paired_scores`)
        when the split keeps pairs. Validation during training calls it with neither (fast).
        ``collapse`` is always there: the translations' diversity against the inputs."""
        fakes = self.translate(G)
        images = [to_image(f) for f in fakes]
        rgb = np.stack([np.asarray(im.convert("RGB")) for im in images])
        if save_dir is not None:
            for p, im in zip(self.a_paths, images):
                save_image(im, save_dir / f"{p.stem}.png")
        fake_feats = features(rgb, load_inception(self.device), self.device)
        self.fake_features = fake_feats
        result = {
            **score(self.real, fake_feats),
            "collapse": collapse_stats(torch.stack(self.inputs), torch.stack(fakes)),
        }
        if ci:
            result.update(intervals(self.real, fake_feats, n_boot=n_boot))
        if paired and self.targets is not None:
            targets = load_uint8(self.targets, self.size)
            result["paired"] = paired_scores(list(rgb), targets, [p.name for p in self.a_paths], pixel_tolerance)
        return result


def run_features(
    run_dir: str | Path, split: str = "test", device: str = "cpu", cache_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake) Inception features of a run scored by :func:`evaluate_run`, without translating
    again: fake from RUN_DIR/eval/<split>_features.npy, real from the on-disk cache (recomputed if
    the cache is gone) of the folder, size and limit recorded in <split>.json. For
    :func:`unpaired.metrics.uncertainty.paired_difference` across runs."""
    run = RunFolder(run_dir)
    info = json.loads(run.eval_scores(split).read_text())["features"]
    fake = np.load(run.eval / info["fake"]).astype(np.float64)
    real = info["real"]
    return cached_folder_features(real["dir"], real["size"], device, cache_dir, limit=real["limit"]), fake
