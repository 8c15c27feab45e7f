"""Checkpoint files: atomic writes, safe loading, and capture/restore of every RNG state."""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UnpairedError
from .files import atomic_path
from .runs import RunFolder

FORMAT_VERSION = 1


class CheckpointError(UnpairedError, RuntimeError):
    """A checkpoint is missing, unreadable or of an unexpected kind; the message says which."""


class _RecordingWriter:
    """A binary file that remembers the ``OSError`` of a failed write: ``torch.save`` turns it into
    an uninformative ``RuntimeError`` ("unexpected pos ...")."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash at any point leaves either the old file or the new one, never a truncated file; a
    failed write (disk full, quota) leaves the old file and raises :class:`OutputError` naming it.
    """
    with atomic_path(path, fsync=True) as tmp:
        with open(tmp, "wb") as f:
            writer = _RecordingWriter(f)
            try:
                torch.save(obj, writer)
            except RuntimeError:
                if writer.error is not None:
                    raise writer.error from None
                raise


# a run folder's checkpoints: latest.pt resumes training, best.pt has the best validation score
CHECKPOINT_NAMES = ("latest", "best")


def resolve_path(path: str | Path, which: str = "latest") -> Path:
    """A checkpoint file, or a run folder's ``checkpoints/<which>.pt``."""
    path = Path(path)
    if path.is_dir():
        candidate = RunFolder(path).checkpoint(which)
        if not candidate.is_file():
            raise CheckpointError(
                f"{path} has no {which} checkpoint ({candidate} is missing); "
                f"is it a run folder written by 'unpaired train'?"
            )
        return candidate
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


NOT_OURS = "pass a checkpoint written by unpaired train"


def _unreadable_reason(path: Path, e: Exception) -> str:
    """Why ``torch.load`` could not read a file, in a few words (torch's own messages run to many lines)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "the file is empty"
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        return "not a PyTorch checkpoint file"
    if not zipfile.is_zipfile(path):
        return "a truncated or damaged file"
    if "weights_only" in str(e) or isinstance(e, pickle.UnpicklingError):
        return "it holds pickled Python objects, not only tensors"
    lines = str(e).strip().splitlines()
    first = lines[0] if lines else type(e).__name__
    return first if len(first) <= 120 else first[:117] + "..."


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by the Trainer (tensors and plain Python only: no pickled code).

    Garbage, truncated and foreign files are a :class:`CheckpointError` of one line."""
    path = resolve_path(path)
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path} is not an unpaired checkpoint ({_unreadable_reason(path, e)}); {NOT_OURS}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_VERSION or "config" not in ckpt:
        raise CheckpointError(
            f"{path} is not an unpaired checkpoint (a PyTorch file without unpaired's format "
            f"{FORMAT_VERSION} marker); {NOT_OURS}"
        )
    return ckpt


def _shape(t: Any) -> str:
    return "x".join(map(str, t.shape)) if hasattr(t, "shape") else type(t).__name__


def state_mismatch(module: torch.nn.Module, state: dict[str, Any]) -> str | None:
    """The first keys and shapes of ``state`` that do not fit ``module`` (missing, unexpected, other
    shapes), as one phrase; None when it loads."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} is {_shape(state[k])} in the file but {_shape(own[k])} in the model"
        for k in own
        if k in state and torch.is_tensor(own[k]) and (not torch.is_tensor(state[k]) or state[k].shape != own[k].shape)
    ]

    def first(keys: list[str], n: int = 3) -> str:
        return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")

    parts = (
        ([f"missing {first(missing)}"] if missing else [])
        + ([f"unexpected {first(unexpected)}"] if unexpected else [])
        + ([first(shapes, 2)] if shapes else [])
    )
    return "; ".join(parts) if parts else None


def load_module_state(module: torch.nn.Module, state: dict[str, Any], path: str | Path, what: str) -> None:
    """``module.load_state_dict(state)``, or one :class:`CheckpointError` line naming the first keys and
    shapes that do not match (a file edited by hand, or weights of another method or width)."""
    problem = state_mismatch(module, state)
    if problem:
        raise CheckpointError(
            f"{path}: its weights do not fit {what} its configuration describes ({problem}); "
            f"the file was altered or mixed up: {NOT_OURS}"
        )
    module.load_state_dict(state)


def rng_state() -> dict[str, Any]:
    """Every global RNG state the training step may draw from."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
