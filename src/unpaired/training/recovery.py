"""What a run does when validation finds it collapsed (``train.on_collapse``).

- ``warn`` (the default): flag it in the log, metrics.jsonl and summary.json; training goes on;
- ``stop``: end the run there, with a checkpoint (``--stop-on-collapse`` is the older spelling);
- ``restart``: roll back to the last state that validation found healthy, change the random
  streams, and go on, at most ``train.max_restarts`` times (then stop as ``stop`` does).

A restart is recorded and reproducible. :class:`Recovery` keeps ``checkpoints/healthy.pt``, a full
resumable state written at the start of training and after every validation that found no
collapse (with a copy of ``best.pt`` as it was then). When a validation finds a collapse, the
Trainer ends its loop; :meth:`Recovery.roll_back` restores that state, and with restart number k
re-seeds the model's random streams (patch ids, noise, flips: torch, numpy and Python's global
generators) and the data order from :func:`restart_seed` (seed, k), writes the restart into
metrics.jsonl and ``latest.pt``, and the loop goes on. The same command therefore gives the same
weights, whether the run went through uninterrupted or was resumed after a restart.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import checkpoint as ckpt_io
from ..errors import ConfigError
from ..files import append_line
from .callbacks import Callback

if TYPE_CHECKING:  # annotations only
    from .trainer import Trainer

__all__ = ["Recovery", "collapse_action", "restart_seed"]


def collapse_action(train_cfg) -> str:
    """warn | stop | restart: ``train.on_collapse``, with ``train.stop_on_collapse`` meaning stop."""
    return "stop" if train_cfg.stop_on_collapse else train_cfg.on_collapse


def restart_seed(seed: int, restart: int) -> int:
    """The seed of the random streams after restart number ``restart`` (0: the run's own seed)."""
    if restart == 0:
        return seed
    return int(np.random.SeedSequence([seed, restart]).generate_state(1)[0])


class Recovery(Callback):
    """Keeps the healthy state a restart returns to, and performs restarts (``train.on_collapse``)."""

    def __init__(self):
        self.restarts: list[dict[str, Any]] = []  # one record per restart, in order
        self._healthy: Path | None = None  # where the healthy state is kept (known once fitting starts)

    # ------------------------------------------------------------------ state in checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"restarts": [dict(r) for r in self.restarts]}

    def load_state_dict(self, trainer: "Trainer", state: dict[str, Any] | None) -> None:
        """Restarts so far, and the data order of the last one (a checkpoint without them: none)."""
        self.restarts = [dict(r) for r in (state or {}).get("restarts", [])]
        self._reseed_data(trainer)

    def _reseed_data(self, trainer: "Trainer") -> None:
        if trainer.dataset is not None and hasattr(trainer.dataset, "seed"):
            trainer.dataset.seed = restart_seed(trainer.cfg.train.seed, len(self.restarts))

    # ------------------------------------------------------------------ hooks
    def _paths(self, trainer: "Trainer") -> tuple[Path, Path, Path]:
        d = trainer.run.checkpoints
        return d / "healthy.pt", d / "healthy_best.pt", trainer.run.best

    def _active(self, trainer: "Trainer") -> bool:
        return collapse_action(trainer.cfg.train) == "restart" and trainer.dist.is_main

    def _keep_healthy(self, trainer: "Trainer") -> None:
        healthy, healthy_best, best = self._paths(trainer)
        ckpt_io.save_atomic(trainer.state_dict(), healthy)
        if best.is_file():
            shutil.copyfile(best, healthy_best)
        else:
            healthy_best.unlink(missing_ok=True)

    def on_fit_start(self, trainer: "Trainer") -> None:
        if collapse_action(trainer.cfg.train) == "restart" and trainer.dist.enabled:
            raise ConfigError(
                "--on-collapse restart works in one process only (rank 0 alone validates); under torchrun "
                "use --on-collapse stop and resume"
            )
        healthy = self._healthy = self._paths(trainer)[0]
        if self._active(trainer) and not healthy.is_file() and trainer.validator.collapse["collapsed_at"] is None:
            self._keep_healthy(trainer)  # a collapse before any healthy validation returns here

    def on_validation(self, trainer: "Trainer", entry: dict[str, Any]) -> None:
        # healthy: the Trainer did not judge it collapsed (in restart mode a judged collapse asks for a
        # restart, or a stop once the restarts are used up; the first epoch is not judged)
        if self._active(trainer) and trainer.stop_reason is None:
            self._keep_healthy(trainer)

    # ------------------------------------------------------------------ restarts
    def can_restart(self, train_cfg) -> bool:
        """Whether a restart is left for a run that just collapsed (and a healthy state to return to)."""
        return len(self.restarts) < train_cfg.max_restarts and self._healthy is not None and self._healthy.is_file()

    def roll_back(self, trainer: "Trainer") -> dict[str, Any]:
        """Return to the healthy state, re-seed the random streams, record the restart; returns its record."""
        healthy, healthy_best, best = self._paths(trainer)
        state = ckpt_io.load(healthy)
        collapse = dict(trainer.validator.collapse)
        k = len(self.restarts) + 1
        record = {
            "restart": k,
            "collapsed_at": collapse["collapsed_at"],
            "reason": collapse["reason"],
            "resumed_from": state["progress"]["iteration"],
            "seed": restart_seed(trainer.cfg.train.seed, k),
        }
        restarts = self.restarts + [record]
        trainer.restore(state)  # weights, optimizers, schedules, progress, RNG; metrics.jsonl cut back
        self.restarts = restarts
        seed = record["seed"]
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # also seeds every CUDA device
        self._reseed_data(trainer)
        if healthy_best.is_file():
            shutil.copyfile(healthy_best, best)
        else:
            best.unlink(missing_ok=True)
        trainer.stop_reason = None
        append_line(
            trainer.run.metrics,
            json.dumps({"iter": trainer.iteration, "epoch": trainer.epoch, "restart": record, "time": time.time()}),
        )
        tqdm.write(
            f"restart {k} of at most {trainer.cfg.train.max_restarts}: the run collapsed at iteration "
            f"{record['collapsed_at']}; back to iteration {record['resumed_from']} (the last healthy "
            f"validation) with new random streams (seed {seed})",
            file=sys.stderr,
        )
        trainer.save_checkpoint()  # a run killed from here on resumes after this restart, not before it
        return record
