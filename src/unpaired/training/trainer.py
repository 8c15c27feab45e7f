"""The Trainer: owns devices, precision, the data loader, LR schedules, logging and checkpoints.

A run lives in one folder::

    RUN_DIR/config.yaml            resolved configuration
    RUN_DIR/checkpoints/latest.pt  everything needed to resume exactly
    RUN_DIR/checkpoints/best.pt    weights with the best validation score (when validating)
    RUN_DIR/metrics.jsonl          one JSON object per logged iteration (losses, stats) or validation
    RUN_DIR/tensorboard/           the same scalars for TensorBoard
    RUN_DIR/samples/*.png          triptychs real_A | fake_B | real_B
    RUN_DIR/summary.json           written when the run stops

``Trainer(config, run_dir).fit()`` runs the phases in order: :meth:`setup`, :meth:`restore` (from
``latest.pt`` when the folder holds one), the loop (each iteration calls the step object, then
logs, samples, validates and checkpoints when due), and :meth:`finish`. :class:`Callback` objects
hook into it (Ctrl-C handling and a sweep's pruning are callbacks).
"""

from __future__ import annotations

import copy
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .. import checkpoint as ckpt_io
from ..amp import Precision
from ..config import RUNTIME_FIELDS, Config, ConfigError, diff, resolve, save_yaml
from ..data import SingleImageDataset
from ..data.images import save_image, skipped_summary, to_tensor, triptych
from ..data.loading import batches_per_epoch, training_dataset, training_loader
from ..devices import configure_determinism, select_device, settle_vector_math
from ..errors import UnpairedError
from ..evaluate import SplitScorer
from ..files import append_line, make_dir, remove_stale_temporaries, write_text
from ..methods import build_model
from ..metrics.collapse import discriminator_gap
from ..metrics.collapse import judge as judge_collapse
from ..models import param_counts
from ..tiling import eval_mode, translate_any
from . import distributed
from .callbacks import Callback, GracefulInterrupt
from .memory import MemoryMeter
from .recovery import Recovery, collapse_action
from .step import StepResult, TrainStep, build_step

__all__ = [
    "Trainer",
    "Callback",
    "GracefulInterrupt",
    "TrainingDiverged",
    "select_device",
    "seed_everything",
    "linear_decay",
]


def seed_everything(seed: int) -> None:
    settle_vector_math()  # before anything random or parallel happens in this process
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TrainingDiverged(UnpairedError, RuntimeError):
    """A loss or the weights became NaN or infinite; nothing non-finite was saved. The message names
    the loss (or tensor) and the iteration, and what to try."""


def linear_decay(n_epochs: int, n_epochs_decay: int):
    """The reference's 'linear' policy: 1 for n_epochs epochs, then linearly to 0 over the decay."""
    return lambda epoch: 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


class Trainer:
    """Train ``config`` into ``run_dir``, resuming from its latest checkpoint if there is one.

    ``model``: an already built model (default: the one ``config.model.name`` names); ``data``: a
    dataset folder (overrides ``config.data.root``) or a dataset object indexed like
    :class:`unpaired.data.UnalignedDataset` (by (epoch, position) keys, with ``epoch_length``);
    ``callbacks``: :class:`Callback` objects (Ctrl-C handling is always installed)."""

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        model: torch.nn.Module | None = None,
        data: str | Path | Any | None = None,
        callbacks: Iterable[Callback] = (),
        show_progress: bool = True,
    ):
        cfg = copy.deepcopy(config)
        self.dataset = None
        if isinstance(data, (str, Path)):
            cfg.data.root = str(data)
        elif data is not None:
            self.dataset = data
        self.cfg = resolve(cfg)  # a bad config fails here, not later inside a loader worker
        self.run_dir = Path(run_dir)
        self.model = model
        self.recovery = Recovery()  # train.on_collapse: restarts (unpaired.training.recovery)
        self.callbacks = [GracefulInterrupt(), self.recovery, *callbacks]
        self.show_progress = show_progress
        self.ckpt_path = self.run_dir / "checkpoints" / "latest.pt"
        self.metrics_path = self.run_dir / "metrics.jsonl"
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
        """Train until ``train.iters`` or the end of the schedule; returns the summary."""
        state = self.setup()
        self.restore(state)
        self._emit("on_fit_start")
        try:
            if self.iteration >= self.stop_at:
                if self.dist.is_main:
                    tqdm.write(
                        f"{self.run_dir}: already at iteration {self.iteration} of {self.stop_at}; nothing "
                        f"to do (raise --iters or --epochs to train further)",
                        file=sys.stderr,
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
        """Devices, data, model, optimizers, schedules and the step object. Returns the checkpoint
        state to resume from (None for a fresh run). The run folder appears only once the settings
        and the data are known to be usable."""
        cfg, tc = self.cfg, self.cfg.train
        state = self._load_resumable()
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
            skipped = getattr(self.dataset, "skipped_entries", [])  # a dataset passed in may lack them
            if skipped:
                tqdm.write(
                    f"warning: {skipped_summary(skipped, 'of the training folders')}: skipped ('unpaired data "
                    f"check' lists them; --strict refuses them)",
                    file=sys.stderr,
                )
            make_dir(self.run_dir, "run folder")
            save_yaml(cfg, self.run_dir / "config.yaml")

        seed_everything(tc.seed)
        self.model = (self.model or build_model(cfg)).to(self.device)
        if self.dist.enabled:
            distributed.broadcast_module(self.model)
        self.optimizers = self.model.make_optimizers(tc.lr, (tc.beta1, tc.beta2), tc.adam_eps)
        self.schedulers = {
            k: torch.optim.lr_scheduler.LambdaLR(o, linear_decay(tc.epochs, tc.epochs_decay))
            for k, o in self.optimizers.items()
        }
        self.step = self.make_step()
        self.epoch = self.batch = self.iteration = 0
        self.saved_iteration: int | None = None  # of the last checkpoint written or resumed from
        self._sums: dict[str, dict[str, torch.Tensor]] = {"loss": {}, "stats": {}}
        self._n_sum = 0
        self.validation: dict[str, Any] = {"best": None, "final": None}
        self.collapse: dict[str, Any] = {"collapsed_at": None, "reason": None, "last": None}
        self.last_stats: dict[str, float] = {}  # diagnostics of the last logged interval
        self.skipped: list[str] = []  # messages about unreadable files, each reported once
        self.small: list[str] = []  # images smaller than the crop (upscaled)
        self.times: list[float] = []  # seconds per iteration of each logged interval
        self.per_epoch = batches_per_epoch(cfg, self.dataset, self.dist.world)
        self.total = self.per_epoch * (tc.epochs + tc.epochs_decay)
        self.stop_at = min(self.total, tc.iters) if tc.iters else self.total
        return state

    def make_step(self) -> TrainStep:
        """The object the loop calls once per iteration: eager or compiled (``train.compile``)."""
        return build_step(
            self.model,
            self.optimizers,
            self.precision,
            self.cfg.train.compile,
            distributed.average_gradients if self.dist.enabled else None,
            log=(lambda line: tqdm.write(line, file=sys.stderr)) if self.dist.is_main else (lambda line: None),
        )

    def restore(self, state: dict[str, Any] | None) -> None:
        """Networks, optimizers, schedules, loss scaler, data position and RNG states from a checkpoint."""
        if state is not None:
            ckpt_io.load_module_state(self.model, state["model"], self.ckpt_path, f"the {self.cfg.model.name} model")
            try:
                for k, o in self.optimizers.items():
                    o.load_state_dict(state["optimizers"][k])
                for k, s in self.schedulers.items():
                    s.load_state_dict(state["schedulers"][k])
                self.step.load_state_dict(state["scaler"])
            except (KeyError, ValueError, RuntimeError, TypeError) as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise ckpt_io.CheckpointError(
                    f"{self.ckpt_path}: its optimizer state does not fit the model ({first}); "
                    f"the file was altered or mixed up: {ckpt_io.NOT_OURS}"
                ) from None
            p = state["progress"]
            self.epoch, self.batch, self.iteration = p["epoch"], p["batch"], p["iteration"]
            self.saved_iteration = self.iteration
            self.skipped = list(state.get("data_problems", {}).get("skipped", []))
            self.validation = state.get("validation", self.validation)
            self.collapse = state.get("collapse", self.collapse)
            self.recovery.load_state_dict(self, state.get("recovery"))
            ckpt_io.set_rng_state(state["rng"])
            self._sums, self._n_sum = {"loss": {}, "stats": {}}, 0
        if self.dist.is_main:
            self._truncate_metrics(self.iteration)  # also clears lines of a run that crashed before its first save
            stale = [
                p
                for d in (self.run_dir, self.run_dir / "checkpoints")
                if d.is_dir()
                for p in remove_stale_temporaries(d)
            ]
            if stale:
                tqdm.write(
                    f"note: removed {len(stale)} temporary file(s) left by a write that was killed "
                    f"(first: {stale[0]}); the checkpoint in use is complete",
                    file=sys.stderr,
                )

    def train_loop(self) -> None:
        cfg, tc, main = self.cfg, self.cfg.train, self.dist.is_main
        loader = training_loader(
            cfg, self.dataset, self.epoch, self.batch, self.device.type == "cuda", self.dist.rank, self.dist.world
        )
        self.single_images = (
            (self.dataset.images, self.dataset.paths) if isinstance(self.dataset, SingleImageDataset) else None
        )
        # rank 0 alone validates, logs, samples and saves; the others only train
        self.scorer = self._make_scorer() if main else None
        self.writer = self._tensorboard(purge_step=self.iteration) if main else None
        self.model.train()
        bar = tqdm(
            total=self.stop_at,
            initial=self.iteration,
            desc=f"{cfg.model.name}",
            unit="it",
            disable=not (self.show_progress and main),
            dynamic_ncols=True,
        )
        batches = iter(loader)
        self._t_last = time.perf_counter()
        try:
            while self.iteration < self.stop_at and not self._stop_agreed():
                raw = next(batches)
                if main:
                    self._note_data_problems(raw)
                batch = {k: v.to(self.device, non_blocking=True) for k, v in raw.items() if torch.is_tensor(v)}
                self._accumulate(self.step(batch))
                self.memory.sample()
                epoch_ended = self._advance()
                bar.update(1)
                self._emit("on_step_end")
                if self.iteration % tc.log_every == 0 or self.iteration == self.stop_at:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in self.log()["loss"].items()}, refresh=False)
                    if len(self.times) == 1:  # the first logged interval is the warm-up
                        self.memory.start_steady()
                if main and tc.sample_every and self.iteration % tc.sample_every == 0:
                    self.save_sample()
                    self.memory.skip()  # translation and validation stay out of the training figure
                if self.scorer is not None and self._validation_due(epoch_ended):
                    self.validate()
                    self.memory.skip()
                if main and tc.save_every and self.iteration % tc.save_every == 0 and self.iteration < self.stop_at:
                    self.save_checkpoint()
            last = self.validation["final"]
            if self.scorer is not None and (last is None or last["iteration"] != self.iteration):
                self.validate()  # the final value, whatever the interval
        finally:
            bar.close()
            if self.writer is not None:
                self.writer.close()

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

    # ========================================================== loop pieces
    def _stop_agreed(self) -> bool:
        """Whether to stop now. Under torchrun every process must stop at the same iteration; they
        agree at logging iterations only, so no iteration pays an extra all-reduce and host sync."""
        if not self.dist.enabled:
            return self.stop_reason is not None
        return self.iteration % self.cfg.train.log_every == 0 and distributed.any_across(self.stop_reason is not None)

    def _accumulate(self, result: StepResult) -> None:
        """Sum the step's scalars on the device; they are read only when logged (no sync per step)."""
        for group, values in (("loss", result.losses), ("stats", result.stats)):
            sums = self._sums[group]
            for k, v in values.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
        self._n_sum += 1

    def _advance(self) -> bool:
        """Count the iteration; at an epoch's end step the LR schedules (once per epoch, as the reference)."""
        self.iteration += 1
        self.batch += 1
        if self.batch < self.per_epoch:
            return False
        self.epoch, self.batch = self.epoch + 1, 0
        for s in self.schedulers.values():
            s.step()
        return True

    def log(self) -> dict[str, Any]:
        """Average the scalars since the last log over the interval (and the processes); write them."""
        now = time.perf_counter()
        n = self._n_sum
        # float() syncs the device: once per log_every iterations; under torchrun, means over processes
        means = {
            group: distributed.mean_across({k: float(v) / n for k, v in sums.items()})
            for group, sums in self._sums.items()
        }
        sec = (now - self._t_last) / n
        self.times.append(sec)
        lr = self.optimizers[next(iter(self.optimizers))].param_groups[0]["lr"]
        record = {
            "iter": self.iteration,
            "epoch": self.epoch,
            "lr": lr,
            "sec_per_iter": sec,
            "loss": means["loss"],
            "stats": means["stats"],
            "time": time.time(),
        }
        self.last_stats = means["stats"]
        bad = [(k, v) for k, v in means["loss"].items() if not math.isfinite(v)]
        if self.dist.is_main:
            append_line(self.metrics_path, json.dumps(record))
        if bad:  # every process sees the same means: all of them stop here
            raise self._diverged(
                f"{self._bad_losses(bad)} (mean over iterations {self.iteration - n + 1}-{self.iteration})"
            )
        if self.dist.is_main:
            for group in ("loss", "stats"):
                for k, v in means[group].items():
                    self.writer.add_scalar(f"{group}/{k}", v, self.iteration)
            self.writer.add_scalar("train/lr", lr, self.iteration)
            self.writer.add_scalar("train/sec_per_iter", sec, self.iteration)
            self._emit("on_log", record)
        self._sums, self._n_sum, self._t_last = {"loss": {}, "stats": {}}, 0, time.perf_counter()
        return record

    @staticmethod
    def _bad_losses(bad: list[tuple[str, float]]) -> str:
        return ("loss " if len(bad) == 1 else "losses ") + ", ".join(f"{k} = {v}" for k, v in bad)

    def _diverged(self, what: str) -> TrainingDiverged:
        kept = (
            f"{self.ckpt_path} still holds iteration {self.saved_iteration}, the last good one"
            if self.saved_iteration is not None
            else "no checkpoint had been written"
        )
        fp32 = ", in fp32 (--precision fp32)" if self.cfg.train.precision != "fp32" else ""
        return TrainingDiverged(
            f"training diverged: {what}; stopped without saving ({kept}). Start again in a new "
            f"--out with a lower learning rate (now {self.cfg.train.lr:g}; --set train.lr=...){fp32}, "
            f"or check the data"
        )

    def check_finite(self) -> None:
        """Raise :class:`TrainingDiverged` if a loss since the last log or a weight is NaN or infinite.
        Called before anything is saved (one device read per checkpoint or validation)."""
        sums = self._sums["loss"]
        if sums:
            finite = torch.stack([torch.isfinite(v).all() for v in sums.values()]).cpu()
            if not bool(finite.all()):
                bad = [(k, float(sums[k])) for k, ok in zip(sums, finite.tolist()) if not ok]
                raise self._diverged(
                    f"{self._bad_losses(bad)} (sum over iterations {self.iteration - self._n_sum + 1}-{self.iteration})"
                )
        weights = [(k, t) for k, t in self.model.state_dict().items() if torch.is_tensor(t) and t.is_floating_point()]
        finite = torch.stack([torch.isfinite(t).all() for _, t in weights]).cpu()
        if not bool(finite.all()):
            name = weights[int((~finite).nonzero()[0])][0]
            raise self._diverged(f"the weights of {name} are no longer finite at iteration {self.iteration}")

    # ============================================================ checkpoints
    def _load_resumable(self) -> dict[str, Any] | None:
        """The latest checkpoint, if the run folder holds one whose configuration matches."""
        if not self.ckpt_path.exists():
            return None
        state = ckpt_io.load(self.ckpt_path)
        missing = [k for k in ("model", "optimizers", "schedulers", "scaler", "progress", "rng") if k not in state]
        if missing:
            raise ckpt_io.CheckpointError(
                f"{self.ckpt_path} cannot be resumed: it has no {', '.join(missing)} (it holds weights only, like "
                f"best.pt: enough to translate or evaluate, not to resume); choose a new --out, or put the run's "
                f"own latest.pt back"
            )
        saved = Config.from_dict(state["config"], strict=False)
        changes = diff(saved, self.cfg, ignore=RUNTIME_FIELDS)
        if changes:
            raise ConfigError(
                f"{self.run_dir} already holds a run with a different configuration:\n  "
                + "\n  ".join(changes)
                + "\nResume it with the same settings, or choose a new --out folder."
            )
        if saved.data.root != self.cfg.data.root:
            tqdm.write(f"note: data folder changed from {saved.data.root} to {self.cfg.data.root}", file=sys.stderr)
        return state

    def _truncate_metrics(self, iteration: int) -> None:
        """Drop log lines written after the checkpoint we resume from, so none appear twice."""
        if not self.metrics_path.exists():
            return
        kept, torn = [], 0
        for line in self.metrics_path.read_text().splitlines():
            try:
                record = json.loads(line) if line.strip() else None
            except ValueError:  # half a line: the process was killed while appending it
                torn += 1
                continue
            if record is not None and record.get("iter", 0) <= iteration:
                kept.append(line)
        if torn:
            tqdm.write(
                f"note: {self.metrics_path}: dropped {torn} damaged line(s) (a write that was killed)", file=sys.stderr
            )
        write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds."""
        return {
            "format": ckpt_io.FORMAT_VERSION,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.step.state_dict(),
            "progress": {"epoch": self.epoch, "batch": self.batch, "iteration": self.iteration},
            "rng": ckpt_io.rng_state(),
            "data_problems": {"skipped": self.skipped},
            "validation": self.validation,
            "collapse": self.collapse,
            "recovery": self.recovery.state_dict(),
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

    # ============================================================ validation
    def _make_scorer(self):
        tc = self.cfg.train
        if not tc.val_every:
            return None

        return SplitScorer(
            self.cfg.data.root, "val", self.cfg.data.channels, self.cfg.data.crop_size, str(self.device), tc.val_num
        )

    def _validation_due(self, epoch_ended: bool) -> bool:
        tc = self.cfg.train
        if tc.val_unit == "iter":
            return self.iteration % tc.val_every == 0
        return epoch_ended and self.epoch % tc.val_every == 0

    def validate(self) -> dict[str, Any]:
        """Score the generator on the val split; log it, and keep ``best.pt`` when it improves."""
        self.check_finite()  # NaN weights would give a meaningless score and a NaN best.pt
        result = self.scorer.score(self.model.generator)
        d = discriminator_gap(self.last_stats, getattr(self.cfg.model, "gan_mode", ""))
        if d is not None:
            result["collapse"].update(d)
        entry = {"iteration": self.iteration, "epoch": self.epoch, **result}
        metric = self.cfg.train.val_metric
        append_line(
            self.metrics_path,
            json.dumps({"iter": self.iteration, "epoch": self.epoch, "val": result, "time": time.time()}),
        )
        for k in ("fid", "kid"):
            self.writer.add_scalar(f"val/{k}", result[k], self.iteration)
        best = self.validation["best"]
        self.validation["final"] = entry
        if best is None or result[metric] < best[metric]:
            self.validation["best"] = entry
            # weights and config only: best.pt is for evaluation and translation, latest.pt for resuming
            ckpt_io.save_atomic(
                {k: v for k, v in self.state_dict().items() if k not in ("optimizers", "rng")},
                self.run_dir / "checkpoints" / "best.pt",
            )
        tqdm.write(
            f"validation at iteration {self.iteration}: FID {result['fid']:.2f}, KID {result['kid']:.4f}"
            + (" (best so far)" if self.validation["best"] is entry else ""),
            file=sys.stderr,
        )
        self._check_collapse(result["collapse"])
        self._emit("on_validation", entry)
        return entry

    def _check_collapse(self, stats: dict[str, Any]) -> None:
        """Flag (once) and optionally stop a run whose validation translations have collapsed.

        Not judged during the first epoch: a freshly initialised generator (weights of scale 0.02)
        outputs nearly constant grey images, which is where every run starts, not a collapse."""
        self.collapse["last"] = {"iteration": self.iteration, **stats}
        reason = judge_collapse(stats)
        if reason is None or self.epoch < 1:
            return
        action = collapse_action(self.cfg.train)
        said = {
            "warn": "training goes on; --on-collapse stop would end it here, --on-collapse restart roll it back",
            "stop": "stopping (--on-collapse stop)",
            "restart": "rolling back to the last healthy validation (--on-collapse restart)",
        }[action]
        if action == "restart" and not self.recovery.should_restart(self):
            action, said = "stop", f"stopping: {self.cfg.train.max_restarts} restart(s) used (train.max_restarts)"
        if self.collapse["collapsed_at"] is None:
            self.collapse.update(collapsed_at=self.iteration, reason=reason)
            saturated = " (the discriminator is saturated)" if stats.get("d_saturated") else ""
            tqdm.write(
                f"warning: the run collapsed at iteration {self.iteration}: {reason}{saturated}; {said}",
                file=sys.stderr,
            )
        if action != "warn":
            self.request_stop("collapsed" if action == "stop" else "restart")

    def _note_data_problems(self, raw: dict[str, Any]) -> None:
        """Report each unreadable file once, and images smaller than the crop with one warning."""
        for text in raw.get("skipped", []):
            for message in filter(None, text.split("\n")):  # one message per file: it names the file
                if message not in self.skipped:
                    self.skipped.append(message)
                    tqdm.write(f"warning: skipped unreadable file: {message}", file=sys.stderr)
        for text in raw.get("small", []):
            for path in filter(None, text.split("\n")):
                if not self.small:
                    tqdm.write(
                        f"warning: {path} is smaller than the {self.cfg.data.crop_size} px crop and is "
                        f"upscaled; further such images are counted in summary.json, not reported",
                        file=sys.stderr,
                    )
                if path not in self.small:
                    self.small.append(path)

    # ================================================================ outputs
    def _tensorboard(self, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - slow import: only when training

        return SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge_step)

    def save_sample(self) -> None:
        """Triptych real_A | fake_B | real_B: the last batch, or in single-image training the whole
        image A translated at full resolution (tiled if large) beside image B."""
        path = self.run_dir / "samples" / f"iter_{self.iteration:07d}.png"
        if self.single_images is not None:
            images, _ = self.single_images
            a = to_tensor(images["A"])[None]
            with eval_mode(self.model.generator) as G:
                fake = translate_any(G, a.to(self.device))
            b = to_tensor(images["B"].resize(images["A"].size, Image.BICUBIC))[None]
            save_image(triptych([a, fake, b]), path)
            return
        vis = self.model.visuals()
        if vis:
            save_image(triptych([vis["real_A"], vis["fake_B"], vis["real_B"]]), path)

    def _write_summary(self) -> dict[str, Any]:
        times = self.times
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
            "precision": self.cfg.train.precision,
            "step": self.step.name,
            # median over logged intervals; the first interval includes warm-up
            "sec_per_iter": statistics.median(times[1:] or times) if times else None,
            # steady state (after the first logged interval; the one-off peak for shorter runs)
            "peak_memory_bytes": self.memory.steady_bytes() or self.memory.oneoff_bytes(),
            "peak_memory_oneoff_bytes": self.memory.oneoff_bytes(),
            "memory_kind": self.memory.kind if self.memory.steady_bytes() else self.memory.oneoff_kind,
            "checkpoint": str(self.ckpt_path),
            "skipped_files": sorted(self.skipped),
            "images_smaller_than_crop": len(self.small),
            "validation": {"metric": self.cfg.train.val_metric, **self.validation}
            if self.cfg.train.val_every
            else None,
            "collapse": self.collapse if self.cfg.train.val_every else None,
            "restarts": self.recovery.restarts,
        }
        write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        return summary
