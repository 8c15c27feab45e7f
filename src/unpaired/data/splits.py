"""Reproducible train/val/test partitions with a manifest.

Layouts:
- ``paired``: pix2pix side-by-side images (left half = A, right half = B), in SRC itself or in
  SRC/{train,val,test}. Training stays unpaired: each train pair gives its A half to trainA *or* its
  B half to trainB (half the pairs each, seeded), unless ``keep_pairs``. Val and test keep both halves,
  under the same file name, so paired metrics remain possible.
- ``folders``: SRC/trainA, SRC/trainB (and testA/testB, valA/valB if present), a folder holding
  exactly two image folders (A, B in name order), or two folders given separately. Files are copied
  byte for byte.

A test split of the source is kept as test (a pix2pix source with val/ but no test/, like maps,
uses val/ as test). The remaining val/test images are drawn with the seed; ratios are fractions of
all images of a domain. The manifest records settings, inputs and the SHA-256 of every written
file; the same inputs and settings give byte-identical files and manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..errors import UnpairedError
from ..files import OutputError, make_dir, write_error
from .images import ImageError, file_sha256, list_images, load_image, scan_folder

MANIFEST_VERSION = 1
SPLITS = ("train", "val", "test")
LAYOUTS = ("auto", "paired", "folders")  # auto: detect_layout
DIRECTIONS = ("AtoB", "BtoA")  # AtoB: the left half / first folder is A


class SplitError(UnpairedError, RuntimeError):
    """The source or the output folder cannot be split as asked; the message says why and what to do."""


@dataclass
class Item:
    """One output file: where it comes from and how to produce its bytes."""

    split: str  # train | val | test
    domain: str  # A | B
    name: str  # output file name
    source: Path
    half: str | None  # left | right for paired sources, None for a plain copy

    def data(self) -> bytes:
        """The output file's bytes; raises ImageError if the source cannot be decoded."""
        im = load_image(self.source, 3)  # also for plain copies: a split must not pass on broken files
        if self.half is None:
            return self.source.read_bytes()
        w = im.width // 2
        box = (0, 0, w, im.height) if self.half == "left" else (w, 0, 2 * w, im.height)
        buf = io.BytesIO()
        im.crop(box).save(buf, format="PNG")
        return buf.getvalue()


# ------------------------------------------------------------------ layout detection
def _image_subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and list_images(p))


def detect_layout(sources: list[Path]) -> str:
    if len(sources) == 2:
        return "folders"
    src = sources[0]
    if (src / "trainA").is_dir() or (src / "trainB").is_dir():
        return "folders"
    # images directly in SRC (not in its subfolders, which may be the A and B folders)
    if any((src / s).is_dir() for s in SPLITS) or any(p.parent == src for p in list_images(src)):
        return "paired"
    if len(_image_subdirs(src)) == 2:
        return "folders"
    raise SplitError(
        f"cannot tell the layout of {src}: expected trainA/ and trainB/, train/ (and val/, test/) "
        f"of side-by-side pairs, side-by-side images, or exactly two folders of images; "
        f"pass --layout paired or --layout folders"
    )


def _check_side_by_side(path: Path) -> None:
    with Image.open(path) as im:
        w, h = im.size
    if w < 1.5 * h:
        raise SplitError(
            f"{path} is {w}x{h}: paired layout expects side-by-side pairs about twice as wide as "
            f"high (left = A, right = B); use --layout folders for separate A and B images"
        )


# ------------------------------------------------------------------ planning
def _draw(rng: np.random.Generator, items: list, n_val: int, n_test: int) -> tuple[list, list, list]:
    """Shuffle ``items`` and cut off val and test; the rest, in name order, is train."""
    order = [items[i] for i in rng.permutation(len(items))]
    val, test, train = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
    return sorted(train), sorted(val), sorted(test)


def _counts(total: int, val: float, test: float, have_val: bool, have_test: bool) -> tuple[int, int]:
    return (0 if have_val else int(round(val * total))), (0 if have_test else int(round(test * total)))


def plan_paired(
    src: Path, val: float, test: float, seed: int, direction: str, keep_pairs: bool
) -> tuple[list[Item], dict]:
    raw = {s: list_images(src / s) for s in SPLITS if (src / s).is_dir()} or {"train": list_images(src)}
    if not any(raw.values()):
        raise SplitError(f"{src} holds no images")
    for files in raw.values():
        if files:
            _check_side_by_side(files[0])
    # the source's test/ stays test; pix2pix sets without test/ (maps) hold out val/, so it becomes test
    test_src = "test" if "test" in raw else ("val" if "val" in raw else None)
    val_src = "val" if "val" in raw and test_src == "test" else None
    total = sum(len(v) for v in raw.values())
    n_val, n_test = _counts(total, val, test, val_src is not None, test_src is not None)
    rng = np.random.default_rng(seed)
    train, val_set, test_set = _draw(rng, raw.get("train", []), n_val, n_test)
    if val_src:
        val_set = raw[val_src]
    if test_src:
        test_set = raw[test_src]
    if len(train) < 2:
        raise SplitError(f"{src}: only {len(train)} training pair(s) left after val/test; lower --val/--test")
    if keep_pairs:
        train_a = train_b = train
    else:  # half the pairs give their A half, the other half their B half: no pair in both domains
        order = [train[i] for i in rng.permutation(len(train))]
        train_a, train_b = sorted(order[: (len(order) + 1) // 2]), sorted(order[(len(order) + 1) // 2 :])
    a_half, b_half = ("left", "right") if direction == "AtoB" else ("right", "left")
    names = _unique_names(train + val_set + test_set)
    items = []
    for split, a_files, b_files in (
        ("train", train_a, train_b),
        ("val", val_set, val_set),
        ("test", test_set, test_set),
    ):
        items += [Item(split, "A", names[p], p, a_half) for p in a_files]
        items += [Item(split, "B", names[p], p, b_half) for p in b_files]
    origin = {
        "test": f"source {test_src}/" if test_src else f"random {test:g} of all pairs",
        "val": f"source {val_src}/" if val_src else f"random {val:g} of all pairs",
    }
    return items, origin


def _unique_names(paths: list[Path]) -> dict[Path, str]:
    """Output name per source: the stem as .png, prefixed by its source folder where stems collide."""
    stems: dict[str, int] = {}
    for p in paths:
        stems[p.stem] = stems.get(p.stem, 0) + 1
    return {p: (f"{p.parent.name}_{p.stem}.png" if stems[p.stem] > 1 else f"{p.stem}.png") for p in paths}


def _flat_names(files: dict[str, list[Path]], tree: dict[tuple[str, str], Path], domain: str) -> dict[Path, str]:
    """Output names of a domain's files: the path below its source folder with '/' as '_' (the
    file name itself for flat folders). Each output folder draws from one source folder, in which
    two files that would share a name (``a_b.png`` and ``a/b.png``) are refused."""
    names: dict[Path, str] = {}
    for s, paths in files.items():
        seen: dict[str, Path] = {}
        for p in paths:
            name = "_".join(p.relative_to(tree[(s, domain)]).parts)
            if name in seen:
                raise SplitError(f"{seen[name]} and {p} would both be written as {name}; rename one of them")
            names[p], seen[name] = name, p
    return names


def plan_folders(sources: list[Path], val: float, test: float, seed: int, direction: str) -> tuple[list[Item], dict]:
    if len(sources) == 2:
        tree = {("train", "A"): sources[0], ("train", "B"): sources[1]}
    else:
        src = sources[0]
        if (src / "trainA").is_dir() or (src / "trainB").is_dir():
            tree = {(s, d): src / f"{s}{d}" for s in SPLITS for d in "AB" if (src / f"{s}{d}").is_dir()}
        else:
            subdirs = _image_subdirs(src)
            if len(subdirs) != 2:
                raise SplitError(
                    f"{src} should hold exactly two folders of images (A and B); found "
                    f"{len(subdirs)}: {', '.join(p.name for p in subdirs) or 'none'}"
                )
            tree = {("train", "A"): subdirs[0], ("train", "B"): subdirs[1]}
    if direction == "BtoA":
        tree = {(s, "B" if d == "A" else "A"): p for (s, d), p in tree.items()}
    for d in "AB":
        if ("train", d) not in tree or not list_images(tree[("train", d)]):
            missing = tree.get(("train", d), "train" + d)
            raise SplitError(f"no images for domain {d} ({missing}): both domains are needed")
    rng = np.random.default_rng(seed)
    items, origin = [], {}
    for d in "AB":
        files = {s: list_images(tree[(s, d)]) for s in SPLITS if (s, d) in tree}
        total = sum(len(v) for v in files.values())
        n_val, n_test = _counts(total, val, test, "val" in files, "test" in files)
        train, val_set, test_set = _draw(rng, files["train"], n_val, n_test)
        val_set = files.get("val", val_set)
        test_set = files.get("test", test_set)
        if not train:
            raise SplitError(f"domain {d}: no training images left after val/test; lower --val/--test")
        names = _flat_names(files, tree, d)
        for split, chosen in (("train", train), ("val", val_set), ("test", test_set)):
            items += [Item(split, d, names[p], p, None) for p in chosen]
        origin[f"test{d}"] = "source" if "test" in files else f"random {test:g}"
        origin[f"val{d}"] = "source" if "val" in files else f"random {val:g}"
    return items, origin


# ------------------------------------------------------------------ writing
def split_dataset(
    sources: list[str | Path],
    out: str | Path,
    layout: str = "auto",
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    direction: str = "AtoB",
    keep_pairs: bool = False,
    force: bool = False,
    provenance: dict[str, Any] | None = None,
    show_progress: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Write the split; returns (manifest, whether anything was written).

    ``provenance`` (e.g. the archive a download came from) is recorded in the manifest as is.
    Unreadable source images are left out and listed in the manifest's ``unreadable``."""
    sources = [Path(s).resolve() for s in sources]
    out = Path(out)
    for s in sources:
        if not s.is_dir():
            raise SplitError(f"source {s} is not a folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write the split to {out}: it is a file, not a folder; choose another --out")
    for s in sources:  # entries the listing rule skips are named once, not dropped silently
        scan_folder(s).warn_skipped("left out")
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise SplitError(f"--val and --test must be fractions in [0, 1) with a sum below 1, got {val} and {test}")
    if direction not in DIRECTIONS:
        raise SplitError(f"--direction must be AtoB or BtoA, got {direction!r}")
    layout = detect_layout(sources) if layout == "auto" else layout
    if layout == "paired":
        if len(sources) != 1:
            raise SplitError("the paired layout takes one source folder")
        items, origin = plan_paired(sources[0], val, test, seed, direction, keep_pairs)
    elif layout == "folders":
        items, origin = plan_folders(sources, val, test, seed, direction)
    else:
        raise SplitError(f"--layout must be auto, paired or folders, got {layout!r}")

    request = {
        "source": [str(s) for s in sources],
        "layout": layout,
        "seed": seed,
        "val": val,
        "test": test,
        "direction": direction,
        "keep_pairs": keep_pairs if layout == "paired" else None,
        "inputs": {
            str(p.relative_to(_common_root(sources))): file_sha256(p) for p in sorted({i.source for i in items})
        },
    }
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("request") == request and _outputs_intact(out, old):
            return old, False
        if not force:
            raise SplitError(
                f"{out} already holds a different split (see {manifest_path}); "
                f"choose another --out or pass --force to replace it"
            )
    elif out.exists() and any(out.iterdir()) and not force:
        raise SplitError(f"{out} exists and is not empty; choose another --out or pass --force")

    tmp = out.parent / f".{out.name}.split-tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    make_dir(tmp, "output folder", shown=out)
    try:
        manifest = _write_split(items, sources, tmp, out, request, origin, provenance, show_progress)
    except OSError as e:  # disk full, quota, ...: the previous split (if any) is untouched
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(e.filename or out, e) from None
    return manifest, True


def _write_split(
    items: list,
    sources: list[Path],
    tmp: Path,
    out: Path,
    request: dict[str, Any],
    origin: dict[str, Any],
    provenance: dict[str, Any] | None,
    show_progress: bool,
) -> dict[str, Any]:
    """Write every file of the split into ``tmp``, then move the folders into ``out`` (replacing an old split)."""
    files: dict[str, dict[str, str]] = {}
    unreadable: dict[str, None] = {}  # ordered set of messages
    for item in tqdm(items, desc="split", unit="img", disable=not show_progress):
        rel = f"{item.split}{item.domain}/{item.name}"
        try:
            data = item.data()
        except ImageError as e:
            unreadable[str(e)] = None
            continue
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)
        files[rel] = {
            "sha256": _sha256(data),
            "source": str(item.source.relative_to(_common_root(sources))),
            **({"half": item.half} if item.half else {}),
        }
    counts = {f"{s}{d}": sum(1 for rel in files if rel.startswith(f"{s}{d}/")) for s in SPLITS for d in "AB"}
    for name in counts:
        (tmp / name).mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": MANIFEST_VERSION,
        "request": request,
        "origin": origin,
        "counts": counts,
        "files": dict(sorted(files.items())),
        "unreadable": list(unreadable),
        **({"provenance": provenance} if provenance else {}),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    # replace the old split only once the new one is complete
    out.mkdir(parents=True, exist_ok=True)
    for name in list(counts) + ["manifest.json"]:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in counts:
        (tmp / name).rename(out / name)
    (tmp / "manifest.json").replace(out / "manifest.json")
    shutil.rmtree(tmp)
    return manifest


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _common_root(sources: list[Path]) -> Path:
    return sources[0] if len(sources) == 1 else Path(os.path.commonpath([str(s) for s in sources]))


def _outputs_intact(out: Path, manifest: dict) -> bool:
    """Every file the manifest lists still exists (hashes are verified by `unpaired data check`)."""
    return all((out / rel).is_file() for rel in manifest.get("files", {}))
