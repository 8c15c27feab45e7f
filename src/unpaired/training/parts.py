"""What a training run is made of: the model, its optimizers, their LR schedules and the step object.

:func:`build_parts` is the one place they are put together, for the Trainer and for ``profile``;
:func:`resumable_state` is the checkpoint a run folder resumes from, :meth:`Parts.load_state_dict`
puts it back."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import checkpoint as ckpt_io
from ..amp import Precision
from ..config import RUNTIME_FIELDS, Config, ConfigError, diff
from ..devices import settle_vector_math
from ..methods import build_model
from ..runs import RunFolder
from .logging import note
from .step import TrainStep, build_step

RESUMABLE = ("model", "optimizers", "schedulers", "scaler", "progress", "rng")  # what latest.pt must hold


def seed_everything(seed: int) -> None:
    settle_vector_math()  # before anything random or parallel happens in this process
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def linear_decay(n_epochs: int, n_epochs_decay: int):
    """The reference's 'linear' policy: 1 for n_epochs epochs, then linearly to 0 over the decay."""
    return lambda epoch: 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


@dataclass
class Parts:
    model: torch.nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]  # stepped once per epoch
    step: TrainStep  # called once per iteration: eager or compiled

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint entries of these parts: model, optimizers, schedulers, scaler."""
        return {
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.step.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], path: Path, what: str) -> None:
        """Restore from checkpoint ``state`` (read from ``path``); a :class:`CheckpointError` naming
        the file when its entries do not fit (``what``: the model, in the message)."""
        ckpt_io.load_module_state(self.model, state["model"], path, what)
        try:
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            for k, s in self.schedulers.items():
                s.load_state_dict(state["schedulers"][k])
            self.step.load_state_dict(state["scaler"])
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ckpt_io.CheckpointError(
                f"{path}: its optimizer state does not fit the model ({first}); "
                f"the file was altered or mixed up: {ckpt_io.NOT_OURS}"
            ) from None

    def lr(self) -> float:
        """The learning rate now (of the first optimizer; all follow the same schedule)."""
        return self.optimizers[next(iter(self.optimizers))].param_groups[0]["lr"]


def build_parts(
    cfg: Config,
    precision: Precision,
    model: torch.nn.Module | None = None,
    average_gradients: Callable[[list[torch.nn.Parameter]], None] | None = None,
    log: Callable[[str], None] = print,
) -> Parts:
    """``model`` (default: the one ``cfg.model.name`` names, built here) moved to the precision's
    device, Adam optimizers with ``cfg.train``'s settings, the linear-decay schedules, and the step
    that ``cfg.train.compile`` chooses (``log`` gets its one line). Seed before calling."""
    tc = cfg.train
    model = (model or build_model(cfg)).to(precision.device)
    optimizers = model.make_optimizers(tc.lr, (tc.beta1, tc.beta2), tc.adam_eps)
    schedulers = {
        k: torch.optim.lr_scheduler.LambdaLR(o, linear_decay(tc.epochs, tc.epochs_decay)) for k, o in optimizers.items()
    }
    step = build_step(model, optimizers, precision, tc.compile, average_gradients, log=log)
    return Parts(model, optimizers, schedulers, step)


def resumable_state(run: RunFolder, cfg: Config, world: int = 1) -> dict[str, Any] | None:
    """The run folder's latest checkpoint, None when it has none; a :class:`CheckpointError` when it
    cannot be resumed, a :class:`ConfigError` when its configuration differs from ``cfg`` (beyond
    :data:`~unpaired.config.RUNTIME_FIELDS`). ``world`` processes may resume a run trained by
    another number of them when the global batch (processes x ``data.batch_size``) stays the same:
    the sequence of global batches is then the same (folder datasets only)."""
    path = run.latest
    if not path.exists():
        return None
    state = ckpt_io.load(path)
    missing = [k for k in RESUMABLE if k not in state]
    if missing:
        raise ckpt_io.CheckpointError(
            f"{path} cannot be resumed: it has no {', '.join(missing)} (it holds weights only, like "
            f"best.pt: enough to translate or evaluate, not to resume); choose a new --out, or put the run's "
            f"own latest.pt back"
        )
    saved = Config.from_dict(state["config"], strict=False)
    saved_world = state["progress"].get("processes", 1)  # checkpoints before it was recorded: one process
    same_global_batch = saved.data.batch_size * saved_world == cfg.data.batch_size * world
    regrouped = same_global_batch and saved_world != world and cfg.data.mode != "single"
    changes = diff(saved, cfg, ignore=RUNTIME_FIELDS | ({"data.batch_size"} if regrouped else set()))
    if saved_world != world and not same_global_batch:
        changes.append(
            f"processes x data.batch_size: {saved_world} x {saved.data.batch_size} -> {world} x "
            f"{cfg.data.batch_size} (another number of processes resumes a run when processes x --batch-size "
            f"stays {saved_world * saved.data.batch_size})"
        )
    if changes:
        raise ConfigError(
            f"{run.path} already holds a run with a different configuration:\n  "
            + "\n  ".join(changes)
            + "\nResume it with the same settings, or choose a new --out folder."
        )
    if regrouped and os.environ.get("RANK", "0") == "0":  # one note, not one per process
        note(
            f"note: {run.path} was trained by {saved_world} process(es) with batch {saved.data.batch_size}; "
            f"{world} resume it with batch {cfg.data.batch_size} (the same global batch)"
        )
    if saved.data.root != cfg.data.root:
        note(f"note: data folder changed from {saved.data.root} to {cfg.data.root}")
    return state
