"""A run folder: the one place that knows its layout. Every other module asks :class:`RunFolder`.

::

    RUN_DIR/config.yaml               resolved configuration (the Trainer writes it first)
    RUN_DIR/checkpoints/latest.pt     everything needed to resume exactly
    RUN_DIR/checkpoints/best.pt       weights with the best validation score (when validating)
    RUN_DIR/metrics.jsonl             one JSON object per logged iteration (losses, stats) or validation
    RUN_DIR/summary.json              written when training stops
    RUN_DIR/init_from.json            where the weights came from (``train --init-from``; written once)
    RUN_DIR/samples/iter_NNNNNNN.png  triptychs real_A | fake_B | real_B
    RUN_DIR/tensorboard/              the scalars of metrics.jsonl for TensorBoard
    RUN_DIR/eval/<split>.json         scores of ``unpaired evaluate run``
    RUN_DIR/eval/<split>_features.npy their translations' Inception features
    RUN_DIR/eval/<split>/             the translations
    RUN_DIR/error.log                 tracebacks of unexpected errors of commands writing here

The names are those of 0.2.0; runs it wrote resume and report unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .files import remove_stale_temporaries, write_text


class RunFolder:
    """Paths and files of the run folder ``path`` (which need not exist yet)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------------------------ paths
    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, which: str = "latest") -> Path:
        """``checkpoints/<which>.pt``: ``latest`` (resumable) or ``best`` (weights and config only)."""
        return self.checkpoints / f"{which}.pt"

    @property
    def latest(self) -> Path:
        return self.checkpoint("latest")

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def init_from(self) -> Path:
        """``init_from.json``: the official files a ``train --init-from`` run started from."""
        return self.path / "init_from.json"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    def sample(self, iteration: int) -> Path:
        return self.samples / f"iter_{iteration:07d}.png"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def eval(self) -> Path:
        return self.path / "eval"

    def eval_scores(self, split: str) -> Path:
        """``eval/<split>.json``."""
        return self.eval / f"{split}.json"

    def eval_features(self, split: str) -> Path:
        """``eval/<split>_features.npy``."""
        return self.eval / f"{split}_features.npy"

    def eval_images(self, split: str) -> Path:
        """``eval/<split>/``: the split's translations."""
        return self.eval / split

    @property
    def error_log(self) -> Path:
        return self.path / "error.log"

    @staticmethod
    def of_checkpoint(path: str | Path) -> RunFolder | None:
        """The run folder a checkpoint file lies in (``RUN/checkpoints/x.pt``), or None."""
        path = Path(path)
        if path.parent.name == "checkpoints" and path.parent.parent.name:
            return RunFolder(path.parent.parent)
        return None

    # ------------------------------------------------------------------------------------ reading
    def is_run(self) -> bool:
        """Whether the folder holds a run (its config.yaml)."""
        return self.config.is_file()

    def read_config(self) -> Any:
        """config.yaml as written (a ``{section: {field: value}}`` dict for a run); ``yaml.YAMLError``
        if damaged. :meth:`unpaired.config.Config.from_dict` (``strict=False``) makes a Config of it."""
        return yaml.safe_load(self.config.read_text())

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json, or None before the run first stopped; ``ValueError`` if damaged."""
        return json.loads(self.summary.read_text()) if self.summary.is_file() else None

    def read_init_from(self) -> dict[str, Any] | None:
        """init_from.json, or None for a run that started from fresh weights; ``ValueError`` if damaged."""
        return json.loads(self.init_from.read_text()) if self.init_from.is_file() else None

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every record of metrics.jsonl (empty when there is none); ``ValueError`` on a damaged line."""
        if not self.metrics.is_file():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]

    def read_eval(self, split: str) -> dict[str, Any] | None:
        """eval/<split>.json, or None when the run was not scored on that split."""
        path = self.eval_scores(split)
        return json.loads(path.read_text()) if path.is_file() else None

    # ------------------------------------------------------------------------------------ repairs
    def truncate_metrics(self, iteration: int) -> int:
        """Keep only the metrics.jsonl records up to ``iteration`` (those of the checkpoint a run
        resumes from, so none appears twice) and drop damaged lines (half a line: the process was
        killed while appending it). Returns how many damaged lines were dropped."""
        if not self.metrics.exists():
            return 0
        kept, torn = [], 0
        for line in self.metrics.read_text().splitlines():
            try:
                record = json.loads(line) if line.strip() else None
            except ValueError:
                torn += 1
                continue
            if record is not None and record.get("iter", 0) <= iteration:
                kept.append(line)
        write_text(self.metrics, "".join(line + "\n" for line in kept))
        return torn

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete temporary files that killed writes left in the folder and in checkpoints/."""
        return [p for d in (self.path, self.checkpoints) if d.is_dir() for p in remove_stale_temporaries(d)]
