"""Datasets and loaders for training, built from the configuration."""

from __future__ import annotations

import signal
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..config import Config
from .datasets import (
    EpochBatchSampler,
    EpochKeySampler,
    SingleImageDataset,
    UnalignedDataset,
)
from .images import ImageError, scan_folder, skipped_summary


def single_image_paths(cfg: Config) -> tuple[Path, Path, list[tuple[Path, str]]]:
    """data.image_a/image_b, else the only image of root/trainA and root/trainB; and the entries the
    listing rule skipped in those folders."""
    d = cfg.data
    paths, skipped = [], []
    for side, given in (("A", d.image_a), ("B", d.image_b)):
        if given:
            paths.append(Path(given))
            continue
        if d.root is None:
            raise ImageError(
                f"single-image training needs --image-{side.lower()} FILE, or --data DIR with "
                f"one image in DIR/train{side}"
            )
        folder = Path(d.root) / f"train{side}"
        listing = scan_folder(folder) if folder.is_dir() else None
        found = listing.images if listing else []
        if len(found) != 1:
            raise ImageError(
                f"single-image training needs exactly one image in {folder} "
                f"(found {len(found)}); or name it with --image-{side.lower()} FILE"
            )
        paths.append(found[0])
        skipped += listing.skipped
    return paths[0], paths[1], skipped


def training_dataset(cfg: Config, rank: int = 0):
    """The training dataset the configuration describes; its ``skipped_entries`` are what the listing
    rule skipped in its folders (the Trainer warns about them; ``--strict`` refuses them)."""
    d, tc = cfg.data, cfg.train
    if d.mode == "single":
        a, b, skipped = single_image_paths(cfg)
        dataset = SingleImageDataset(a, b, d.channels, d.crop_size, d.batch_size, d.zoom_max, d.flip, tc.seed, rank)
        dataset.skipped_entries = skipped
    elif d.root is None:
        raise ImageError("--data DIR is required: a folder with trainA/ and trainB/ image folders")
    else:
        dataset = UnalignedDataset(
            d.root, d.channels, d.load_size, d.crop_size, d.flip, tc.seed, tc.epochs, strict=d.strict
        )
    if d.strict and dataset.skipped_entries:
        raise ImageError(
            skipped_summary(dataset.skipped_entries, "of the training folders")
            + "; training stops because of --strict (without it they are skipped with a warning)"
        )
    return dataset


def batches_per_epoch(cfg: Config, dataset, world: int = 1) -> int:
    """Iterations per epoch; ``data.batch_size`` is per process, the global batch is world times it."""
    n = cfg.data.epoch_length if isinstance(dataset, SingleImageDataset) else dataset.epoch_length
    return -(-n // (cfg.data.batch_size * world))


def _ignore_sigint(worker_id: int) -> None:
    # Ctrl-C reaches the whole process group; loader workers must survive it so that the main
    # process can finish its iteration and save (see unpaired.training.callbacks.GracefulInterrupt).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def training_loader(
    cfg: Config, dataset, start_epoch: int, start_batch: int, pin_memory: bool, rank: int = 0, world: int = 1
) -> DataLoader:
    """An endless loader from (start_epoch, start_batch): batches are a pure function of the seed
    and their position, so a resumed run sees exactly the batches an uninterrupted one would."""
    workers = cfg.data.num_workers
    common = dict(
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        # its own generator: drawing a base seed from the global RNG would shift the
        # model's random stream on every resume
        generator=torch.Generator().manual_seed(cfg.train.seed),
        worker_init_fn=_ignore_sigint,
    )
    if isinstance(dataset, SingleImageDataset):
        sampler = EpochKeySampler(batches_per_epoch(cfg, dataset, world), start_epoch, start_batch)
        return DataLoader(dataset, sampler=sampler, batch_size=None, **common)
    sampler = EpochBatchSampler(dataset.epoch_length, cfg.data.batch_size, start_epoch, start_batch, rank, world)
    return DataLoader(dataset, batch_sampler=sampler, **common)
