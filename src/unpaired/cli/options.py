"""Options that several commands share, declared once. Their choices come from the code that checks
them (precisions from :data:`unpaired.amp.DTYPES`, step modes from :data:`unpaired.config.STEP_MODES`,
devices from :data:`unpaired.devices.DEVICES`, methods from the registry), so a new choice there is
a new choice here.

A trained model is named the same way by every command that reads one (``translate``, ``export``,
``serve``, ``evaluate run``): a positional RUN_or_FILE (``evaluate run``: RUN_DIR) and ``--which
latest|best`` for the checkpoint of a run folder. The spellings before 0.3 (``translate --checkpoint
PATH``; ``export``/``evaluate run`` ``--checkpoint latest|best``) still work and print a note."""

from __future__ import annotations

import argparse
import sys

from ..amp import DTYPES
from ..checkpoint import CHECKPOINT_NAMES
from ..config import STEP_MODES, ConfigError
from ..devices import DEVICES
from ..methods import METHODS, method_names

PRECISIONS = tuple(DTYPES)
DEVICE_HELP = f"{DEVICES[0]} (cuda, then mps, then cpu), " + ", ".join(DEVICES[1:-1]) + f" or {DEVICES[-1]}"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def flag_settings(args: argparse.Namespace, flags: dict[str, str]) -> list[tuple[str, dict]]:
    """The flags the user gave, as ``build_config`` settings named after the flag."""
    return [
        (f"--{flag.replace('_', '-')}", {key: getattr(args, flag)})
        for flag, key in flags.items()
        if getattr(args, flag, None) is not None
    ]


class Deprecated(argparse.Action):
    """An old spelling that still works: it stores into the new option's ``dest`` and prints a note
    saying what to write instead (``instead``, with ``{value}`` for the value given)."""

    def __init__(self, option_strings, dest, instead: str, **kwargs):
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)
        self.instead = instead

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"note: '{parser.prog} {option_string}' is deprecated; {self.instead.format(value=values)}", file=sys.stderr
        )
        setattr(namespace, self.dest, values)


def add_model(p: argparse.ArgumentParser, **kwargs) -> None:
    """--model: a registered method."""
    p.add_argument("--model", choices=method_names(), **kwargs)


def model_presets() -> str:
    """Each registered method and its description, for --help."""
    return "; ".join(f"{m.name}: {m.description}" for m in METHODS.values())


def add_device(p: argparse.ArgumentParser, default: str | None = "auto", note: str | None = None) -> None:
    """--device; ``default`` None leaves it to the configuration (train.device)."""
    p.add_argument("--device", default=default, help=f"{DEVICE_HELP} ({note or f'default {default}'})")


def add_precision(p: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    p.add_argument("--precision", choices=PRECISIONS, default=default, help=help)


def add_step_mode(p: argparse.ArgumentParser, help: str) -> None:
    """--compile: how the training step runs (train.compile)."""
    p.add_argument("--compile", choices=STEP_MODES, help=help)


def add_set(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=help)


def add_json(p: argparse.ArgumentParser, help: str = "print the result as JSON") -> None:
    p.add_argument("--json", action="store_true", help=help)


def add_quiet(p: argparse.ArgumentParser, help: str = "no progress bar") -> None:
    p.add_argument("--quiet", action="store_true", help=help)


def add_which(p: argparse.ArgumentParser, default: str, help: str) -> None:
    """--which latest|best: the checkpoint of a run folder (a file is itself), and --checkpoint
    latest|best, its spelling before 0.3, with a note."""
    p.add_argument("--which", choices=CHECKPOINT_NAMES, default=default, help=help + "; --checkpoint before 0.3")
    p.add_argument(
        "--checkpoint",
        dest="which",
        action=Deprecated,
        choices=CHECKPOINT_NAMES,
        instead="write --which {value}",
        help=argparse.SUPPRESS,
    )


def add_run_or_file(p: argparse.ArgumentParser, help: str, which_help: str, old_flag: bool = False) -> None:
    """A positional RUN_or_FILE (``args.model``) with --which latest (the default) or best. With
    ``old_flag``, also ``--checkpoint RUN_or_FILE``, ``translate``'s spelling before 0.3, with a
    note; the positional is then optional to argparse, so that the old spelling can fill it, and
    :func:`run_or_file` requires one of them."""
    if not old_flag:
        p.add_argument("model", metavar="RUN_or_FILE", help=help)
    else:
        p.add_argument(
            "model",
            nargs="?",
            default=argparse.SUPPRESS,
            metavar="RUN_or_FILE",
            help=help + " (required; --checkpoint RUN_or_FILE before 0.3)",
        )
        p.add_argument(
            "--checkpoint",
            dest="model",
            action=Deprecated,
            metavar="RUN_or_FILE",
            instead="give {value} first, as RUN_or_FILE",
            help=argparse.SUPPRESS,
        )
    p.add_argument("--which", choices=CHECKPOINT_NAMES, default="latest", help=which_help)


def run_or_file(args: argparse.Namespace) -> str:
    """The RUN_or_FILE of a command declared with :func:`add_run_or_file`."""
    model = getattr(args, "model", None)
    if model is None:
        raise ConfigError(
            f"give the model as RUN_or_FILE: a run folder, checkpoint file or export (unpaired {args.command} "
            f"RUN_or_FILE ...)"
        )
    return model
