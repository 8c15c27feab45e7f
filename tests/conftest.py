"""Shared fixtures: tiny image folders and a fast training configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Small networks keep CPU tests fast where the exact architecture is not what is tested.
TINY_NETS = [
    "--set",
    "model.ngf=8",
    "--set",
    "model.ndf=8",
    "--set",
    "model.n_blocks=2",
    "--set",
    "model.nce_layers=[0,4,8,12]",
    "--set",
    "model.projector_dim=32",
]
TINY = {
    "model.ngf": 8,
    "model.ndf": 8,
    "model.n_blocks": 2,
    "model.nce_layers": [0, 4, 8, 12],
    "model.projector_dim": 32,
}  # the same, as settings for unpaired.preset(...)


def write_images(folder: Path, n: int, size=(40, 48), mode="RGB", seed=0, ext="png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode if mode != "P" else "RGB"]
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
        im = Image.fromarray(
            arr[..., 0] if channels == 1 else arr, "L" if channels == 1 else ("RGBA" if channels == 4 else "RGB")
        )
        if mode == "P":
            im = im.convert("P")
        p = folder / f"{i:03d}.{ext}"
        im.save(p)
        paths.append(p)
    return paths


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    """trainA with 5 RGB images, trainB with 4 images of mixed modes (grayscale, RGBA, palette)."""
    root = tmp_path / "data"
    write_images(root / "trainA", 5, seed=1)
    write_images(root / "trainB", 2, mode="L", seed=2)
    b = root / "trainB"
    for i, p in enumerate(write_images(tmp_path / "tmpB", 1, mode="RGBA", seed=3)):
        p.rename(b / f"rgba{i}.png")
    for i, p in enumerate(write_images(tmp_path / "tmpP", 1, mode="P", seed=4)):
        p.rename(b / f"pal{i}.png")
    return root


def spread_generator_outputs(state_dict: dict, prefix: str, factor: float) -> str:
    """Scale the last convolution (weight and bias) of the generator whose weights sit under ``prefix``
    in ``state_dict`` by ``factor``, in place; returns its key. A freshly initialised or 1-iteration
    generator outputs nearly flat grey (std ~0.014 on [-1, 1], under 2 levels of 255): tests of
    precision or export parity on such outputs cannot tell a faithful translation from a constant one.
    Scaled by ~40 the outputs span most of the range (std ~0.5) through the same network."""
    key = [k for k, v in state_dict.items() if k.startswith(prefix) and k.endswith(".weight") and v.dim() == 4][-1]
    state_dict[key].mul_(factor)
    bias = key[: -len("weight")] + "bias"
    if bias in state_dict:
        state_dict[bias].mul_(factor)
    return key


def fake_people2outline(root, n_train=24, n_test=7, seed=0):
    """A folder laid out like people2outline (train/ and test/ of side-by-side JPEGs: a colour photo
    on the left, a black-on-white outline drawing on the right), for clones without ../shared."""
    rng = np.random.default_rng(seed)
    for split, n, first in (("train", n_train, 1), ("test", n_test, 1000)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            photo = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            photo[..., 0] = 255  # saturated colours
            outline = np.full((48, 48, 3), 255, np.uint8)
            outline[8 + i % 20, 4:44] = 0  # a black line on white
            Image.fromarray(np.concatenate([photo, outline], 1)).save(root / split / f"{first + i}.jpg", quality=95)
    return root
