"""Command line: ``unpaired <command>``. This module assembles the parser from the command modules
(each has ``add_parser(subparsers)`` and its ``cmd_*`` functions), runs one command and turns its
errors into one line: an :class:`~unpaired.errors.UnpairedError` prints its message and returns its
``exit_code``; anything else is a bug whose traceback goes to a log file."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .. import __version__
from ..errors import UnpairedError
from ..runs import RunFolder
from . import data, evaluate, experiments, profile, train, translate

# the command modules in the order of `unpaired --help` (each adds its commands)
COMMANDS = (train, translate, data, evaluate, profile, experiments)


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
    for module in COMMANDS:
        module.add_parser(sub)
    return p


def error_log_path(args: argparse.Namespace) -> Path:
    """Where the traceback of an unexpected error goes: ``error.log`` in the command's run or output
    folder when it exists, else a new file in the cache folder (``UNPAIRED_CACHE``)."""
    for name in ("out", "run_dir"):
        folder = getattr(args, name, None)
        if folder and Path(folder).is_dir():
            return RunFolder(folder).error_log
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
    """Run one command. Expected errors (:class:`~unpaired.errors.UnpairedError`) print one line
    ("error: ...") and return their ``exit_code`` (2, or 1 when some --jobs runs failed); an unexpected
    one prints one line naming it and the log file that holds its traceback, and returns 1
    (``--debug``, anywhere on the command line, or ``UNPAIRED_DEBUG=1``: the traceback instead)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("UNPAIRED_DEBUG", "") not in ("", "0")
    if debug:
        os.environ["UNPAIRED_DEBUG"] = "1"  # child processes (--jobs) too
    args = make_parser().parse_args([a for a in argv if a != "--debug"])
    try:
        return args.func(args)
    except UnpairedError as e:  # expected: its message is the whole story (one line, no traceback)
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code  # 2; 1 for JobsFailed (--jobs: some runs failed, the others completed)
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
