"""What a training run reports as it goes: metrics.jsonl, TensorBoard and the progress bar (rank 0),
samples, and warnings about the data. :class:`MetricsLogger` also keeps the sums of the step's
scalars that every process averages at each log."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data import SingleImageDataset
from ..data.images import save_image, skipped_summary, to_tensor, triptych
from ..files import append_line
from ..runs import RunFolder
from ..tiling import eval_mode, translate_any
from . import distributed
from .step import StepResult


def note(line: str) -> None:
    """A line on stderr that does not break the progress bar."""
    tqdm.write(line, file=sys.stderr)


def _tensorboard(folder: Path, purge_step: int):
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - slow import: only when training

    return SummaryWriter(str(folder), purge_step=purge_step)


class MetricsLogger:
    """Sums the step's losses and stats on the device (no sync per step); every ``log_every``
    iterations :meth:`interval` averages them (over the interval and the processes) into a
    metrics.jsonl record. Rank 0 also writes TensorBoard scalars and shows the progress bar."""

    def __init__(self, run: RunFolder, main: bool):
        self.run, self.main = run, main
        self.sums: dict[str, dict[str, torch.Tensor]] = {"loss": {}, "stats": {}}
        self.n = 0  # iterations summed
        self.times: list[float] = []  # seconds per iteration of each logged interval
        self.last_stats: dict[str, float] = {}  # diagnostics of the last logged interval
        self.writer = self.bar = None
        self._t_last = time.perf_counter()

    def resume(self, iteration: int) -> None:
        """Drop the metrics.jsonl records after ``iteration`` (rank 0): they are about to be logged again.
        Also clears lines of a run that crashed before its first save."""
        torn = self.run.truncate_metrics(iteration)
        if torn:
            note(f"note: {self.run.metrics}: dropped {torn} damaged line(s) (a write that was killed)")

    def open(self, iteration: int, total: int, desc: str, show_progress: bool) -> None:
        """TensorBoard (from ``iteration`` on) and the progress bar; the first interval starts now."""
        self.writer = _tensorboard(self.run.tensorboard, purge_step=iteration) if self.main else None
        self.bar = tqdm(
            total=total,
            initial=iteration,
            desc=desc,
            unit="it",
            disable=not (show_progress and self.main),
            dynamic_ncols=True,
        )
        self._t_last = time.perf_counter()

    def add(self, result: StepResult) -> None:
        """Count one iteration: its scalars are summed on the device and read only when logged."""
        for group, values in (("loss", result.losses), ("stats", result.stats)):
            sums = self.sums[group]
            for k, v in values.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
        self.n += 1
        self.bar.update(1)

    def interval(self, iteration: int, epoch: int, lr: float) -> dict[str, Any]:
        """The record of the iterations since the last one, appended to metrics.jsonl (rank 0)."""
        now = time.perf_counter()
        n = self.n
        # float() syncs the device: once per log_every iterations; under torchrun, means over processes
        means = {
            group: distributed.mean_across({k: float(v) / n for k, v in sums.items()})
            for group, sums in self.sums.items()
        }
        sec = (now - self._t_last) / n
        self.times.append(sec)
        record = {
            "iter": iteration,
            "epoch": epoch,
            "lr": lr,
            "sec_per_iter": sec,
            "loss": means["loss"],
            "stats": means["stats"],
            "time": time.time(),
        }
        self.last_stats = means["stats"]
        if self.main:
            append_line(self.run.metrics, json.dumps(record))
        return record

    def scalars(self, record: dict[str, Any]) -> None:
        """The record's values in TensorBoard (rank 0)."""
        for group in ("loss", "stats"):
            for k, v in record[group].items():
                self.writer.add_scalar(f"{group}/{k}", v, record["iter"])
        self.writer.add_scalar("train/lr", record["lr"], record["iter"])
        self.writer.add_scalar("train/sec_per_iter", record["sec_per_iter"], record["iter"])

    def next_interval(self, record: dict[str, Any]) -> None:
        """Show the record's losses on the bar and start summing the next interval."""
        self.sums, self.n, self._t_last = {"loss": {}, "stats": {}}, 0, time.perf_counter()
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in record["loss"].items()}, refresh=False)

    def validation(self, entry: dict[str, Any]) -> None:
        """A validation's entry in metrics.jsonl (its scores under "val") and TensorBoard (rank 0)."""
        iteration, epoch = entry["iteration"], entry["epoch"]
        result = {k: v for k, v in entry.items() if k not in ("iteration", "epoch")}
        append_line(
            self.run.metrics, json.dumps({"iter": iteration, "epoch": epoch, "val": result, "time": time.time()})
        )
        for k in ("fid", "kid"):
            self.writer.add_scalar(f"val/{k}", result[k], iteration)

    def sec_per_iter(self) -> float | None:
        """Median over the logged intervals, leaving out the first (warm-up) when there are more."""
        return statistics.median(self.times[1:] or self.times) if self.times else None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


class DataProblems:
    """Unreadable files (each reported once, kept in checkpoints) and images smaller than the crop
    (one warning, then counted), as the loader's workers find them."""

    def __init__(self, crop_size: int, skipped: list[str] | None = None):
        self.crop_size = crop_size
        self.skipped: list[str] = list(skipped or [])
        self.small: list[str] = []

    @staticmethod
    def warn_skipped_entries(dataset: Any) -> None:
        """One warning for the entries the listing rule skipped in the training folders."""
        skipped = getattr(dataset, "skipped_entries", [])  # a dataset passed in may lack them
        if skipped:
            note(
                f"warning: {skipped_summary(skipped, 'of the training folders')}: skipped ('unpaired data "
                f"check' lists them; --strict refuses them)"
            )

    def note(self, raw: dict[str, Any]) -> None:
        """Take the problems a batch from the loader carries."""
        for text in raw.get("skipped", []):
            for message in filter(None, text.split("\n")):  # one message per file: it names the file
                if message not in self.skipped:
                    self.skipped.append(message)
                    note(f"warning: skipped unreadable file: {message}")
        for text in raw.get("small", []):
            for path in filter(None, text.split("\n")):
                if not self.small:
                    note(
                        f"warning: {path} is smaller than the {self.crop_size} px crop and is "
                        f"upscaled; further such images are counted in summary.json, not reported"
                    )
                if path not in self.small:
                    self.small.append(path)


def save_sample(path: Path, model: torch.nn.Module, dataset: Any, device: torch.device) -> None:
    """Triptych real_A | fake_B | real_B: the last batch, or in single-image training the whole
    image A translated at full resolution (tiled if large) beside image B."""
    if isinstance(dataset, SingleImageDataset):
        images = dataset.images
        a = to_tensor(images["A"])[None]
        with eval_mode(model.generator) as G:
            fake = translate_any(G, a.to(device))
        b = to_tensor(images["B"].resize(images["A"].size, Image.BICUBIC))[None]
        save_image(triptych([a, fake, b]), path)
        return
    vis = model.visuals()
    if vis:
        save_image(triptych([vis["real_A"], vis["fake_B"], vis["real_B"]]), path)
