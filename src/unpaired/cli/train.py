"""``unpaired train``."""

from __future__ import annotations

import argparse
import json

from ..config import ON_COLLAPSE, VAL_UNITS, Config, ConfigError, load_yaml
from ..devices import select_device
from ..methods import build_config, build_model
from ..models import param_counts
from ..runs import RunFolder
from ..training.trainer import Trainer
from . import options
from .options import flag_settings

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


def train_config(args: argparse.Namespace) -> Config:
    """preset < config file < saved run (when neither is given) < flags < --set; with --init-from,
    the architecture of the official files (a flag or --set contradicting it is an error)."""
    saved = RunFolder(args.out).config if args.out else None
    base = Config.from_dict(load_yaml(saved), strict=False) if saved is not None and saved.is_file() else None
    return build_config(
        args.model,
        file=args.config,
        base=base,
        settings=flag_settings(args, TRAIN_FLAGS),
        overrides=args.set or [],
        init_from=args.init_from,
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

    summary = Trainer(cfg, args.out, show_progress=not args.quiet, init_from=args.init_from).fit()
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train",
        help="train a model on two folders of unpaired images (resumes if RUN_DIR exists)",
        description="Train a translation model A->B. Running the same command again on the same "
        "--out folder resumes from its latest checkpoint exactly.",
    )
    options.add_model(t, metavar="MODEL", help="method preset (reference defaults): " + options.model_presets())
    t.add_argument("--data", metavar="DIR", help="dataset folder with trainA/ (source) and trainB/ (target)")
    t.add_argument("--image-a", metavar="FILE", help="sincut: the source image (instead of the one in DIR/trainA)")
    t.add_argument("--image-b", metavar="FILE", help="sincut: the target image (instead of the one in DIR/trainB)")
    t.add_argument("--out", metavar="RUN_DIR", help="run folder: checkpoints, metrics.jsonl, tensorboard/, samples/")
    t.add_argument("--config", metavar="FILE.yaml", help="YAML file with model/data/train sections")
    t.add_argument(
        "--init-from",
        metavar="DIR_OR_FILE",
        help="start from the networks of the official CUT/FastCUT/SinCUT/CycleGAN code: a folder with "
        "latest_net_G.pth (or G_A), or one <epoch>_net_G.pth; D and F (D_A, D_B, G_B) beside it are used too; "
        "architecture from the files, fresh optimizers; --model defaults to the method of its train_opt.txt. "
        "Applied when the run starts, never on resume",
    )
    t.add_argument("--size", type=int, help="training crop size (default 256)")
    t.add_argument("--load-size", type=int, help="resize before cropping (default size*286/256)")
    t.add_argument("--batch-size", type=int, help="images per iteration (default 1)")
    t.add_argument("--num-workers", type=int, help="data-loading processes (default 2)")
    t.add_argument("--epochs", type=int, help="epochs at the initial learning rate (CUT 200, FastCUT 150)")
    t.add_argument("--epochs-decay", type=int, help="epochs of linear LR decay (CUT 200, FastCUT 50)")
    t.add_argument("--iters", type=int, help="stop after N iterations in total, counting those before a resume")
    t.add_argument("--save-every", type=int, help="iterations between checkpoints (default 1000)")
    t.add_argument("--sample-every", type=int, help="iterations between sample triptychs (default 500; 0 = off)")
    options.add_device(t, default=None, note="default: train.device of the configuration or saved run, auto")
    options.add_precision(t, help="autocast precision (default fp32)")
    options.add_step_mode(
        t,
        help="how the training step runs: off = eager; compile = networks compiled with torch.compile "
        "(first iterations compile; same results to float rounding); cudagraphs = compiled and "
        "replayed as CUDA graphs (GPU); auto (default) = the fastest exact path measured for the "
        "device (docs/measured/speed.md); the log and summary.json say which ran",
    )
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.add_argument(
        "--val-every",
        type=int,
        metavar="N",
        help="score FID/KID on DIR/valA -> DIR/valB every N --val-unit and keep checkpoints/best.pt (0 = off)",
    )
    t.add_argument("--val-unit", choices=VAL_UNITS, help="unit of --val-every (default epoch)")
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
        choices=ON_COLLAPSE,
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
    options.add_set(t, help="override any setting, e.g. --set model.focal_gamma=3 --set lr=1e-4 (repeatable)")
    t.add_argument(
        "--dry-run", action="store_true", help="resolve the configuration and count parameters; train nothing"
    )
    options.add_json(t)
    options.add_quiet(t)
    t.set_defaults(func=cmd_train)
