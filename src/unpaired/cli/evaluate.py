"""``unpaired evaluate fid`` and ``evaluate run``: FID/KID of folders or of a trained run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..devices import select_device
from ..evaluate import evaluate_folders
from ..inference.evaluation import evaluate_run
from . import options


def _print_scores(result: dict, as_json: bool, kid: bool = True) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    line = f"FID {result['fid']:.3f}"
    if kid:
        line += f"   KID {result['kid']:.5f} ± {result['kid_std']:.5f}"
    print(line + f"   ({result['n_fake']} generated vs {result['n_real']} real images)")
    extra = format_intervals(result)
    if extra:
        print(extra)


def format_intervals(result: dict) -> str:
    """The human line of a result's bootstrap intervals and paired metrics ("" when it has neither)."""
    parts = []
    if "fid_ci" in result:
        c = result["fid_ci"]
        text = (
            f"{c['level']:.0%} bootstrap over images ({c['n_boot']} resamples): FID [{c['low']:.2f}, {c['high']:.2f}]"
        )
        if "kid_ci" in result:
            k = result["kid_ci"]
            text += f"   KID [{k['low']:.5f}, {k['high']:.5f}]"
        parts.append(text)
    if "paired" in result:
        p = result["paired"]
        parts.append(
            f"paired ({p['n_pairs']} pairs): L1 {p['l1']:.4f}   PSNR {p['psnr']:.2f} dB   SSIM {p['ssim']:.4f}"
            f"   pixel accuracy {p['pixel_acc']:.4f} (tolerance {p['tolerance']}/255)"
        )
    return "\n".join(parts)


def cmd_evaluate_fid(args: argparse.Namespace) -> int:
    result = evaluate_folders(
        args.real,
        args.fake,
        kid=args.kid,
        device=str(select_device(args.device)),
        size=args.size,
        show_progress=not args.json,
        ci=not args.no_ci,
    )
    _print_scores(result, args.json, args.kid)
    return 0


def cmd_evaluate_run(args: argparse.Namespace) -> int:
    result = evaluate_run(
        args.run_dir,
        args.data,
        args.split,
        args.num,
        args.which,
        str(select_device(args.device)),
        args.size,
        show_progress=not args.json,
        ci=not args.no_ci,
        pixel_tolerance=args.pixel_tolerance,
    )
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "inputs"}, indent=2))
    else:
        print(
            f"{args.split} split, {result['checkpoint']} (iteration {result['iteration']}, epoch {result['epoch']}), "
            f"{result['size']}x{result['size']}:"
        )
        _print_scores(result, False)
        print(
            f"translations in {Path(args.run_dir) / 'eval' / args.split}/, scores in "
            f"{Path(args.run_dir) / 'eval' / (args.split + '.json')} ({result['seconds']:.1f} s)"
        )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="FID/KID of folders or of a trained run (offline Inception)",
        description="FID and KID with the standard TF-Inception features, pytorch-fid protocol, "
        "computed offline. Real-image features are cached by folder content.",
    )
    esub = ev.add_subparsers(dest="evaluate_command", required=True, metavar="EVALUATE_COMMAND")
    ef = esub.add_parser("fid", help="FID (and KID) between two folders of images")
    ef.add_argument("real", metavar="REAL_DIR")
    ef.add_argument("fake", metavar="FAKE_DIR")
    ef.add_argument("--kid", action="store_true", help="also print KID (mean ± std over subsets)")
    ef.add_argument("--size", type=int, help="resize both sides to SIZE x SIZE first (default: as they are)")
    ef.add_argument(
        "--no-ci",
        action="store_true",
        help="skip the bootstrap intervals (seconds for test sets of a few hundred images, more above)",
    )
    options.add_device(ef)
    options.add_json(ef)
    ef.set_defaults(func=cmd_evaluate_fid)
    er = esub.add_parser(
        "run",
        help="translate a split's A images with a run's generator and score them",
        description="Translate DIR/<split>A with the run's generator and score against DIR/<split>B: "
        "FID, KID, their bootstrap intervals over the test images and, when the split "
        "keeps pairs (same file names in <split>A and <split>B), L1/PSNR/SSIM/pixel "
        "accuracy against the paired targets. Both sides are resized to the training crop "
        "size unless --size is given. Writes RUN_DIR/eval/<split>/ (translations), "
        "RUN_DIR/eval/<split>_features.npy (their Inception features) and "
        "RUN_DIR/eval/<split>.json.",
    )
    er.add_argument("run_dir", metavar="RUN_DIR")
    er.add_argument("--data", required=True, metavar="DIR", help="dataset folder with <split>A/ and <split>B/")
    er.add_argument("--split", default="test", choices=["val", "test"], help="default test")
    er.add_argument("--num", type=int, help="at most N images per side (default all)")
    options.add_which(
        er, default="best", help="best (by validation FID; latest if the run has none; default) or latest"
    )
    er.add_argument("--size", type=int, help="evaluation resolution (default: the run's crop size)")
    er.add_argument("--no-ci", action="store_true", help="skip the bootstrap intervals of FID and KID")
    er.add_argument(
        "--pixel-tolerance",
        type=int,
        default=10,
        metavar="LEVELS",
        help="paired pixel accuracy: a pixel is right when every RGB channel is within LEVELS/255 "
        "of the target (default 10; meant for label-map targets)",
    )
    options.add_device(er)
    options.add_json(er)
    er.set_defaults(func=cmd_evaluate_run)
