"""Writing outputs: folders that can be created, files replaced atomically, one clear line on failure.

Every file a command writes (checkpoints, samples, metrics, summaries, reports, splits) goes
through :func:`atomic_path` or :func:`append_line`: a write that fails part-way (disk full, quota,
permissions) leaves the previous file as it was and no temporary file behind, and raises
:class:`OutputError`, whose message names the file and says what to do.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UnpairedError


class OutputError(UnpairedError, RuntimeError):
    """An output folder or file could not be created or written; the message names it and what to do."""


def _what_to_do(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space and resume with the same command"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a folder you can write to"
    return "check the path and run the same command again"


def write_error(path: str | Path, e: OSError) -> OutputError:
    """The one-line error for a failed write of ``path``."""
    return OutputError(f"could not write {path}: {e.strerror or e}; {_what_to_do(e)}")


def make_dir(path: str | Path, what: str = "output folder", shown: str | Path | None = None) -> Path:
    """Create ``path`` (and its parents) if needed; an :class:`OutputError` naming it (or ``shown``, the
    folder the user asked for when ``path`` is a temporary stand-in) if that is impossible: a file in
    the way, a read-only or virtual file system such as /proc, no permission."""
    path = Path(path)
    name = shown if shown is not None else path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(
            f"cannot create the {what} {name}: a file of that name is in the way; choose another path"
        ) from None
    except NotADirectoryError:
        raise OutputError(
            f"cannot create the {what} {name}: a part of the path is a file, not a folder; choose another path"
        ) from None
    except OSError as e:
        raise OutputError(
            f"cannot create the {what} {name}: {e.strerror or e}; choose a folder you can write to"
        ) from None
    return path


@contextmanager
def atomic_path(path: str | Path, fsync: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (ending in ``suffix``, for writers and readers that go
    by the extension); once the block has written it, rename it over ``path``.

    On any failure the temporary file is removed and ``path`` keeps its previous content; an
    ``OSError`` becomes an :class:`OutputError`. ``fsync`` flushes the data to disk before the
    rename (checkpoints), so a power cut leaves the old file or the new one, never a torn one."""
    path = Path(path)
    make_dir(path.parent, "folder")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:  # already failing: the write's own error is the one to report
            pass


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files (``.NAME.tmp-PID``) that writers killed mid-write left in ``folder``
    (not recursive); files of processes still running are left alone. Returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # a live process may still be writing it
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):  # alive but not ours, or not a valid pid
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8, line endings as given) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def append_line(path: str | Path, line: str) -> None:
    """Append one line to ``path``. A failed append is cut back, so the file never ends in half a line."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    try:
        with open(path, "a") as f:
            f.write(line.rstrip("\n") + "\n")
    except OSError as e:
        try:
            os.truncate(path, size)
        except OSError:
            pass
        raise write_error(path, e) from None
