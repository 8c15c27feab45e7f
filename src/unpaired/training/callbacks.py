"""Hooks into :meth:`~unpaired.training.trainer.Trainer.fit`: the :class:`Callback` base and the
callbacks the Trainer itself uses."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

if TYPE_CHECKING:  # annotations only
    from .trainer import Trainer


class Callback:
    """Hooks into :meth:`Trainer.fit`. Override what you need; ``trainer.request_stop(reason)``
    ends training after the current iteration, with a checkpoint. Hooks run on every process
    under torchrun; only rank 0 logs and validates."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        """After setup and restore, before the first iteration."""

    def on_step_end(self, trainer: "Trainer") -> None:
        """After every iteration (keep it cheap: no device reads here)."""

    def on_log(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        """Every ``log_every`` iterations, with the metrics.jsonl record (rank 0)."""

    def on_validation(self, trainer: "Trainer", entry: dict[str, Any]) -> None:
        """After each validation, with {"iteration", "epoch", "fid", "kid", ...} (rank 0)."""

    def on_checkpoint(self, trainer: "Trainer", path: Path) -> None:
        """After a checkpoint was written (rank 0)."""

    def on_fit_end(self, trainer: "Trainer") -> None:
        """When fit() ends, also through an exception."""


class GracefulInterrupt(Callback):
    """First Ctrl-C asks the loop to stop after the current iteration (and save); a second one aborts."""

    def __init__(self):
        self.previous = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        def handler(signum, frame):
            if trainer.stop_reason is not None:
                raise KeyboardInterrupt
            trainer.request_stop("interrupted")
            tqdm.write(
                "Interrupted: finishing this iteration and saving a checkpoint (Ctrl-C again to abort).",
                file=sys.stderr,
            )

        try:
            self.previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self.previous = None

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
