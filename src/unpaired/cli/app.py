"""Command line: ``unpaired <command>``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .. import __version__
from ..checkpoint import CheckpointError
from ..config import Config, ConfigError, load_yaml
from ..data.check import check_dataset, format_report
from ..data.download import DATASETS, DownloadError, fetch
from ..data.images import ImageError
from ..data.splits import SplitError, split_dataset
from ..devices import select_device
from ..evaluate import evaluate_folders
from ..experiments.demo import run_demo
from ..experiments.experiment import run_experiment
from ..experiments.jobs import JobsFailed
from ..experiments.report import ReportError, write_report
from ..experiments.sweep import parse_params, run_sweep
from ..files import OutputError
from ..inference.artifacts import ExportError
from ..inference.evaluation import evaluate_run
from ..inference.export import export_generator
from ..inference.folders import plan_translation, translate_files
from ..inference.serve import serve
from ..inference.translator import load
from ..methods import METHODS, build_config, build_model, method_names
from ..metrics.inception import InceptionUnavailable
from ..models import param_counts
from ..training.profile import profile_training
from ..training.trainer import Trainer, TrainingDiverged

# CLI flag -> config key; flags left unset do not override the preset, file or saved run
TRAIN_FLAGS = {
    "data": "data.root",
    "size": "data.crop_size",
    "load_size": "data.load_size",
    "batch_size": "data.batch_size",
    "num_workers": "data.num_workers",
    "epochs": "train.epochs",
    "epochs_decay": "train.epochs_decay",
    "iters": "train.iters",
    "save_every": "train.save_every",
    "sample_every": "train.sample_every",
    "device": "train.device",
    "precision": "train.precision",
    "compile": "train.compile",
    "seed": "train.seed",
    "strict": "data.strict",
    "stop_on_collapse": "train.stop_on_collapse",
    "on_collapse": "train.on_collapse",
    "max_restarts": "train.max_restarts",
    "val_every": "train.val_every",
    "val_unit": "train.val_unit",
    "val_num": "train.val_num",
    "image_a": "data.image_a",
    "image_b": "data.image_b",
}


def flag_settings(args: argparse.Namespace, flags: dict[str, str]) -> list[tuple[str, dict]]:
    """The flags the user gave, as ``build_config`` settings named after the flag."""
    return [
        (f"--{flag.replace('_', '-')}", {key: getattr(args, flag)})
        for flag, key in flags.items()
        if getattr(args, flag, None) is not None
    ]


def train_config(args: argparse.Namespace) -> Config:
    """preset < config file < saved run (when neither is given) < flags < --set."""
    saved = Path(args.out) / "config.yaml" if args.out else None
    base = Config.from_dict(load_yaml(saved), strict=False) if saved is not None and saved.is_file() else None
    return build_config(
        args.model, file=args.config, base=base, settings=flag_settings(args, TRAIN_FLAGS), overrides=args.set or []
    )


def cmd_train(args: argparse.Namespace) -> int:
    cfg = train_config(args)
    if args.dry_run:
        model = build_model(cfg)
        info = {"config": cfg.to_dict(), "params": param_counts(model), "device": str(select_device(cfg.train.device))}
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print(
                f"model {cfg.model.name} on {info['device']}; parameters: "
                + ", ".join(f"{k} {v:,}" for k, v in info["params"].items())
            )
        return 0
    if not args.out:
        raise ConfigError("--out RUN_DIR is required to train (it receives checkpoints, logs and samples)")

    summary = Trainer(cfg, args.out, show_progress=not args.quiet).fit()
    if "checkpoint" not in summary:  # a torchrun process other than rank 0: rank 0 reports
        return 0
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        sec = summary["sec_per_iter"]
        print(
            f"stopped at iteration {summary['iteration']} of {summary['total_iterations']} "
            f"(epoch {summary['epoch']})"
            + (f", {sec:.3f} s/iter" if sec else "")
            + f"; checkpoint {summary['checkpoint']}"
        )
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    translator = load(
        args.checkpoint,
        args.device,
        tile=args.tile,
        overlap=args.overlap,
        precision=args.precision,
        batch_size=args.batch_size,
    )
    plan = plan_translation(args.input, args.output, "." + args.format)
    kept = len(plan.existing) if args.skip_existing else 0
    if plan.existing and not args.skip_existing:
        print(
            f"{len(plan.existing)} existing file(s) in {args.output} will be overwritten (--skip-existing keeps them)",
            file=sys.stderr,
        )
    info = translator.info
    if not args.quiet:
        trained = f", {info['iterations']:,} iterations" if info.get("iterations") is not None else ""
        print(
            f"{info['display_name']} ({info['method']}{trained}, {info['format']}) on {translator.device}, "
            f"{translator.precision}, batch size {args.batch_size}: {len(plan.inputs) - kept} image(s)"
            + (f"; {kept} already translated, kept (--skip-existing)" if kept else ""),
            file=sys.stderr,
        )
    written, errors = translate_files(
        args.checkpoint,
        args.input,
        args.output,
        ext="." + args.format,
        show_progress=not args.quiet,
        batch_size=args.batch_size,
        skip_existing=args.skip_existing,
        translator=translator,
        plan=plan,
    )
    print(f"wrote {len(written)} image(s) to {args.output}" + (f", kept {kept} existing" if kept else ""))
    if errors:
        print(f"{len(errors)} input(s) could not be translated:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    meta = export_generator(args.run, args.out, args.format, which=args.checkpoint, check=not args.no_check)
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    size = Path(args.out).stat().st_size / 2**20
    trained = f"{meta['iterations']:,} iterations, " if meta.get("iterations") is not None else ""
    print(
        f"wrote {args.out} ({args.format}, {size:.1f} MiB): {meta['display_name']} ({meta['method']}, {trained}"
        f"{meta['channels']['in']} channels, trained on {meta['train_size']} px crops)"
    )
    print(
        f"  input: (N, {meta['channels']['in']}, H, W) float32 in [-1, 1], H and W multiples of "
        f"{meta['input_multiple']} (at least {meta['minimum_size']}): pad as README > Export shows"
        + ("; optional 'origin' (y, x) of a tile, for the fixed noise" if meta["origin_input"] else "")
    )
    if "check" in meta:
        print(
            "  checked against PyTorch, max abs difference: "
            + ", ".join(f"{v:.2g} at {k}" for k, v in meta["check"].items())
        )
    return 0


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
        args.checkpoint,
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


PROFILE_FLAGS = {
    "size": "data.crop_size",
    "batch_size": "data.batch_size",
    "precision": "train.precision",
    "compile": "train.compile",
}


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def format_profile(r: dict) -> str:
    """The one-line human summary of :func:`unpaired.metrics.profile.profile_training`'s result."""
    line = (
        f"{r['model']} {r['size']}x{r['size']} batch {r['batch_size']} {r['precision']} on {r['device_name']} "
        f"({r['step']} step, {r['threads']} threads): {r['sec_per_iter']:.3f} s/iter (median of {r['iters']} "
        f"after {r['warmup']} warm-up), {r['images_per_sec']:.2f} images/s; memory {_gib(r['peak_memory_bytes'])} "
        f"steady, {_gib(r['peak_memory_oneoff_bytes'])} one-off"
    )
    if r.get("peak_memory_reserved_bytes") is not None:
        line += f", {_gib(r['peak_memory_reserved_bytes'])} reserved"
    line += f" ({'cuda allocated' if r['device'].startswith('cuda') else 'process RSS'})"
    if r.get("flops"):
        line += f"; {r['flops'] / 1e9:,.1f} GFLOP/iter, {r['tflops_per_sec']:.3g} TFLOP/s"
        if r.get("peak_fraction") is not None:
            line += (
                f" = {100 * r['peak_fraction']:.2f}% of {r['peak_tflops']:g} TFLOP/s "
                f"({r['peak_tflops_dtype']} peak, {r['peak_tflops_source']})"
            )
    return line + "; parameters " + ", ".join(f"{k} {v:,}" for k, v in r["params"].items())


def cmd_profile(args: argparse.Namespace) -> int:
    cfg = build_config(args.model, settings=flag_settings(args, PROFILE_FLAGS), overrides=args.set or [])
    r = profile_training(
        cfg, select_device(args.device), args.iters, args.warmup, peak_tflops=args.peak_tflops, flops=not args.no_flops
    )
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        for note in r["step_notes"]:
            print(note, file=sys.stderr)
        print(format_profile(r))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    try:
        files = write_report(args.run_dirs, args.out, args.gallery_limit, worst=args.worst, compare=not args.no_compare)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    print(Path(files["markdown"]).read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    files = run_experiment(
        args.config,
        args.data,
        args.out,
        args.scale,
        args.only,
        args.device,
        show_progress=not args.quiet,
        jobs=args.jobs,
        report=not args.row_process,
        seeds=args.seeds,
    )
    if args.row_process:
        return 0
    print(Path(files["markdown"]).read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    space = json.loads(args.space) if args.space else parse_params(args.param or [])
    result = run_sweep(
        args.model,
        args.data,
        args.out,
        space,
        args.sampler,
        args.trials,
        args.storage,
        args.study_name,
        args.set,
        args.metric,
        args.heartbeat,
        args.seed,
        show_progress=not args.quiet,
        jobs=args.jobs,
        worker=args.worker,
        seeds=args.seeds,
    )
    if result is not None:
        print(f"wrote {Path(args.out) / 'sweep.md'}, sweep.csv, sweep.json")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(args.out, iters=args.iters, device=args.device, quiet=args.quiet)


def cmd_serve(args: argparse.Namespace) -> int:
    return serve(args.model, host=args.host, port=args.port, device=args.device, max_upload_mb=args.max_upload_mb)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unpaired",
        description=(
            "Unpaired image-to-image translation with patchwise contrastive learning "
            "(CUT, FastCUT, SinCUT, focal PatchNCE) and a CycleGAN baseline."
        ),
    )
    p.add_argument("--version", action="version", version=f"unpaired {__version__}")
    p.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an unexpected error (accepted anywhere on the command line)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a model on two folders of unpaired images (resumes if RUN_DIR exists)",
        description="Train a translation model A->B. Running the same command again on the same "
        "--out folder resumes from its latest checkpoint exactly.",
    )
    t.add_argument(
        "--model",
        choices=method_names(),
        metavar="MODEL",
        help="method preset (reference defaults): " + "; ".join(f"{m.name}: {m.description}" for m in METHODS.values()),
    )
    t.add_argument("--data", metavar="DIR", help="dataset folder with trainA/ (source) and trainB/ (target)")
    t.add_argument("--image-a", metavar="FILE", help="sincut: the source image (instead of the one in DIR/trainA)")
    t.add_argument("--image-b", metavar="FILE", help="sincut: the target image (instead of the one in DIR/trainB)")
    t.add_argument("--out", metavar="RUN_DIR", help="run folder: checkpoints, metrics.jsonl, tensorboard/, samples/")
    t.add_argument("--config", metavar="FILE.yaml", help="YAML file with model/data/train sections")
    t.add_argument("--size", type=int, help="training crop size (default 256)")
    t.add_argument("--load-size", type=int, help="resize before cropping (default size*286/256)")
    t.add_argument("--batch-size", type=int, help="images per iteration (default 1)")
    t.add_argument("--num-workers", type=int, help="data-loading processes (default 2)")
    t.add_argument("--epochs", type=int, help="epochs at the initial learning rate (CUT 200, FastCUT 150)")
    t.add_argument("--epochs-decay", type=int, help="epochs of linear LR decay (CUT 200, FastCUT 50)")
    t.add_argument("--iters", type=int, help="stop after N iterations in total, counting those before a resume")
    t.add_argument("--save-every", type=int, help="iterations between checkpoints (default 1000)")
    t.add_argument("--sample-every", type=int, help="iterations between sample triptychs (default 500; 0 = off)")
    t.add_argument("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    t.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="autocast precision (default fp32)")
    t.add_argument(
        "--compile",
        choices=["auto", "off", "compile", "cudagraphs"],
        help="how the training step runs: off = eager; compile = networks compiled with torch.compile "
        "(first iterations compile; same results to float rounding); cudagraphs = compiled and "
        "replayed as CUDA graphs (GPU); auto (default) = the fastest exact path measured for the "
        "device (README, Speed); the log and summary.json say which ran",
    )
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.add_argument(
        "--val-every",
        type=int,
        metavar="N",
        help="score FID/KID on DIR/valA -> DIR/valB every N --val-unit and keep checkpoints/best.pt (0 = off)",
    )
    t.add_argument("--val-unit", choices=["epoch", "iter"], help="unit of --val-every (default epoch)")
    t.add_argument("--val-num", type=int, metavar="N", help="use at most N validation images (default all)")
    t.add_argument(
        "--stop-on-collapse",
        action="store_const",
        const=True,
        help="with validation: end the run with a checkpoint when its translations have collapsed "
        "(nearly constant, or far less varied than their inputs); it is always reported (= --on-collapse stop)",
    )
    t.add_argument(
        "--on-collapse",
        choices=["warn", "stop", "restart"],
        help="with validation, when the translations have collapsed: warn and go on (default), stop with a "
        "checkpoint, or restart: roll back to the last healthy validation with new random streams",
    )
    t.add_argument(
        "--max-restarts",
        type=int,
        metavar="K",
        help="--on-collapse restart: at most K restarts, then stop (default 3)",
    )
    t.add_argument(
        "--strict",
        action="store_const",
        const=True,
        help="stop at the first unreadable image, and refuse to start when the training folders hold "
        "entries that are neither files nor folders (broken or looping links, ...); default: skip "
        "them and report them once",
    )
    t.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set model.focal_gamma=3 --set lr=1e-4 (repeatable)",
    )
    t.add_argument(
        "--dry-run", action="store_true", help="resolve the configuration and count parameters; train nothing"
    )
    t.add_argument("--json", action="store_true", help="print the result as JSON")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    tr = sub.add_parser(
        "translate",
        help="translate images with a trained generator",
        description="Translate every image of a file or folder (recursively) A->B at its own size. "
        "Outputs keep the input's relative path and file stem.",
    )
    tr.add_argument(
        "--checkpoint",
        required=True,
        metavar="RUN_or_FILE",
        help="run folder, checkpoint file, or an export (.safetensors; TorchScript .pt and .onnx "
        "in fp32) written by 'unpaired export'",
    )
    tr.add_argument("--input", required=True, metavar="FILE_or_DIR", help="image file or folder")
    tr.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="output folder; existing outputs are overwritten (it says how many) unless --skip-existing",
    )
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    tr.add_argument("--format", default="png", choices=["png", "jpg", "webp"], help="output format (default png)")
    tr.add_argument(
        "--batch-size",
        type=positive_int,
        default=1,
        metavar="N",
        help="translate N same-sized images per generator call (default 1); outputs equal batch "
        "size 1's up to float rounding",
    )
    tr.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="inference precision (autocast; default fp32); fp16 needs a GPU, bf16 also runs on CPUs",
    )
    tr.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep outputs that already exist and translate only the other inputs",
    )
    tr.add_argument(
        "--tile",
        type=int,
        metavar="SIZE",
        help="translate in SIZE x SIZE tiles (a multiple of the generator's input multiple: 4, "
        "SinCUT's 2; 0 = never tile); default: tiles of 512 only for images above 1024x1024 "
        "pixels, so memory stays bounded for any image size",
    )
    tr.add_argument(
        "--overlap",
        type=int,
        default=128,
        metavar="PX",
        help="tile overlap (default 128): its outer 3/8 on each side is discarded (zero-padding effects), "
        "the middle quarter blended linearly",
    )
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=cmd_translate)

    ex_ = sub.add_parser(
        "export",
        help="write a run's generator alone: safetensors, TorchScript or ONNX",
        description="Export the A->B generator of a run (or checkpoint file) with a small JSON "
        "description (method, channels, normalisation, input multiple, train size, "
        "iterations). safetensors (default) loads with 'unpaired translate' and "
        "unpaired.load(); TorchScript and ONNX run without this package, on inputs "
        "of any height and width that are multiples of the input multiple (pad as "
        "README > Export shows). The written file is checked against PyTorch.",
    )
    ex_.add_argument("run", metavar="RUN_or_CHECKPOINT", help="run folder or checkpoint file")
    ex_.add_argument(
        "--format",
        choices=["safetensors", "torchscript", "onnx"],
        default="safetensors",
        help="safetensors (weights + description; default), torchscript (traced, .pt) or onnx "
        "(opset 17; needs pip install 'unpaired[export]')",
    )
    ex_.add_argument(
        "--out", required=True, metavar="FILE", help="file to write, e.g. cut.safetensors, cut.pt, cut.onnx"
    )
    ex_.add_argument(
        "--checkpoint",
        default="latest",
        choices=["latest", "best"],
        help="which checkpoint of a run folder (default latest)",
    )
    ex_.add_argument(
        "--no-check",
        action="store_true",
        help="skip running the written file against PyTorch on a 256x256 and a 317x211 input "
        "(<= 1e-4 max abs difference is required)",
    )
    ex_.add_argument("--json", action="store_true", help="print the description (and check) as JSON")
    ex_.set_defaults(func=cmd_export)

    data = sub.add_parser(
        "data",
        help="prepare datasets: split, download, check",
        description="Prepare datasets: reproducible train/val/test splits, official downloads, checks.",
    )
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

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
            choices=["AtoB", "BtoA"],
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
        choices=["auto", "paired", "folders"],
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
    ck.add_argument("--json", action="store_true", help="print the report as JSON")
    ck.set_defaults(func=cmd_data_check)

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
    ef.add_argument("--device", default="auto")
    ef.add_argument("--json", action="store_true")
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
    er.add_argument(
        "--checkpoint",
        default="best",
        choices=["best", "latest"],
        help="best (by validation FID; latest if the run has none) or latest",
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
    er.add_argument("--device", default="auto")
    er.add_argument("--json", action="store_true")
    er.set_defaults(func=cmd_evaluate_run)

    pr = sub.add_parser(
        "profile",
        help="seconds per training iteration, images/s, memory and FLOPs on random inputs",
        description="Median seconds per iteration after warm-up (synchronised on CUDA) and images/s; "
        "peak memory after warm-up (steady-state) and including it (one-off): CUDA max "
        "allocated (and reserved), or on the CPU the largest current RSS after each timed "
        "iteration and the process's peak RSS; FLOPs of one extra iteration "
        "(torch FlopCounterMode), achieved TFLOP/s and the fraction of the device's peak "
        "when known; parameter counts.",
    )
    pr.add_argument("--model", default="cut", choices=method_names())
    pr.add_argument("--size", type=int, help="crop size (default: the preset's, 256 for CUT)")
    pr.add_argument("--batch-size", type=int, help="images per iteration (default: the preset's, 1 for CUT)")
    pr.add_argument("--iters", type=int, default=10, help="timed iterations (default 10)")
    pr.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    pr.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="default fp32")
    pr.add_argument(
        "--compile",
        choices=["auto", "off", "compile"],
        help="how the training step runs (train.compile; default auto), as in training",
    )
    pr.add_argument(
        "--peak-tflops",
        type=float,
        metavar="X",
        help="the device's peak TFLOP/s for the fraction reached (default: a table of known GPUs)",
    )
    pr.add_argument("--no-flops", action="store_true", help="skip the extra FLOP-counted iteration")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_profile)

    rp = sub.add_parser(
        "report",
        help="table (Markdown, CSV), curves and an HTML gallery of runs",
        description="Thesis-style table (method, test FID/KID with intervals, paired metrics, "
        "sec/iter, memory, best epoch, collapse), paired comparisons of rows that differ "
        "only in loss settings, loss / validation-FID / PatchNCE-positive plots, and a "
        "self-contained HTML gallery of test triptychs and the worst translations. "
        "Folders named seed<k> under one parent form one row (mean ± std over seeds).",
    )
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    rp.add_argument("--out", required=True, metavar="DIR")
    rp.add_argument("--gallery-limit", type=int, default=24, help="triptychs per run in the gallery (default 24)")
    rp.add_argument(
        "--worst",
        type=int,
        default=8,
        metavar="N",
        help="worst test translations shown per row, ranked by paired L1 or feature distance (default 8)",
    )
    rp.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the paired comparisons of rows (they need each run's eval/test_features.npy)",
    )
    rp.set_defaults(func=cmd_report)

    ex = sub.add_parser(
        "experiment",
        help="train, evaluate and tabulate every row of an experiment file",
        description="Train every row of CONFIG (resuming interrupted rows, skipping finished ones), "
        "score each on the test split with its best-by-validation checkpoint, and write "
        "OUT/report (table, plots, gallery). One seed cannot carry a comparison: use "
        "--seeds (or seeds: in the file) for one run per row and seed. See "
        "configs/thesis_table51.yaml.",
    )
    ex.add_argument("config", metavar="CONFIG", help="experiment YAML with rows:, scales: and optionally seeds:")
    ex.add_argument(
        "--data", required=True, metavar="DIR", help="dataset with train/val/test splits (unpaired data split)"
    )
    ex.add_argument("--out", required=True, metavar="DIR", help="one run folder per row, and report/")
    ex.add_argument("--scale", default="full", help="a scale defined in CONFIG (thesis_table51: full, small)")
    ex.add_argument("--only", nargs="+", metavar="ROW", help="run only these rows")
    ex.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="K",
        help="train every row once per seed (train.seed = K) into OUT/<row>/seed<K>/ (default: the "
        "file's seeds:, else one run per row in OUT/<row>/ with the configured seed); "
        "finished runs are skipped, so adding a seed later trains only the new runs",
    )
    ex.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    ex.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run up to N rows (with --seeds: row x seed runs) at once, one process per run logging "
        "to its run folder's experiment.log (default 1: one after the other in this process); with "
        "--device cuda/auto and several GPUs the runs are spread over them, and each process gets "
        "CPUs/N threads",
    )
    ex.add_argument("--quiet", action="store_true", help="no progress bars")
    ex.add_argument("--row-process", action="store_true", help=argparse.SUPPRESS)  # one row of a --jobs run: no report
    ex.set_defaults(func=cmd_experiment)

    sw = sub.add_parser(
        "sweep",
        help="hyperparameter search on the validation split (Optuna)",
        description="Minimise validation FID (or KID) over a grid or with TPE, pruning trials whose "
        "intermediate validation trails the median. Resumable: run the same command again "
        "(or on several machines with a shared --storage URL). The best trial is scored "
        "on the test split; OUT/sweep.md, .csv and .json list every trial.",
    )
    sw.add_argument("--model", required=True, choices=method_names())
    sw.add_argument("--data", required=True, metavar="DIR", help="dataset with train/val/test splits")
    sw.add_argument(
        "--out", default="runs/sweep", metavar="DIR", help="trial run folders and tables (default runs/sweep)"
    )
    sw.add_argument(
        "--param",
        action="append",
        metavar="KEY=V1,V2,...",
        help="a searched setting and its values, e.g. --param focal_gamma=0,1,2,3 (repeatable; at least one)",
    )
    sw.add_argument("--sampler", choices=["grid", "tpe"], default="grid")
    sw.add_argument("--trials", type=int, help="finished trials to reach (default: the grid size; 10 for tpe)")
    sw.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage (default sqlite:///OUT/sweep.db); e.g. postgresql://user:pw@host/db",
    )
    sw.add_argument("--study-name", help="default: MODEL-PARAMS")
    sw.add_argument("--metric", choices=["fid", "kid"], default="fid")
    sw.add_argument(
        "--heartbeat",
        type=int,
        default=60,
        metavar="SECONDS",
        help="worker heartbeat; a trial silent for twice this is failed and retried (default 60)",
    )
    sw.add_argument("--seed", type=int, default=0, help="sampler seed")
    sw.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="K",
        help="training seeds: every trial trains once per seed (train.seed = K) into "
        "OUT/trials/<params>/seed<K>/; its value is the mean over seeds of the best validation "
        "score, the pruner sees the first seed's validation scores, and the best trial's test score "
        "is the mean over its seeds (default: one run per trial, the configured train.seed)",
    )
    sw.add_argument("--set", action="append", metavar="KEY=VALUE", help="fixed overrides for every trial")
    sw.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="run N trials at once: this process and N-1 worker processes on the same study, logging "
        "to OUT/workers/ (default 1); with train.device cuda/auto and several GPUs the workers are "
        "spread over them, and each process gets CPUs/N threads",
    )
    sw.add_argument("--quiet", action="store_true", help="no progress bars")
    # a worker process of a --jobs run: the search space as JSON, and its index (it only runs trials)
    sw.add_argument("--space", help=argparse.SUPPRESS)
    sw.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    sw.set_defaults(func=cmd_sweep)

    sv = sub.add_parser(
        "serve",
        help="a local web page that translates images dropped on it (and an HTTP API)",
        description="Serve a page where images or folders dropped in a browser are translated A->B "
        "and shown next to their inputs, with downloads of each and a zip of all. "
        "Everything stays on this computer: the page loads nothing from the internet. "
        "API: POST an image to /api/translate (curl -F image=@photo.jpg URL/api/translate "
        "-o out.png). Ctrl-C stops the server.",
    )
    sv.add_argument("model", metavar="RUN_DIR_or_FILE", help="run folder, checkpoint file or exported generator")
    sv.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 = every network)",
    )
    sv.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 = any free port)")
    sv.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    sv.add_argument(
        "--max-upload-mb", type=float, default=100, metavar="MB", help="refuse files larger than this (default 100)"
    )
    sv.set_defaults(func=cmd_serve)

    d = sub.add_parser(
        "demo",
        help="train FastCUT briefly on built-in images and translate a test set",
        description="A few-minute CPU demo on images shipped with scikit-image "
        "(pip install 'unpaired[demo]'): colour photos -> stone/grass textures.",
    )
    d.add_argument("--out", default="runs/demo", help="demo folder (default runs/demo)")
    d.add_argument("--iters", type=int, default=600, help="training iterations (default 600, ~4 min on 2 CPU cores)")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_demo)
    return p


# expected failures: their message is the whole story (one line, no traceback)
USER_ERRORS = (
    ConfigError,
    ImageError,
    CheckpointError,
    SplitError,
    DownloadError,
    InceptionUnavailable,
    OutputError,
    TrainingDiverged,
    ReportError,
    ExportError,
)


def error_log_path(args: argparse.Namespace) -> Path:
    """Where the traceback of an unexpected error goes: ``error.log`` in the command's run or output
    folder when it exists, else a new file in the cache folder (``UNPAIRED_CACHE``)."""
    for name in ("out", "run_dir"):
        folder = getattr(args, name, None)
        if folder and Path(folder).is_dir():
            return Path(folder) / "error.log"
    cache = Path(os.environ.get("UNPAIRED_CACHE", Path.home() / ".cache" / "unpaired"))
    return cache / "errors" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


def write_error_log(args: argparse.Namespace, argv: list[str]) -> str:
    """Append the current exception's traceback to :func:`error_log_path` (or a temporary file);
    returns where it went, or why it could not be written."""
    text = (
        f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} unpaired {__version__}, Python {platform.python_version()}\n"
        f"command: unpaired {' '.join(argv)}\n{traceback.format_exc()}"
    )
    fallback = Path(tempfile.gettempdir()) / f"unpaired-error-{os.getpid()}.log"
    for path in (error_log_path(args), fallback):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.write(text)
            return str(path)
        except OSError as e:
            reason = e.strerror or str(e)
    return f"nowhere: no log could be written ({reason})"


def main(argv: list[str] | None = None) -> int:
    """Run one command. Expected errors print one line ("error: ...") and return 2; an unexpected
    one prints one line naming it and the log file that holds its traceback, and returns 1
    (``--debug``, anywhere on the command line, or ``UNPAIRED_DEBUG=1``: the traceback instead)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("UNPAIRED_DEBUG", "") not in ("", "0")
    if debug:
        os.environ["UNPAIRED_DEBUG"] = "1"  # child processes (--jobs) too
    args = make_parser().parse_args([a for a in argv if a != "--debug"])
    try:
        return args.func(args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except JobsFailed as e:  # --jobs: some child processes failed (the others completed)
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print("interrupted" + (f": {e}" if str(e) else ""), file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            raise
        lines = str(e).strip().splitlines()
        message = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
        if len(message) > 300:
            message = message[:297] + "..."
        print(
            f"unpaired: error: {message} (full traceback in {write_error_log(args, argv)}; "
            f"rerun with --debug to see it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
