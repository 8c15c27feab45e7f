"""A few-minute CPU demo on images that ship with scikit-image: colour photos -> stone/grass textures.

Builds ``OUT/data/{trainA,trainB,testA}`` from random crops of the bundled sample images, trains
FastCUT at 64x64, translates ``testA`` and writes ``OUT/overview.png`` (input above output).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import ConfigError
from ..files import make_dir
from ..inference.folders import translate_files
from ..methods import build_config
from ..training.trainer import Trainer

PHOTOS_TRAIN = ["astronaut.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg"]
PHOTOS_TEST = ["chelsea.png", "motorcycle_right.png"]
TEXTURES = ["brick.png", "grass.png", "gravel.png"]


def sample_image_folder() -> Path:
    """scikit-image's bundled ``data`` folder, found without importing scikit-image."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the demo uses sample images shipped with scikit-image; install them with "
            "pip install 'unpaired[demo]' (or pip install scikit-image)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    missing = [n for n in PHOTOS_TRAIN + PHOTOS_TEST + TEXTURES if not (folder / n).is_file()]
    if missing:
        raise ConfigError(f"scikit-image's sample images are incomplete in {folder} (missing {', '.join(missing)})")
    return folder


def random_crops(path: Path, n: int, size: int, rng: np.random.Generator) -> list[Image.Image]:
    im = Image.open(path).convert("RGB")
    side = min(im.size)
    crops = []
    for _ in range(n):
        s = int(rng.integers(side // 3, side // 1.5))  # crops of a third to two thirds of the image
        x, y = int(rng.integers(0, im.width - s + 1)), int(rng.integers(0, im.height - s + 1))
        crops.append(im.crop((x, y, x + s, y + s)).resize((size, size), Image.BICUBIC))
    return crops


def build_demo_dataset(root: Path, seed: int = 0, size: int = 96) -> Path:
    """Write the demo's image folders (idempotent: existing folders are kept)."""
    if (root / "testA").is_dir():
        return root
    src = sample_image_folder()
    rng = np.random.default_rng(seed)
    plan = {"trainA": (PHOTOS_TRAIN, 12), "trainB": (TEXTURES, 20), "testA": (PHOTOS_TEST, 4)}
    for split, (names, per_image) in plan.items():
        tmp = root / f".{split}.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for name in names:
            for i, crop in enumerate(random_crops(src / name, per_image, size, rng)):
                crop.save(tmp / f"{Path(name).stem}_{i:02d}.png")
        tmp.rename(root / split)
    return root


def overview(inputs: list[Path], outputs: list[Path], path: Path, columns: int = 8) -> None:
    """Grid of inputs with their translations underneath."""
    ims = [(Image.open(a).convert("RGB"), Image.open(b).convert("RGB")) for a, b in zip(inputs, outputs)][: 2 * columns]
    w, h = ims[0][0].size
    rows = -(-len(ims) // columns)
    sheet = Image.new("RGB", (columns * w, rows * 2 * h), "white")
    for i, (a, b) in enumerate(ims):
        x, y = (i % columns) * w, (i // columns) * 2 * h
        sheet.paste(a, (x, y))
        sheet.paste(b.resize(a.size), (x, y + h))
    sheet.save(path)


def run_demo(out: str | Path, iters: int = 600, device: str = "auto", quiet: bool = False) -> int:
    out = make_dir(out, "demo folder")
    data = build_demo_dataset(out / "data")
    # 96 px PNGs load in microseconds: loader worker processes would only add start-up time
    cfg = build_config(
        "fastcut",
        settings=[
            (
                "demo",
                {
                    "data.root": str(data),
                    "data.crop_size": 64,
                    "data.num_workers": 0,
                    "train.iters": iters,
                    "train.device": device,
                    "train.sample_every": 100,
                    "train.save_every": 100,
                },
            )
        ],
    )
    summary = Trainer(cfg, out / "run", show_progress=not quiet).fit()
    written, _ = translate_files(
        out / "run", data / "testA", out / "translated", device=summary["device"], show_progress=not quiet
    )
    inputs = sorted((data / "testA").glob("*.png"))
    overview(inputs, [out / "translated" / p.name for p in inputs], out / "overview.png")
    sec = summary["sec_per_iter"]
    print(
        f"demo: trained FastCUT for {summary['iteration']} iterations"
        + (f" ({sec:.2f} s/iter on {summary['device']})" if sec else "")
        + "\n"
        f"  translated {len(written)} test photos -> {out / 'translated'}\n"
        f"  inputs above outputs      -> {out / 'overview.png'}\n"
        f"  training samples          -> {out / 'run' / 'samples'}\n"
        f"  curves: tensorboard --logdir {out / 'run' / 'tensorboard'}"
    )
    return 0
