"""`unpaired data check`: what a dataset folder holds, and everything wrong with it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from .datasets import split_folders
from .images import (
    ImageError,
    file_sha256,
    is_image_path,
    load_image,
    scan_folder,
    why_skipped,
)


@dataclass
class FolderReport:
    name: str
    count: int = 0
    modes: Counter = field(default_factory=Counter)
    min_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None
    other_files: list[str] = field(default_factory=list)

    def add(self, size: tuple[int, int], mode: str) -> None:
        self.count += 1
        self.modes[mode] += 1
        area = size[0] * size[1]
        if self.min_size is None or area < self.min_size[0] * self.min_size[1]:
            self.min_size = size
        if self.max_size is None or area > self.max_size[0] * self.max_size[1]:
            self.max_size = size


def check_dataset(root: str | Path, show_progress: bool = True) -> dict:
    """Counts, sizes and modes per image folder, and every problem: train/val/test folders that
    training or scoring would refuse (by the same rule, :func:`unpaired.data.datasets.split_folders`),
    entries the listing rule skips (broken or looping links, links to folders, pipes, ...),
    unreadable files, identical files in different folders. ``ok`` is whether there is none."""
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root} is not a folder")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    folders = subfolders or [root]
    # what `train` refuses, and for val/test (scored when present) the same rule
    problems = split_folders(root, "train")[1]
    for split in ("val", "test"):
        if (root / f"{split}A").is_dir() or (root / f"{split}B").is_dir():
            problems += split_folders(root, split)[1]
    unreadable, by_hash = [], {}
    # each top-level folder with everything below it, by the package's one listing rule
    listings = {f: scan_folder(f) for f in folders}
    files = [(f, p) for f, listing in listings.items() for p in listing.files]
    skipped = [f"{p}: {why}" for listing in listings.values() for p, why in listing.skipped]
    if subfolders:  # entries at the top level that are neither files nor folders
        skipped = [f"{p}: {why}" for p, why in _top_level_skipped(root)] + skipped
    report_of = {f: FolderReport(f.name if f != root else ".") for f in folders}
    for folder, path in tqdm(files, desc="check", unit="file", disable=not show_progress):
        rep = report_of[folder]
        if not is_image_path(path):
            rep.other_files.append(str(path.relative_to(folder)))
            continue
        try:
            im = load_image(path, 3)  # the same decoding training uses: whatever fails here fails there
        except ImageError as e:
            unreadable.append(str(e))
            continue
        with Image.open(path) as raw:  # decodable, so this succeeds; the stored mode is what we report
            mode = raw.mode
        rep.add(im.size, mode)
        by_hash.setdefault(file_sha256(path), []).append(f"{folder.name}/{path.relative_to(folder).as_posix()}")
    reports = [report_of[f] for f in folders]
    duplicates = [paths for paths in by_hash.values() if len({p.split("/")[0] for p in paths}) > 1]
    return {
        "root": str(root),
        "folders": [
            {
                "name": r.name,
                "images": r.count,
                "modes": dict(r.modes),
                "smallest": list(r.min_size) if r.min_size else None,
                "largest": list(r.max_size) if r.max_size else None,
                "other_files": r.other_files,
            }
            for r in reports
        ],
        "empty_folders": [r.name for r in reports if r.count == 0],
        "problems": problems,
        "skipped": skipped,
        "unreadable": unreadable,
        "duplicates_across_folders": duplicates,
        "ok": not (problems or skipped or unreadable or duplicates),
    }


def _top_level_skipped(root: Path) -> list[tuple[Path, str]]:
    """Entries directly in ``root`` that are not regular files or folders (a broken trainB link, ...)."""
    return [
        (p, why_skipped(p))
        for p in sorted(root.iterdir())
        if not p.name.startswith(".") and not p.is_dir() and not p.is_file()
    ]


def format_report(rep: dict) -> str:
    """The report as text: the table, then one line per problem, then the verdict."""
    lines = [f"{'folder':12} {'images':>7}  {'smallest':>10} {'largest':>10}  modes"]
    for f in rep["folders"]:
        size = lambda s: f"{s[0]}x{s[1]}" if s else "-"  # noqa: E731
        modes = ", ".join(f"{m} {n}" for m, n in sorted(f["modes"].items())) or "(empty: no images)"
        lines.append(f"{f['name']:12} {f['images']:7d}  {size(f['smallest']):>10} {size(f['largest']):>10}  {modes}")
        if f["other_files"]:
            lines.append(
                f"{'':12} ignored non-image files: {', '.join(f['other_files'][:5])}"
                + (" ..." if len(f["other_files"]) > 5 else "")
            )
    n_skipped = len(rep["skipped"])
    sections = [
        ("problems", "folder problem(s) (train, or scoring that split, refuses such a dataset):"),
        (
            "skipped",
            f"entr{'y' if n_skipped == 1 else 'ies'} neither a readable file nor a folder (skipped by every command):",
        ),
        ("unreadable", "unreadable file(s):"),
        (
            "duplicates_across_folders",
            "file(s) appear in more than one folder (identical bytes; a test image in train inflates scores):",
        ),
    ]
    for key, header in sections:
        if rep[key]:
            lines.append(f"\n{len(rep[key])} {header}")
            lines += [f"  {' = '.join(m) if key == 'duplicates_across_folders' else m}" for m in rep[key]]
    n = sum(len(rep[key]) for key, _ in sections)
    lines.append(
        "\nok: no unreadable files, no duplicates across folders, no skipped entries, train/val/test usable"
        if rep["ok"]
        else f"\nnot ok: {n} problem(s) listed above"
    )
    return "\n".join(lines).rstrip() + "\n"
