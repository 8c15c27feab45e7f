"""The Trainer: owns devices, precision, the data loader, LR schedules, logging and checkpoints.

A run lives in one folder::

    RUN_DIR/config.yaml            resolved configuration
    RUN_DIR/checkpoints/latest.pt  everything needed to resume exactly
    RUN_DIR/metrics.jsonl          one JSON object per logged iteration
    RUN_DIR/tensorboard/           the same scalars for TensorBoard
    RUN_DIR/samples/*.png          triptychs real_A | fake_B | real_B
    RUN_DIR/summary.json           written when the run stops

Running the same command on the same folder resumes from ``latest.pt``.
"""
from __future__ import annotations

import json
import random
import signal
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from . import distributed
from .amp import Precision
from .config import RUNTIME_FIELDS, Config, ConfigError, diff, save_yaml
from .data import SingleImageDataset
from .data.images import save_image, to_tensor, triptych
from .data.loading import batches_per_epoch, training_dataset, training_loader
from .metrics.profile import peak_memory_bytes
from .models import build_model, param_counts
from .translate import eval_mode, translate_any


def select_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but this PyTorch sees no CUDA GPU; use --device cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {name!r} was asked for but MPS is not available; use --device cpu or auto")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def linear_decay(n_epochs: int, n_epochs_decay: int):
    """The reference's 'linear' policy: 1 for n_epochs epochs, then linearly to 0 over the decay."""
    return lambda epoch: 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


@contextmanager
def graceful_interrupt():
    """First Ctrl-C asks the loop to stop after the current iteration (and save); a second one aborts."""
    flag = {"stop": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True
        tqdm.write("Interrupted: finishing this iteration and saving a checkpoint (Ctrl-C again to abort).", file=sys.stderr)

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
        previous = None
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class Trainer:
    """Train ``cfg`` into ``run_dir``, resuming from its latest checkpoint if there is one."""

    def __init__(self, cfg: Config, run_dir: str | Path, show_progress: bool = True, on_validation=None):
        """``on_validation(entry) -> bool`` is called after each validation (e.g. by a sweep, to report
        it); returning True stops training there, with a checkpoint (a pruned trial)."""
        self.cfg = cfg
        self.on_validation = on_validation
        self.stopped_by_callback = False
        self.run_dir = Path(run_dir)
        self.show_progress = show_progress
        self.ckpt_path = self.run_dir / "checkpoints" / "latest.pt"
        self.metrics_path = self.run_dir / "metrics.jsonl"

    # ----------------------------------------------------------------- setup
    def _check_resume(self) -> dict[str, Any] | None:
        if not self.ckpt_path.exists():
            return None
        state = ckpt_io.load(self.ckpt_path)
        saved = Config.from_dict(state["config"])
        changes = diff(saved, self.cfg, ignore=RUNTIME_FIELDS)
        if changes:
            raise ConfigError(
                f"{self.run_dir} already holds a run with a different configuration:\n  "
                + "\n  ".join(changes)
                + "\nResume it with the same settings, or choose a new --out folder.")
        if saved.data.root != self.cfg.data.root:
            tqdm.write(f"note: data folder changed from {saved.data.root} to {self.cfg.data.root}", file=sys.stderr)
        return state

    def _truncate_metrics(self, iteration: int) -> None:
        """Drop log lines written after the checkpoint we resume from, so none appear twice."""
        if not self.metrics_path.exists():
            return
        kept = [line for line in self.metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line).get("iter", 0) <= iteration]
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(self.metrics_path)

    def _state(self) -> dict[str, Any]:
        return {
            "format": ckpt_io.FORMAT_VERSION,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.amp.state_dict(),
            "progress": {"epoch": self.epoch, "batch": self.batch, "iteration": self.iteration},
            "rng": ckpt_io.rng_state(),
            "data_problems": {"skipped": self.skipped},
            "validation": self.validation,
            "saved_at": time.time(),
        }

    def save(self) -> None:
        ckpt_io.save_atomic(self._state(), self.ckpt_path)

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        cfg, tc = self.cfg, self.cfg.train
        state = self._check_resume()
        self.dist, device_name = distributed.setup(tc.device)
        main = self.dist.is_main
        self.device = select_device(device_name)
        if self.device.type == "cuda":
            # fixed input sizes: let cuDNN pick the fastest kernels (bitwise determinism is a CPU promise)
            torch.backends.cudnn.benchmark = True
        self.amp = Precision(tc.precision, self.device)
        if cfg.train.val_every and cfg.data.mode == "single":
            raise ConfigError("validation needs a val split; single-image training has none (set --val-every 0)")
        dataset = training_dataset(cfg, self.dist.rank)
        # only now that the settings and data are known to be usable does the run folder appear
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(cfg, self.run_dir / "config.yaml")

        seed_everything(tc.seed)
        self.model = build_model(cfg).to(self.device)
        if self.dist.enabled:
            distributed.broadcast_module(self.model)
            self.amp.grad_sync = distributed.average_gradients
        self.optimizers = self.model.make_optimizers(tc.lr, (tc.beta1, tc.beta2), tc.adam_eps)
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, linear_decay(tc.epochs, tc.epochs_decay))
                           for k, o in self.optimizers.items()}
        self.epoch = self.batch = self.iteration = 0
        self.validation: dict[str, Any] = {"best": None, "final": None}
        self.skipped: list[str] = []        # messages about unreadable files, each reported once
        self.small: list[str] = []          # images smaller than the crop (upscaled)
        if state is not None:
            self.model.load_state_dict(state["model"])
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            for k, s in self.schedulers.items():
                s.load_state_dict(state["schedulers"][k])
            self.amp.load_state_dict(state["scaler"])
            p = state["progress"]
            self.epoch, self.batch, self.iteration = p["epoch"], p["batch"], p["iteration"]
            self.skipped, self.small = list(state.get("data_problems", {}).get("skipped", [])), []
            self.validation = state.get("validation", self.validation)
            ckpt_io.set_rng_state(state["rng"])
        if main:
            self._truncate_metrics(self.iteration)  # also clears lines of a run that crashed before its first save

        per_epoch = batches_per_epoch(cfg, dataset, self.dist.world)
        total = per_epoch * (tc.epochs + tc.epochs_decay)
        stop_at = min(total, tc.iters) if tc.iters else total
        params = param_counts(self.model)
        if self.iteration >= stop_at:
            if not main:
                return {"rank": self.dist.rank, "iteration": self.iteration}
            tqdm.write(f"{self.run_dir}: already at iteration {self.iteration} of {stop_at}; nothing to do "
                       f"(raise --iters or --epochs to train further)", file=sys.stderr)
            return self._write_summary(params, [], stop_at, total)

        loader = training_loader(cfg, dataset, self.epoch, self.batch, self.device.type == "cuda",
                                 self.dist.rank, self.dist.world)
        self.single_images = (dataset.images, dataset.paths) if isinstance(dataset, SingleImageDataset) else None
        # rank 0 alone validates, logs, samples and saves; the others only train
        self.scorer = self._make_scorer() if main else None
        writer = self._tensorboard(purge_step=self.iteration) if main else None
        times: list[float] = []
        sums: dict[str, torch.Tensor] = {}
        n_sum = 0
        self.model.train()
        bar = tqdm(total=stop_at, initial=self.iteration, desc=f"{cfg.model.name}", unit="it",
                   disable=not (self.show_progress and main), dynamic_ncols=True)
        batches = iter(loader)
        t_last = time.perf_counter()
        try:
            with graceful_interrupt() as interrupt:
                while self.iteration < stop_at and not distributed.any_across(interrupt["stop"] or self.stopped_by_callback):
                    raw = next(batches)
                    if main:
                        self._note_data_problems(raw)
                    batch = {k: v.to(self.device, non_blocking=True) for k, v in raw.items() if torch.is_tensor(v)}
                    losses = self.model.train_step(batch, self.optimizers, self.amp)
                    self.amp.update()
                    for k, v in losses.items():
                        sums[k] = sums[k] + v if k in sums else v.clone()
                    n_sum += 1
                    self.iteration += 1
                    self.batch += 1
                    epoch_ended = self.batch == per_epoch
                    if epoch_ended:  # the reference steps LR once per epoch
                        self.epoch, self.batch = self.epoch + 1, 0
                        for s in self.schedulers.values():
                            s.step()
                    bar.update(1)
                    if self.iteration % tc.log_every == 0 or self.iteration == stop_at:
                        now = time.perf_counter()
                        # float() syncs the device; under torchrun the log shows the mean over processes
                        means = distributed.mean_across({k: float(v) / n_sum for k, v in sums.items()})
                        sec = (now - t_last) / n_sum
                        times.append(sec)
                        if main:
                            self._log(writer, means, sec)
                        bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()}, refresh=False)
                        sums, n_sum, t_last = {}, 0, time.perf_counter()
                    if main and tc.sample_every and self.iteration % tc.sample_every == 0:
                        self.save_sample()
                    if self.scorer is not None and self._validation_due(epoch_ended):
                        self.validate(writer)
                    if main and tc.save_every and self.iteration % tc.save_every == 0 and self.iteration < stop_at:
                        self.save()
            last = self.validation["final"]
            if self.scorer is not None and not self.stopped_by_callback and (
                    last is None or last["iteration"] != self.iteration):
                self.validate(writer)  # the final value, whatever the interval
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        if not main:
            distributed.barrier()  # wait for rank 0's final checkpoint
            return {"rank": self.dist.rank, "iteration": self.iteration}
        self.save()
        if tc.sample_every:
            self.save_sample()
        summary = self._write_summary(params, times, stop_at, total)
        if self.dist.enabled:
            distributed.barrier()
        return summary

    # ------------------------------------------------------------ validation
    def _make_scorer(self):
        tc = self.cfg.train
        if not tc.val_every:
            return None
        from .evaluate import SplitScorer

        return SplitScorer(self.cfg.data.root, "val", self.cfg.data.channels, self.cfg.data.crop_size,
                           str(self.device), tc.val_num)

    def _validation_due(self, epoch_ended: bool) -> bool:
        tc = self.cfg.train
        if tc.val_unit == "iter":
            return self.iteration % tc.val_every == 0
        return epoch_ended and self.epoch % tc.val_every == 0

    def validate(self, writer) -> dict[str, Any]:
        """Score the generator on the val split; log it, and keep ``best.pt`` when it improves."""
        result = self.scorer.score(self.model.generator)
        entry = {"iteration": self.iteration, "epoch": self.epoch, **result}
        metric = self.cfg.train.val_metric
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps({"iter": self.iteration, "epoch": self.epoch, "val": result, "time": time.time()}) + "\n")
        for k in ("fid", "kid"):
            writer.add_scalar(f"val/{k}", result[k], self.iteration)
        best = self.validation["best"]
        self.validation["final"] = entry
        if best is None or result[metric] < best[metric]:
            self.validation["best"] = entry
            # weights and config only: best.pt is for evaluation and translation, latest.pt for resuming
            ckpt_io.save_atomic({k: v for k, v in self._state().items() if k not in ("optimizers", "rng")},
                                self.run_dir / "checkpoints" / "best.pt")
        tqdm.write(f"validation at iteration {self.iteration}: FID {result['fid']:.2f}, KID {result['kid']:.4f}"
                   + (" (best so far)" if self.validation["best"] is entry else ""), file=sys.stderr)
        if self.on_validation is not None and self.on_validation(entry):
            self.stopped_by_callback = True
        return entry

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
                    tqdm.write(f"warning: {path} is smaller than the {self.cfg.data.crop_size} px crop and is "
                               f"upscaled; further such images are counted in summary.json, not reported",
                               file=sys.stderr)
                if path not in self.small:
                    self.small.append(path)

    # -------------------------------------------------------------- outputs
    def _tensorboard(self, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter  # slow import: only when training

        return SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge_step)

    def _log(self, writer, losses: dict[str, float], sec_per_iter: float) -> None:
        lr = self.optimizers["G"].param_groups[0]["lr"]
        record = {"iter": self.iteration, "epoch": self.epoch, "lr": lr, "sec_per_iter": sec_per_iter,
                  "loss": losses, "time": time.time()}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        for k, v in losses.items():
            writer.add_scalar(f"loss/{k}", v, self.iteration)
        writer.add_scalar("train/lr", lr, self.iteration)
        writer.add_scalar("train/sec_per_iter", sec_per_iter, self.iteration)

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

    def _write_summary(self, params: dict[str, int], times: list[float], stop_at: int, total: int) -> dict[str, Any]:
        summary = {
            "model": self.cfg.model.name,
            "iteration": self.iteration,
            "epoch": self.epoch,
            "total_iterations": total,
            "finished": self.iteration >= total,
            "params": params,
            "device": str(self.device),
            "processes": self.dist.world,
            "stopped_by_callback": self.stopped_by_callback,
            "precision": self.cfg.train.precision,
            # median over logged intervals; the first interval includes warm-up
            "sec_per_iter": statistics.median(times[1:] or times) if times else None,
            "peak_memory_bytes": peak_memory_bytes(self.device),
            "checkpoint": str(self.ckpt_path),
            "skipped_files": sorted(self.skipped),
            "images_smaller_than_crop": len(self.small),
            "validation": {"metric": self.cfg.train.val_metric, **self.validation} if self.cfg.train.val_every else None,
        }
        tmp = self.run_dir / ".summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2))
        tmp.replace(self.run_dir / "summary.json")
        return summary
