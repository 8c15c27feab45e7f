"""``unpaired translate``, ``export`` and ``serve``: using a trained generator."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..inference.export import FORMATS, export_generator
from ..inference.folders import plan_translation, translate_files
from ..inference.serve import serve
from ..inference.translator import TRANSLATE_MODES, load
from . import options
from .options import positive_int, run_or_file


def cmd_translate(args: argparse.Namespace) -> int:
    model = run_or_file(args)
    translator = load(
        model,
        args.device,
        checkpoint=args.which,
        tile=args.tile,
        overlap=args.overlap,
        precision=args.precision,
        batch_size=args.batch_size,
        compile=args.compile,
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
            + (f"; {kept} already translated, kept (--skip-existing)" if kept else "")
            + (
                f"; generator compiled ({translator.compile_reason}; each new image size compiles first)"
                if translator.compile == "compile"
                else f"; generator eager ({translator.compile_reason})"
            ),
            file=sys.stderr,
        )
    written, errors = translate_files(
        model,
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
    meta = export_generator(args.run, args.out, args.format, which=args.which, check=not args.no_check)
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
        f"{meta['input_multiple']} (at least {meta['minimum_size']}): pad as docs/guides/inference.md#export shows"
        + ("; optional 'origin' (y, x) of a tile, for the fixed noise" if meta["origin_input"] else "")
    )
    if "check" in meta:
        print(
            "  checked against PyTorch, max abs difference: "
            + ", ".join(f"{v:.2g} at {k}" for k, v in meta["check"].items())
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    return serve(
        args.model,
        host=args.host,
        port=args.port,
        device=args.device,
        max_upload_mb=args.max_upload_mb,
        which=args.which,
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser(
        "translate",
        help="translate images with a trained generator",
        description="Translate every image of a file or folder (recursively) A->B at its own size. "
        "Outputs keep the input's relative path and file stem.",
    )
    options.add_run_or_file(
        tr,
        help="run folder, checkpoint file, or an export (.safetensors; TorchScript .pt and .onnx "
        "in fp32) written by 'unpaired export'",
        which_help="which checkpoint of a run folder: latest (default) or best (by validation)",
        old_flag=True,
    )
    tr.add_argument("--input", required=True, metavar="FILE_or_DIR", help="image file or folder")
    tr.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="output folder; existing outputs are overwritten (it says how many) unless --skip-existing",
    )
    options.add_device(tr)
    tr.add_argument("--format", default="png", choices=["png", "jpg", "webp"], help="output format (default png)")
    tr.add_argument(
        "--batch-size",
        type=positive_int,
        default=1,
        metavar="N",
        help="translate N same-sized images per generator call (default 1); outputs equal batch "
        "size 1's up to float rounding",
    )
    options.add_precision(
        tr,
        default="fp32",
        help="inference precision (autocast; default fp32); fp16 needs a GPU, bf16 also runs on CPUs",
    )
    tr.add_argument(
        "--compile",
        choices=TRANSLATE_MODES,
        default="auto",
        help="run the generator through torch.compile: compile (the first batch of each image size "
        "compiles, seconds to minutes), off, or auto (default: off until a measurement shows it "
        "faster on the device; the first line says which and why). Runs and .safetensors only",
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
    options.add_quiet(tr)
    tr.set_defaults(func=cmd_translate)

    ex = sub.add_parser(
        "export",
        help="write a run's generator alone: safetensors, TorchScript or ONNX",
        description="Export the A->B generator of a run (or checkpoint file) with a small JSON "
        "description (method, channels, normalisation, input multiple, train size, "
        "iterations). safetensors (default) loads with 'unpaired translate' and "
        "unpaired.load(); TorchScript and ONNX run without this package, on inputs "
        "of any height and width that are multiples of the input multiple (pad as "
        "docs/guides/inference.md#export shows). The written file is checked against PyTorch.",
    )
    ex.add_argument("run", metavar="RUN_or_FILE", help="run folder or checkpoint file")
    ex.add_argument(
        "--format",
        choices=list(FORMATS),
        default="safetensors",
        help="safetensors (weights + description; default), torchscript (traced, .pt) or onnx "
        "(opset 17; needs pip install 'unpaired[export]')",
    )
    ex.add_argument(
        "--out", required=True, metavar="FILE", help="file to write, e.g. cut.safetensors, cut.pt, cut.onnx"
    )
    options.add_which(ex, default="latest", help="which checkpoint of a run folder: latest (default) or best")
    ex.add_argument(
        "--no-check",
        action="store_true",
        help="skip running the written file against PyTorch on a 256x256 and a 317x211 input "
        "(<= 1e-4 max abs difference is required)",
    )
    options.add_json(ex, help="print the description (and check) as JSON")
    ex.set_defaults(func=cmd_export)

    sv = sub.add_parser(
        "serve",
        help="a local web page that translates images dropped on it (and an HTTP API)",
        description="Serve a page where images or folders dropped in a browser are translated A->B "
        "and shown next to their inputs, with downloads of each and a zip of all. "
        "Everything stays on this computer: the page loads nothing from the internet. "
        "API: POST an image to /api/translate (curl -F image=@photo.jpg URL/api/translate "
        "-o out.png). Ctrl-C stops the server.",
    )
    options.add_run_or_file(
        sv,
        help="run folder, checkpoint file or exported generator",
        which_help="which checkpoint of a run folder: latest (default) or best (by validation)",
    )
    sv.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 = every network)",
    )
    sv.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 = any free port)")
    options.add_device(sv)
    sv.add_argument(
        "--max-upload-mb", type=float, default=100, metavar="MB", help="refuse files larger than this (default 100)"
    )
    sv.set_defaults(func=cmd_serve)
