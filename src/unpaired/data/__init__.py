"""Image loading and datasets."""

from .datasets import (
    EpochBatchSampler,
    EpochKeySampler,
    SingleImageDataset,
    UnalignedDataset,
)
from .images import ImageError, list_images, load_image, save_image, to_image, to_tensor

__all__ = [
    "UnalignedDataset",
    "SingleImageDataset",
    "EpochBatchSampler",
    "EpochKeySampler",
    "ImageError",
    "list_images",
    "load_image",
    "save_image",
    "to_image",
    "to_tensor",
]
