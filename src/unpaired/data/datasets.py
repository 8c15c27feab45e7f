"""Datasets for training: two unaligned image folders (the reference ``UnalignedDataset``).

Every sample is a pure function of (seed, epoch, position): which A and B images it uses and how
they are augmented. Resuming at any iteration, with any number of loader workers, therefore gives
exactly the same batches as an uninterrupted run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from .images import ImageError, list_images, load_image, to_tensor


@dataclass(frozen=True)
class Augment:
    load_size: int
    crop_size: int
    flip: bool


def augment(im: Image.Image, aug: Augment, rng: np.random.Generator) -> torch.Tensor:
    """Resize to load_size x load_size (bicubic), random crop, random horizontal flip; [-1, 1] tensor."""
    if im.size != (aug.load_size, aug.load_size):
        im = im.resize((aug.load_size, aug.load_size), Image.BICUBIC)
    x0 = int(rng.integers(0, aug.load_size - aug.crop_size + 1))
    y0 = int(rng.integers(0, aug.load_size - aug.crop_size + 1))
    im = im.crop((x0, y0, x0 + aug.crop_size, y0 + aug.crop_size))
    if aug.flip and rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    return to_tensor(im)


class UnalignedDataset(Dataset):
    """Random pairs (a, b) from ``root/trainA`` and ``root/trainB``.

    Epoch e visits every A image once in a seeded random order and draws B at random; its length is
    max(|A|, |B|) as in the reference. From epoch ``n_epochs`` on (the decay phase) images are resized
    straight to the crop size, as the reference does. Indexed by (epoch, position) keys.
    """

    def __init__(self, root: str | Path, channels: int, load_size: int, crop_size: int, flip: bool,
                 seed: int, n_epochs: int, split: str = "train"):
        root = Path(root)
        self.paths = {}
        for side in ("A", "B"):
            folder = root / f"{split}{side}"
            if not folder.is_dir():
                raise ImageError(f"{folder} does not exist: the dataset needs {root}/{split}A and {root}/{split}B "
                                 f"folders of images (domain A = source, domain B = target)")
            self.paths[side] = list_images(folder)
            if not self.paths[side]:
                raise ImageError(f"{folder} contains no images (looked for .jpg, .png, .bmp, .tif, .webp, ...)")
        self.channels = channels
        self.seed = seed
        self.n_epochs = n_epochs
        self.augment_train = Augment(load_size, crop_size, flip)
        self.augment_decay = Augment(crop_size, crop_size, flip)
        self._order_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def epoch_length(self) -> int:
        return max(len(self.paths["A"]), len(self.paths["B"]))

    def __len__(self) -> int:
        return self.epoch_length

    def _order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if self._order_cache is None or self._order_cache[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch, 0])
            n, na, nb = self.epoch_length, len(self.paths["A"]), len(self.paths["B"])
            a = np.concatenate([rng.permutation(na) for _ in range(-(-n // na))])[:n]
            b = rng.integers(0, nb, size=n)
            self._order_cache = (epoch, a, b)
        return self._order_cache[1], self._order_cache[2]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor | str]:
        epoch, pos = key
        a_idx, b_idx = self._order(epoch)
        rng = np.random.default_rng([self.seed, epoch, pos, 1])
        aug = self.augment_train if epoch < self.n_epochs else self.augment_decay
        pa, pb = self.paths["A"][a_idx[pos]], self.paths["B"][b_idx[pos]]
        return {"A": augment(load_image(pa, self.channels), aug, rng),
                "B": augment(load_image(pb, self.channels), aug, rng),
                "A_path": str(pa), "B_path": str(pb)}


class EpochBatchSampler(Sampler):
    """Batches of (epoch, position) keys from a start point onwards, epoch after epoch, forever.

    The last batch of an epoch may be smaller (as with the reference's drop_last=False).
    """

    def __init__(self, epoch_length: int, batch_size: int, start_epoch: int = 0, start_batch: int = 0):
        self.epoch_length = epoch_length
        self.batch_size = batch_size
        self.start = (start_epoch, start_batch)

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.epoch_length // self.batch_size)

    def __iter__(self):
        epoch, batch = self.start
        while True:
            lo = batch * self.batch_size
            yield [(epoch, p) for p in range(lo, min(lo + self.batch_size, self.epoch_length))]
            batch += 1
            if batch == self.batches_per_epoch:
                epoch, batch = epoch + 1, 0

    def __len__(self) -> int:  # one epoch; the sampler itself never ends
        return self.batches_per_epoch
