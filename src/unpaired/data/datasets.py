"""Datasets for training: two unaligned image folders (the reference ``UnalignedDataset``).

Every sample is a pure function of (seed, epoch, position): which A and B images it uses and how
they are augmented. Resuming at any iteration, with any number of loader workers, therefore gives
exactly the same batches as an uninterrupted run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from .images import ImageError, Listing, load_image, scan_folder, to_tensor


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


def split_folders(root: str | Path, split: str = "train") -> tuple[dict[str, Listing], list[str]]:
    """The rule for a dataset's ``{split}A`` and ``{split}B`` folders that every command applies
    (training, validation, ``evaluate run`` and ``data check``, so they cannot disagree): both must
    exist and hold images. Returns the listing of each existing folder and one message per problem."""
    root = Path(root)
    listings, problems = {}, []
    for side in ("A", "B"):
        folder = root / f"{split}{side}"
        if not folder.is_dir():
            other = root / f"{split}{'B' if side == 'A' else 'A'}"
            hint = f" ({other.name}/ exists: both domains are needed)" if other.is_dir() else ""
            problems.append(
                f"{folder} does not exist{hint}: the dataset needs {root}/{split}A and {root}/{split}B "
                f"folders of images (domain A = source, domain B = target)"
            )
            continue
        listings[side] = scan_folder(folder)
        if not listings[side].images:
            problems.append(f"{folder} contains no images (looked for .jpg, .png, .bmp, .tif, .webp, ...)")
    return listings, problems


class UnalignedDataset(Dataset):
    """Random pairs (a, b) from ``root/trainA`` and ``root/trainB``.

    Epoch e visits every A image once in a seeded random order and draws B at random; its length is
    max(|A|, |B|) as in the reference. From epoch ``n_epochs`` on (the decay phase) images are resized
    straight to the crop size, as the reference does. Indexed by (epoch, position) keys.

    An unreadable file is replaced by the next readable one of its folder (deterministically, so
    resume stays exact) and named in the sample's ``skipped`` field; ``strict=True`` raises instead.
    A sample whose source image is smaller than the crop names it in ``small`` (it is upscaled).
    """

    def __init__(
        self,
        root: str | Path,
        channels: int,
        load_size: int,
        crop_size: int,
        flip: bool,
        seed: int,
        n_epochs: int,
        split: str = "train",
        strict: bool = False,
    ):
        root = Path(root)
        listings, problems = split_folders(root, split)
        if problems:
            raise ImageError("; ".join(problems))
        self.paths = {side: listing.images for side, listing in listings.items()}
        # entries the listing rule skipped (broken links, ...): the Trainer warns, --strict
        # (training_dataset) refuses them
        self.skipped_entries = [s for listing in listings.values() for s in listing.skipped]
        self.channels = channels
        self.seed = seed
        self.n_epochs = n_epochs
        self.strict = strict
        self.crop_size = crop_size
        self.augment_train = Augment(load_size, crop_size, flip)
        self.augment_decay = Augment(crop_size, crop_size, flip)
        self._order_cache: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None

    @property
    def epoch_length(self) -> int:
        return max(len(self.paths["A"]), len(self.paths["B"]))

    def __len__(self) -> int:
        return self.epoch_length

    def _order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if self._order_cache is None or self._order_cache[0] != (self.seed, epoch):  # a restart changes the seed
            rng = np.random.default_rng([self.seed, epoch, 0])
            n, na, nb = self.epoch_length, len(self.paths["A"]), len(self.paths["B"])
            a = np.concatenate([rng.permutation(na) for _ in range(-(-n // na))])[:n]
            b = rng.integers(0, nb, size=n)
            self._order_cache = ((self.seed, epoch), a, b)
        return self._order_cache[1], self._order_cache[2]

    def _load(self, side: str, index: int, skipped: list[str]) -> tuple[Image.Image, Path]:
        paths = self.paths[side]
        for step in range(len(paths)):
            path = paths[(index + step) % len(paths)]
            try:
                return load_image(path, self.channels), path
            except ImageError as e:
                if self.strict:
                    raise ImageError(
                        f"{e} (training stops because of --strict; without it the file is skipped)"
                    ) from None
                skipped.append(str(e))
        raise ImageError(f"no image in {paths[0].parent} can be read: {skipped[-1]}")

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor | str]:
        epoch, pos = key
        a_idx, b_idx = self._order(epoch)
        rng = np.random.default_rng([self.seed, epoch, pos, 1])
        aug = self.augment_train if epoch < self.n_epochs else self.augment_decay
        skipped: list[str] = []
        im_a, pa = self._load("A", int(a_idx[pos]), skipped)
        im_b, pb = self._load("B", int(b_idx[pos]), skipped)
        small = [str(p) for p, im in ((pa, im_a), (pb, im_b)) if min(im.size) < self.crop_size]
        # strings, not lists: the default collate keeps one string per sample
        return {
            "A": augment(im_a, aug, rng),
            "B": augment(im_b, aug, rng),
            "A_path": str(pa),
            "B_path": str(pb),
            "skipped": "\n".join(skipped),
            "small": "\n".join(small),
        }


class SingleImageDataset(Dataset):
    """Minibatches of crops from one image per domain (SinCUT), indexed by iteration.

    As the reference: each minibatch draws one zoom per axis, uniform in [1/scale_max, 1] (never
    below the crop size); every crop takes a different cell of a randomly offset grid over the
    zoomed image (cells shuffled, so negatives come from different places) and is flipped with
    p = 0.5. An image smaller than the crop is upscaled with a warning.
    """

    def __init__(
        self,
        path_a: str | Path,
        path_b: str | Path,
        channels: int = 3,
        crop_size: int = 128,
        batch_size: int = 16,
        scale_max: float = 3.0,
        flip: bool = True,
        seed: int = 0,
        rank: int = 0,
    ):
        if scale_max < 1:
            raise ValueError(f"scale_max must be >= 1, got {scale_max}")
        self.images = {"A": load_image(path_a, channels), "B": load_image(path_b, channels)}
        self.paths = {"A": Path(path_a), "B": Path(path_b)}
        for side, im in self.images.items():
            if min(im.size) < crop_size:
                warnings.warn(
                    f"{self.paths[side]} ({im.width}x{im.height}) is smaller than the {crop_size} px "
                    f"crop and will be upscaled",
                    stacklevel=2,
                )
        self.crop_size, self.batch_size = crop_size, batch_size
        self.scale_max, self.flip, self.seed = scale_max, flip, seed
        self.rank = rank  # under torchrun each process draws its own crops

    def __len__(self) -> int:  # iterations are the unit; any index is valid
        return 2**62

    def crops(self, side: str, rng: np.random.Generator) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
        """One minibatch of crops and the (x, y, w, h) boxes they came from in the zoomed image."""
        im, c = self.images[side], self.crop_size
        zoom = rng.uniform(1.0 / self.scale_max, 1.0, size=2)
        w, h = max(c, int(round(im.width * zoom[0]))), max(c, int(round(im.height * zoom[1])))
        zoomed = im.resize((w, h), Image.BILINEAR)
        nx, ny = w // c, h // c
        cells = np.concatenate([rng.permutation(nx * ny) for _ in range(-(-self.batch_size // (nx * ny)))])
        out, boxes = [], []
        for cell in cells[: self.batch_size]:
            x0 = int(rng.integers(0, w - nx * c + 1)) + (cell // ny) * c
            y0 = int(rng.integers(0, h - ny * c + 1)) + (cell % ny) * c
            crop = zoomed.crop((x0, y0, x0 + c, y0 + c))
            if self.flip and rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            out.append(to_tensor(crop))
            boxes.append((x0, y0, w, h))
        return torch.stack(out), boxes

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor | str]:
        """One minibatch for an iteration number or an (epoch, batch) key (the Trainer's)."""
        key = key if isinstance(key, tuple) else (key,)
        rng = np.random.default_rng([self.seed, *key, 2] + ([self.rank] if self.rank else []))
        return {
            "A": self.crops("A", rng)[0],
            "B": self.crops("B", rng)[0],
            "A_path": str(self.paths["A"]),
            "B_path": str(self.paths["B"]),
        }


class EpochKeySampler(Sampler):
    """(epoch, batch) keys from a start point onwards, forever: one per iteration, for datasets
    that build whole minibatches themselves (:class:`SingleImageDataset`)."""

    def __init__(self, batches_per_epoch: int, start_epoch: int = 0, start_batch: int = 0):
        self.batches_per_epoch = batches_per_epoch
        self.start = (start_epoch, start_batch)

    def __iter__(self):
        epoch, batch = self.start
        while True:
            yield epoch, batch
            batch += 1
            if batch == self.batches_per_epoch:
                epoch, batch = epoch + 1, 0

    def __len__(self) -> int:
        return self.batches_per_epoch


class EpochBatchSampler(Sampler):
    """Batches of (epoch, position) keys from a start point onwards, epoch after epoch, forever.

    The last batch of an epoch may be smaller (as with the reference's drop_last=False). With
    ``world`` processes, ``batch_size`` is per process: global batch b of the sequence is the same
    whatever the number of processes, and process r takes its r-th slice.
    """

    def __init__(
        self,
        epoch_length: int,
        batch_size: int,
        start_epoch: int = 0,
        start_batch: int = 0,
        rank: int = 0,
        world: int = 1,
    ):
        self.epoch_length = epoch_length
        self.batch_size = batch_size * world  # the global batch; each process takes its own slice
        self.local = batch_size
        self.rank, self.world = rank, world
        self.start = (start_epoch, start_batch)

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.epoch_length // self.batch_size)

    def __iter__(self):
        epoch, batch = self.start
        while True:
            lo = batch * self.batch_size
            if self.world == 1:
                yield [(epoch, p) for p in range(lo, min(lo + self.batch_size, self.epoch_length))]
            else:  # a short last batch wraps to the epoch's start, so no process gets an empty slice
                mine = range(lo + self.rank * self.local, lo + (self.rank + 1) * self.local)
                yield [(epoch, p % self.epoch_length) for p in mine]
            batch += 1
            if batch == self.batches_per_epoch:
                epoch, batch = epoch + 1, 0

    def __len__(self) -> int:  # one epoch; the sampler itself never ends
        return self.batches_per_epoch
