"""Scoring translations: FID/KID of a run's generator on a dataset split, and of two folders, with
bootstrap intervals over the test images and, where the split keeps pairs, paired metrics."""
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
from .data.datasets import split_folders
from .metrics.collapse import collapse_stats
from .metrics.collapse import judge as judge_collapse
from .metrics.fid import cached_folder_features, folder_features, list_image_files, load_uint8, require_images, score
from .metrics.inception import features, load_inception
from .metrics.paired import DEFAULT_TOLERANCE, find_pairs, paired_scores
from .metrics.uncertainty import LEVEL, BOOT_KID_SUBSETS, bootstrap_fid, bootstrap_kid, default_n_boot
from .outputs import atomic_path, make_dir, write_text
from .translate import eval_mode, translate_tensor


def intervals(real: np.ndarray, fake: np.ndarray, kid: bool = True, n_boot: int | None = None,
              seed: int = 0) -> dict[str, Any]:
    """``fid_ci`` (and ``kid_ci``): 95% percentile bootstrap intervals over the test images (real and
    fake redrawn with replacement, independently; :mod:`unpaired.metrics.uncertainty`), each with the
    number of resamples. ``n_boot=None``: :func:`unpaired.metrics.uncertainty.default_n_boot`."""
    n = default_n_boot(len(real), len(fake)) if n_boot is None else n_boot
    low, high = bootstrap_fid(real, fake, n, seed)
    out: dict[str, Any] = {"fid_ci": {"low": low, "high": high, "level": LEVEL, "n_boot": n,
                                      "resampled": "test images (real and fake independently)"}}
    if kid:
        low, high = bootstrap_kid(real, fake, n, seed)
        out["kid_ci"] = {"low": low, "high": high, "level": LEVEL, "n_boot": n, "subsets": BOOT_KID_SUBSETS,
                         "resampled": "test images (real and fake independently)"}
    return out


def evaluate_folders(real: str | Path, fake: str | Path, kid: bool = True, device: str = "cpu",
                     size: int | None = None, cache_dir: str | Path | None = None,
                     show_progress: bool = False, ci: bool = True, n_boot: int | None = None) -> dict[str, Any]:
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

    def __init__(self, data_root: str | Path, split: str, channels: int, size: int, device: str = "cpu",
                 num: int | None = None, cache_dir: str | Path | None = None, show_progress: bool = False):
        root = Path(data_root)
        listings, problems = split_folders(root, split)  # the rule training and `data check` apply too
        if problems:
            raise ImageError("; ".join(problems) + f" (scoring the {split} split; 'unpaired data split' makes "
                                                   f"{split}A/ and {split}B/)")
        for listing in listings.values():
            listing.warn_skipped()
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
        self.targets = find_pairs(self.a_paths, listings["B"].images)
        self.fake_features: np.ndarray | None = None  # of the last translations scored

    def _input(self, path: Path) -> torch.Tensor:
        im = load_image(path, self.channels)
        return to_tensor(im.resize((self.size, self.size), Image.BICUBIC))

    @torch.no_grad()
    def translate(self, G: torch.nn.Module) -> list[torch.Tensor]:
        with eval_mode(G):
            return [translate_tensor(G, x[None].to(self.device))[0].cpu()
                    for x in tqdm(self.inputs, desc="translate", unit="img", disable=not self.show_progress)]

    def score(self, G: torch.nn.Module, save_dir: Path | None = None, ci: bool = False, paired: bool = False,
              pixel_tolerance: int = DEFAULT_TOLERANCE, n_boot: int | None = None) -> dict[str, Any]:
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
        result = {**score(self.real, fake_feats), "collapse": collapse_stats(torch.stack(self.inputs), torch.stack(fakes))}
        if ci:
            result.update(intervals(self.real, fake_feats, n_boot=n_boot))
        if paired and self.targets is not None:
            targets = load_uint8(self.targets, self.size)
            result["paired"] = paired_scores(list(rgb), targets, [p.name for p in self.a_paths], pixel_tolerance)
        return result


def evaluate_run(run_dir: str | Path, data_root: str | Path, split: str = "test", num: int | None = None,
                 which: str = "best", device: str = "cpu", size: int | None = None,
                 cache_dir: str | Path | None = None, show_progress: bool = True, ci: bool = True,
                 pixel_tolerance: int = DEFAULT_TOLERANCE, n_boot: int | None = None) -> dict[str, Any]:
    """Score a run's generator on a split. Writes RUN_DIR/eval/<split>/ (the translations),
    RUN_DIR/eval/<split>_features.npy (their Inception features, float32, one row per input in the
    order of "inputs") and RUN_DIR/eval/<split>.json: FID/KID, with ``ci`` "fid_ci"/"kid_ci", "paired"
    when the split keeps pairs, and "features" (where the fake features are and how to recompute the
    real ones: folder, size, limit)."""
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
    eval_dir = run_dir / "eval"
    out_dir = eval_dir / split
    if out_dir.exists():
        shutil.rmtree(out_dir)
    result = scorer.score(G, save_dir=out_dir, ci=ci, paired=True, pixel_tolerance=pixel_tolerance, n_boot=n_boot)
    feats_name = f"{split}_features.npy"
    with atomic_path(eval_dir / feats_name) as tmp, open(tmp, "wb") as f:
        np.save(f, scorer.fake_features.astype(np.float32))
    result.update({
        "split": split, "checkpoint": path.name, "iteration": state["progress"]["iteration"],
        "epoch": state["progress"]["epoch"], "size": size, "data": str(Path(data_root).resolve()),
        "real_dir": str(scorer.b_dir.resolve()), "inputs": [str(p.resolve()) for p in scorer.a_paths],
        "features": {"fake": feats_name, "dtype": "float32",
                     "real": {"dir": str(scorer.b_dir.resolve()), "size": size, "limit": num,
                              "n": int(len(scorer.real))}},
        "seconds": time.perf_counter() - t0,
    })
    # a run trained without validation was never checked for collapse: say it here, once scored
    reason = judge_collapse(result["collapse"], split)
    result["collapse"]["collapsed"] = reason
    if reason:
        print(f"warning: {run_dir} looks collapsed: {reason}; its scores describe a failed run, not its method",
              file=sys.stderr)
    write_text(eval_dir / f"{split}.json", json.dumps(result, indent=2))
    return result


def run_features(run_dir: str | Path, split: str = "test", device: str = "cpu",
                 cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake) Inception features of a run scored by :func:`evaluate_run`, without translating
    again: fake from RUN_DIR/eval/<split>_features.npy, real from the on-disk cache (recomputed if
    the cache is gone) of the folder, size and limit recorded in <split>.json. For
    :func:`unpaired.metrics.uncertainty.paired_difference` across runs."""
    eval_dir = Path(run_dir) / "eval"
    info = json.loads((eval_dir / f"{split}.json").read_text())["features"]
    fake = np.load(eval_dir / info["fake"]).astype(np.float64)
    real = info["real"]
    return cached_folder_features(real["dir"], real["size"], device, cache_dir, limit=real["limit"]), fake
