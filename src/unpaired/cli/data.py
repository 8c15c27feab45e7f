"""``unpaired data split``, ``data download`` and ``data check``: preparing datasets."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ..config import ConfigError
from ..data.check import check_dataset, format_report
from ..data.download import DATASETS, fetch
from ..data.splits import DIRECTIONS, LAYOUTS, split_dataset
from . import options


def _print_split(manifest: dict, written: bool, out: str) -> None:
    counts = manifest["counts"]
    print(
        ("wrote" if written else "up to date, nothing written:")
        + f" {out}\n  "
        + "  ".join(f"{k} {v}" for k, v in counts.items())
        + "\n  origin: "
        + ", ".join(f"{k} = {v}" for k, v in manifest["origin"].items())
    )
    bad = manifest.get("unreadable", [])
    if bad:
        print(
            f"{len(bad)} unreadable source file(s) left out (listed in manifest.json):\n  " + "\n  ".join(bad),
            file=sys.stderr,
        )


def cmd_data_split(args: argparse.Namespace) -> int:
    manifest, written = split_dataset(
        args.src,
        args.out,
        args.layout,
        args.val,
        args.test,
        args.seed,
        args.direction,
        args.keep_pairs,
        args.force,
        show_progress=True,
    )
    _print_split(manifest, written, args.out)
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    if args.list:
        for name, entry in DATASETS.items():
            print(f"{name:14} {entry.description}\n{'':14} {entry.urls[0]}")
        return 0
    if not args.name or not args.out:
        raise ConfigError("give a dataset NAME and --out DIR (or --list to see the datasets)")
    out = Path(args.out)
    root, digest = fetch(args.name, out, Path(args.archive) if args.archive else None, args.sha256)
    try:
        manifest, written = split_dataset(
            [root],
            out,
            "auto",
            args.val,
            args.test,
            args.seed,
            args.direction,
            args.keep_pairs,
            args.force,
            provenance={"dataset": args.name, "archive_sha256": digest, "url": DATASETS[args.name].urls[0]},
            show_progress=True,
        )
    finally:
        shutil.rmtree(root.parent if root.parent.name.endswith(".extract") else root, ignore_errors=True)
    _print_split(manifest, written, args.out)
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    report = check_dataset(args.dir, show_progress=not args.json)
    print(json.dumps(report, indent=2) if args.json else format_report(report), end="" if not args.json else "\n")
    return 0 if report["ok"] else 1


def split_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--val", type=float, default=0.1, help="validation fraction of all images (default 0.1)")
    sp.add_argument(
        "--test",
        type=float,
        default=0.1,
        help="test fraction (default 0.1; ignored when the source has its own test split)",
    )
    sp.add_argument("--seed", type=int, default=0, help="seed of the random split (default 0)")
    sp.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="AtoB",
        help="AtoB: left half / first folder is A (default); BtoA swaps the domains",
    )
    sp.add_argument(
        "--keep-pairs",
        action="store_true",
        help="paired sources: put both halves of every train pair into trainA and trainB "
        "(default: each train pair gives only one half, so training is truly unpaired)",
    )
    sp.add_argument("--force", action="store_true", help="replace a different existing split in --out")


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data",
        help="prepare datasets: split, download, check",
        description="Prepare datasets: reproducible train/val/test splits, official downloads, checks.",
    )
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    sp = dsub.add_parser(
        "split",
        help="partition a dataset into train/val/test with a manifest",
        description="Write OUT/{trainA,trainB,valA,valB,testA,testB}/ and OUT/manifest.json. "
        "Same inputs and seed give byte-identical files.",
    )
    sp.add_argument(
        "src",
        nargs="+",
        metavar="SRC",
        help="source folder (side-by-side pairs, a trainA/trainB tree, or two image folders), or two folders A and B",
    )
    sp.add_argument("--out", required=True, metavar="DIR", help="output dataset folder")
    sp.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="paired: pix2pix side-by-side images; folders: separate A and B images (default auto)",
    )
    split_options(sp)
    sp.set_defaults(func=cmd_data_split)

    dl = dsub.add_parser(
        "download",
        help="download an official dataset, verify it and split it",
        description="Download (resumable), verify size and checksum, extract and split an "
        "official dataset. Offline, pass a file downloaded elsewhere with --archive.",
    )
    dl.add_argument("name", nargs="?", help="dataset name (see --list)")
    dl.add_argument("--out", metavar="DIR", help="output dataset folder")
    dl.add_argument("--archive", metavar="FILE", help="use this archive instead of downloading")
    dl.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the archive (overrides the official one)")
    dl.add_argument("--list", action="store_true", help="list the known datasets and their addresses")
    split_options(dl)
    dl.set_defaults(func=cmd_data_download)

    ck = dsub.add_parser(
        "check",
        help="report counts, sizes, modes and every problem train would meet: missing or "
        "empty folders, links and pipes, unreadable files, cross-split duplicates",
        description="Exit status 1, with one line per problem, when train (or scoring a "
        "val/test split) would refuse the dataset (a missing or empty trainA, trainB, ...), "
        "an entry is neither a file nor a folder (broken or looping link, link to a folder, "
        "pipe), a file is unreadable, or identical files sit in different folders.",
    )
    ck.add_argument("dir", metavar="DIR", help="dataset folder (its image subfolders are checked)")
    options.add_json(ck, help="print the report as JSON")
    ck.set_defaults(func=cmd_data_check)
