"""The Trainer: runs one training run in one run folder (layout: :class:`unpaired.runs.RunFolder`).

``Trainer(config, run_dir).fit()`` goes through four phases:

1. **setup**: devices, precision, the data, and the parts (:func:`~.parts.build_parts`: model,
   optimizers, LR schedules, the step object); config.yaml is written once all of them are usable;
2. **restore**: from ``checkpoints/latest.pt`` when the folder holds one (bit-exact resume);
3. **loop**: each iteration calls the step, then logs (:class:`~.logging.MetricsLogger`), samples,
   validates (:class:`~.validation.Validator`) and checkpoints when due;
4. **finish**: the last checkpoint, sample and summary.json.

:class:`Callback` objects hook into it (Ctrl-C handling and a sweep's pruning are callbacks).
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

import torch

from .. import checkpoint as ckpt_io
from ..amp import Precision
from ..config import Config, ConfigError, resolve, save_yaml
from ..data.loading import batches_per_epoch, training_dataset, training_loader
from ..devices import configure_determinism, select_device
from ..files import make_dir, write_text
from ..models import official, param_counts
from ..runs import RunFolder
from . import distributed
from .callbacks import Callback, GracefulInterrupt
from .divergence import TrainingDiverged, diverged, non_finite_losses, non_finite_sums, non_finite_weight
from .logging import DataProblems, MetricsLogger, note, save_sample
from .memory import MemoryMeter
from .parts import build_parts, linear_decay, resumable_state, seed_everything
from .recovery import Recovery
from .validation import Validator

__all__ = [
    "Trainer",
    "Callback",
    "GracefulInterrupt",
    "TrainingDiverged",
    "select_device",
    "seed_everything",
    "linear_decay",
]


class Trainer:
    """Train ``config`` into ``run_dir``, resuming from its latest checkpoint if there is one.

    ``model``: an already built model (default: the one ``config.model.name`` names); ``data``: a
    dataset folder (overrides ``config.data.root``) or a dataset object indexed like
    :class:`unpaired.data.UnalignedDataset` (by (epoch, position) keys, with ``epoch_length``);
    ``callbacks``: :class:`Callback` objects (Ctrl-C handling is always installed); ``init_from``: an
    official run folder or generator file (CUT, FastCUT, SinCUT, CycleGAN code) whose networks a
    fresh run starts from, with fresh optimizers (G, and D, F when their files are beside it; build
    ``config`` with ``preset(name, init_from=...)`` so that it has their architecture). The run
    records it in init_from.json and summary.json; resuming never applies it again."""

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        model: torch.nn.Module | None = None,
        data: str | Path | Any | None = None,
        callbacks: Iterable[Callback] = (),
        show_progress: bool = True,
        init_from: str | Path | None = None,
    ):
        cfg = copy.deepcopy(config)
        self.dataset = None
        if isinstance(data, (str, Path)):
            cfg.data.root = str(data)
        elif data is not None:
            self.dataset = data
        self.cfg = resolve(cfg)  # a bad config fails here, not later inside a loader worker
        self.run = RunFolder(run_dir)
        self.run_dir = self.run.path
        self.ckpt_path = self.run.latest
        self.model = model
        self.init_from = None if init_from is None else Path(init_from)
        if self.init_from is not None:  # files that do not fit fail here, before the run folder appears
            _, settings = official.init_settings(self.init_from, self.cfg.model.name)
            wrong = official.mismatches(self.cfg, settings)
            if wrong:
                raise ConfigError(
                    f"init_from {self.init_from}: {wrong[0]}; build the configuration with "
                    f"unpaired.preset({self.cfg.model.name!r}, init_from=...) (the CLI's --init-from does)"
                )
        self.init_record: dict[str, Any] | None = None  # where the weights came from (init_from.json)
        self.recovery = Recovery()  # train.on_collapse: restarts (unpaired.training.recovery)
        self.callbacks = [GracefulInterrupt(), self.recovery, *callbacks]
        self.show_progress = show_progress
        self.stop_reason: str | None = None
        self.summary: dict[str, Any] | None = None

    def request_stop(self, reason: str) -> None:
        """Stop after the current iteration (with a checkpoint); the summary records ``reason``."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # ================================================================ phases
    def fit(self) -> dict[str, Any]:
        """Train until ``train.iters`` or the end of the schedule; returns the summary. Under torchrun, a
        process that dies stops the others with :class:`~.distributed.ProcessesLost`, which names the
        checkpoint to resume from."""
        try:
            summary = self._fit()
        except distributed.ProcessesLost as e:
            info = getattr(self, "dist", distributed.DistInfo())
            raise distributed.lost(
                e, info, getattr(self, "iteration", 0), self.ckpt_path, getattr(self, "saved_iteration", None)
            ) from e
        distributed.teardown(self.dist)  # every process got here: finish() ended with a barrier
        return summary

    def _fit(self) -> dict[str, Any]:
        state = self.setup()
        self.restore(state)
        self._emit("on_fit_start")
        try:
            if self.iteration >= self.stop_at:
                if self.dist.is_main:
                    note(
                        f"{self.run_dir}: already at iteration {self.iteration} of {self.stop_at}; nothing "
                        f"to do (raise --iters or --epochs to train further)"
                    )
                return self.finish(trained=False)
            self.train_loop()
            while self.stop_reason == "restart":  # validation found a collapse: on_collapse restart
                self.recovery.roll_back(self)
                self.train_loop()
            return self.finish()
        finally:
            self._emit("on_fit_end")

    def setup(self) -> dict[str, Any] | None:
        """Devices, data and the parts. Returns the checkpoint state to resume from (None for a fresh
        run). The run folder appears only once the settings and the data are known to be usable."""
        cfg, tc = self.cfg, self.cfg.train
        world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's; the process group is joined below
        state = resumable_state(self.run, self.cfg, world)  # a different configuration fails here
        self.dist, device_name = distributed.setup(tc.device)
        self.device = select_device(device_name)
        configure_determinism(self.device, tc.deterministic)
        self.precision = Precision(tc.precision, self.device)
        self.memory = MemoryMeter(self.device)  # steady-state peak after warm-up, and the one-off peak
        if tc.val_every and cfg.data.mode == "single":
            raise ConfigError("validation needs a val split; single-image training has none (set --val-every 0)")
        if self.dataset is None:
            self.dataset = training_dataset(cfg, self.dist.rank)
        if self.dist.is_main:
            DataProblems.warn_skipped_entries(self.dataset)
            make_dir(self.run_dir, "run folder")
            save_yaml(cfg, self.run.config)

        seed_everything(tc.seed)
        self.parts = build_parts(
            cfg,
            self.precision,
            self.model,
            distributed.average_gradients if self.dist.enabled else None,
            log=note if self.dist.is_main else (lambda line: None),
        )
        self.model = self.parts.model
        if self.init_from is not None and state is None:
            self.start_from_official()
        if self.dist.enabled:
            distributed.broadcast_module(self.model)  # in place: the optimizers keep their parameters
        self.epoch = self.batch = self.iteration = 0
        self.saved_iteration: int | None = None  # of the last checkpoint written or resumed from
        self.logger = MetricsLogger(self.run, self.dist.is_main)
        self.validator = Validator(cfg)
        self.data_problems = DataProblems(cfg.data.crop_size)
        self.per_epoch = batches_per_epoch(cfg, self.dataset, self.dist.world)
        self.total = self.per_epoch * (tc.epochs + tc.epochs_decay)
        self.stop_at = min(self.total, tc.iters) if tc.iters else self.total
        return state

    def restore(self, state: dict[str, Any] | None) -> None:
        """Networks, optimizers, schedules, loss scaler, data position and RNG states from a checkpoint."""
        if state is not None:
            self.parts.load_state_dict(state, self.ckpt_path, f"the {self.cfg.model.name} model")
            p = state["progress"]
            self.epoch, self.batch, self.iteration = p["epoch"], p["batch"], p["iteration"]
            self.saved_iteration = self.iteration
            self.data_problems.skipped = list(state.get("data_problems", {}).get("skipped", []))
            self.validator.restore(state)
            self.recovery.load_state_dict(self, state.get("recovery"))
            self.init_record = state.get("init_from")
            if self.init_from is not None and self.dist.is_main:
                note(
                    f"note: {self.run_dir} resumes from its checkpoint; --init-from {self.init_from} is applied "
                    f"only when a run starts"
                    + (" (this one started from it: init_from.json)" if self.init_record else "")
                )
            ckpt_io.set_rng_state(state["rng"])
            self._sums, self._n_sum = {"loss": {}, "stats": {}}, 0
        if self.dist.enabled:
            lo, hi = distributed.min_max_across(self.iteration)
            if lo != hi:
                raise ConfigError(
                    f"the training processes start from different iterations ({lo} to {hi}; rank "
                    f"{self.dist.rank} of {self.dist.world} from {self.iteration}, {self.ckpt_path}): every node "
                    f"must see the same --out folder, on a file system they share"
                )
        if self.dist.is_main:
            self.logger.resume(self.iteration)
            stale = self.run.remove_stale_temporaries()
            if stale:
                note(
                    f"note: removed {len(stale)} temporary file(s) left by a write that was killed "
                    f"(first: {stale[0]}); the checkpoint in use is complete"
                )

    def train_loop(self) -> None:
        cfg, tc, main = self.cfg, self.cfg.train, self.dist.is_main
        loader = training_loader(
            cfg, self.dataset, self.epoch, self.batch, self.device.type == "cuda", self.dist.rank, self.dist.world
        )
        if main:  # rank 0 alone validates, logs, samples and saves; the others only train
            self.validator.start(self.device)
        self.logger.open(self.iteration, self.stop_at, cfg.model.name, self.show_progress)
        self.model.train()
        batches = iter(loader)
        try:
            while self.iteration < self.stop_at and not self._stop_agreed():
                raw = next(batches)
                if main:
                    self.data_problems.note(raw)
                batch = {k: v.to(self.device, non_blocking=True) for k, v in raw.items() if torch.is_tensor(v)}
                self.logger.add(self.parts.step(batch))
                self.memory.sample()
                epoch_ended = self._advance()
                self._emit("on_step_end")
                if self.iteration % tc.log_every == 0 or self.iteration == self.stop_at:
                    self.log()
                    if len(self.logger.times) == 1:  # the first logged interval is the warm-up
                        self.memory.start_steady()
                if main and tc.sample_every and self.iteration % tc.sample_every == 0:
                    self.save_sample()
                    self.memory.skip()  # translation and validation stay out of the training figure
                if self.validator.due(self.iteration, self.epoch, epoch_ended):
                    self.validate()
                    self.memory.skip()
                if main and tc.save_every and self.iteration % tc.save_every == 0 and self.iteration < self.stop_at:
                    self.save_checkpoint()
            if self.validator.final_due(self.iteration):
                self.validate()  # the final value, whatever the interval
        finally:
            self.logger.close()

    def finish(self, trained: bool = True) -> dict[str, Any]:
        """Final checkpoint, sample and summary.json (rank 0); returns the summary."""
        if not self.dist.is_main:
            distributed.barrier()  # wait for rank 0's final checkpoint
            return {"rank": self.dist.rank, "iteration": self.iteration}
        if trained:
            self.save_checkpoint()
            if self.cfg.train.sample_every:
                self.save_sample()
        self.summary = self._write_summary()
        if self.dist.enabled:
            distributed.barrier()
        return self.summary

    def start_from_official(self) -> None:
        """Load the official networks of ``init_from`` into the fresh model (optimizers stay fresh:
        the official files hold none) and record them in init_from.json."""
        loaded = official.init_from_official(self.model, self.init_from)
        self.init_record = official.init_record(self.init_from, loaded)
        if self.dist.is_main:
            write_text(self.run.init_from, json.dumps(self.init_record, indent=2))
            note(
                f"started {', '.join(loaded)} from the official files "
                + ", ".join(Path(f).name for f in loaded.values())
                + f" in {Path(next(iter(loaded.values()))).parent} (fresh optimizers)"
            )

    # ========================================================== loop pieces
    def _stop_agreed(self) -> bool:
        """Whether to stop now. Under torchrun every process must stop at the same iteration; they
        agree at logging iterations only, so no iteration pays an extra all-reduce and host sync."""
        if not self.dist.enabled:
            return self.stop_reason is not None
        return self.iteration % self.cfg.train.log_every == 0 and distributed.any_across(self.stop_reason is not None)

    def _advance(self) -> bool:
        """Count the iteration; at an epoch's end step the LR schedules (once per epoch, as the reference)."""
        self.iteration += 1
        self.batch += 1
        if self.batch < self.per_epoch:
            return False
        self.epoch, self.batch = self.epoch + 1, 0
        for s in self.parts.schedulers.values():
            s.step()
        return True

    def log(self) -> dict[str, Any]:
        """Average the scalars since the last log over the interval (and the processes); write them."""
        record = self.logger.interval(self.iteration, self.epoch, self.parts.lr())
        bad = non_finite_losses(record["loss"])
        if bad:  # every process sees the same means: all of them stop here
            first = self.iteration - self.logger.n + 1
            raise self._diverged(f"{bad} (mean over iterations {first}-{self.iteration})")
        if self.dist.is_main:
            self.logger.scalars(record)
            self._emit("on_log", record)
        self.logger.next_interval(record)
        return record

    def check_finite(self) -> None:
        """Raise :class:`TrainingDiverged` if a loss since the last log or a weight is NaN or infinite.
        Called before anything is saved (one device read per checkpoint or validation)."""
        bad = non_finite_sums(self.logger.sums["loss"])
        if bad:
            first = self.iteration - self.logger.n + 1
            raise self._diverged(f"{bad} (sum over iterations {first}-{self.iteration})")
        name = non_finite_weight(self.model)
        if name is not None:
            raise self._diverged(f"the weights of {name} are no longer finite at iteration {self.iteration}")

    def _diverged(self, what: str) -> TrainingDiverged:
        return diverged(what, self.cfg, self.ckpt_path, self.saved_iteration)

    # ============================================================ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds."""
        return {
            "format": ckpt_io.FORMAT_VERSION,
            "config": self.cfg.to_dict(),
            **self.parts.state_dict(),  # model, optimizers, schedulers, scaler
            # processes: a resume by another number of them keeps processes x batch (resumable_state)
            "progress": {
                "epoch": self.epoch,
                "batch": self.batch,
                "iteration": self.iteration,
                "processes": self.dist.world,
            },
            "rng": ckpt_io.rng_state(),
            "data_problems": {"skipped": self.data_problems.skipped},
            "validation": self.validator.state,
            "collapse": self.validator.collapse,
            "recovery": self.recovery.state_dict(),
            "init_from": self.init_record,
            "saved_at": time.time(),
        }

    def save_checkpoint(self) -> Path:
        """Write ``latest.pt`` atomically, never with a non-finite loss pending or non-finite weights
        (:class:`TrainingDiverged` instead: the previous checkpoint stays)."""
        self.check_finite()
        ckpt_io.save_atomic(self.state_dict(), self.ckpt_path)
        self.saved_iteration = self.iteration
        self._emit("on_checkpoint", self.ckpt_path)
        return self.ckpt_path

    def validate(self) -> dict[str, Any]:
        """Score the generator on the val split; log it, keep ``best.pt`` when it improves, and judge
        whether the run collapsed (stopping it with ``train.stop_on_collapse``)."""
        self.check_finite()  # NaN weights would give a meaningless score and a NaN best.pt
        entry = self.validator.score(self.model.generator, self.iteration, self.epoch, self.logger.last_stats)
        self.logger.validation(entry)
        if self.validator.state["best"] is entry:
            # weights and config only: best.pt is for evaluation and translation, latest.pt for resuming
            best = {k: v for k, v in self.state_dict().items() if k not in ("optimizers", "rng")}
            ckpt_io.save_atomic(best, self.run.best)
        action = self.validator.judge(entry, self.recovery)
        if action != "warn":
            self.request_stop("collapsed" if action == "stop" else "restart")
        self._emit("on_validation", entry)
        return entry

    # ================================================================ outputs
    def save_sample(self) -> None:
        """Triptych real_A | fake_B | real_B in samples/ (see :func:`~.logging.save_sample`)."""
        save_sample(self.run.sample(self.iteration), self.model, self.dataset, self.device)

    def _write_summary(self) -> dict[str, Any]:
        tc = self.cfg.train
        summary = {
            "model": self.cfg.model.name,
            "iteration": self.iteration,
            "epoch": self.epoch,
            "total_iterations": self.total,
            "finished": self.iteration >= self.total,
            "stop_reason": self.stop_reason,
            "params": param_counts(self.model),
            "device": str(self.device),
            "processes": self.dist.world,
            "precision": tc.precision,
            "step": self.parts.step.name,
            "sec_per_iter": self.logger.sec_per_iter(),  # median over logged intervals after the first (warm-up)
            **self.memory.summary(),  # steady state after the first logged interval, and the one-off peak
            "checkpoint": str(self.ckpt_path),
            "skipped_files": sorted(self.data_problems.skipped),
            "images_smaller_than_crop": len(self.data_problems.small),
            "validation": {"metric": tc.val_metric, **self.validator.state} if tc.val_every else None,
            "collapse": self.validator.collapse if tc.val_every else None,
            "restarts": self.recovery.restarts,
            "init_from": self.init_record,  # the official files the run started from (None: fresh weights)
        }
        write_text(self.run.summary, json.dumps(summary, indent=2))
        return summary
