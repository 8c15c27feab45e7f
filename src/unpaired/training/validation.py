"""Validation during training: FID/KID of the generator on the val split when due, which entry is the
best so far (the Trainer keeps ``best.pt`` for it), and the collapse check."""

from __future__ import annotations

from typing import Any

import torch

from ..config import Config
from ..evaluate import SplitScorer
from ..metrics.collapse import discriminator_gap
from ..metrics.collapse import judge as judge_collapse
from .logging import note
from .recovery import Recovery, collapse_action


class Validator:
    """Scores and judges validations; ``state`` ({"best", "final"} entries) and ``collapse``
    ({"collapsed_at", "reason", "last"}) go into checkpoints and summary.json."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.scorer: SplitScorer | None = None
        self.state: dict[str, Any] = {"best": None, "final": None}
        self.collapse: dict[str, Any] = {"collapsed_at": None, "reason": None, "last": None}

    def restore(self, state: dict[str, Any]) -> None:
        """From a checkpoint's entries (runs saved without them start afresh)."""
        self.state = state.get("validation", self.state)
        self.collapse = state.get("collapse", self.collapse)

    def start(self, device: torch.device) -> None:
        """Read the val split (and its real features) if this run validates (rank 0 only)."""
        tc = self.cfg.train
        if tc.val_every:
            self.scorer = SplitScorer(
                self.cfg.data.root, "val", self.cfg.data.channels, self.cfg.data.crop_size, str(device), tc.val_num
            )

    def due(self, iteration: int, epoch: int, epoch_ended: bool) -> bool:
        tc = self.cfg.train
        if self.scorer is None:
            return False
        if tc.val_unit == "iter":
            return iteration % tc.val_every == 0
        return epoch_ended and epoch % tc.val_every == 0

    def final_due(self, iteration: int) -> bool:
        """Whether the run ends without a validation of its last iteration (whatever the interval)."""
        last = self.state["final"]
        return self.scorer is not None and (last is None or last["iteration"] != iteration)

    def score(self, generator: torch.nn.Module, iteration: int, epoch: int, last_stats: dict[str, float]) -> dict:
        """The entry {"iteration", "epoch", "fid", "kid", "collapse", ...}; it becomes the final one,
        and the best one when ``train.val_metric`` improved (``state["best"] is entry``)."""
        result = self.scorer.score(generator)
        d = discriminator_gap(last_stats, getattr(self.cfg.model, "gan_mode", ""))
        if d is not None:
            result["collapse"].update(d)
        entry = {"iteration": iteration, "epoch": epoch, **result}
        metric, best = self.cfg.train.val_metric, self.state["best"]
        self.state["final"] = entry
        if best is None or result[metric] < best[metric]:
            self.state["best"] = entry
        return entry

    def judge(self, entry: dict[str, Any], recovery: Recovery) -> str:
        """Say the scores; flag (once) a run whose translations have collapsed. Returns what to do:
        warn (go on), stop or restart (``train.on_collapse``; a restart only while ``recovery`` has
        one left, else stop).

        Not judged during the first epoch: a freshly initialised generator (weights of scale 0.02)
        outputs nearly constant grey images, which is where every run starts, not a collapse."""
        iteration, stats = entry["iteration"], entry["collapse"]
        note(
            f"validation at iteration {iteration}: FID {entry['fid']:.2f}, KID {entry['kid']:.4f}"
            + (" (best so far)" if self.state["best"] is entry else "")
        )
        self.collapse["last"] = {"iteration": iteration, **stats}
        reason = judge_collapse(stats)
        if reason is None or entry["epoch"] < 1:
            return "warn"
        action = collapse_action(self.cfg.train)
        said = {
            "warn": "training goes on; --on-collapse stop would end it here, --on-collapse restart roll it back",
            "stop": "stopping (--on-collapse stop)",
            "restart": "rolling back to the last healthy validation (--on-collapse restart)",
        }[action]
        if action == "restart" and not recovery.can_restart(self.cfg.train):
            action, said = "stop", f"stopping: {self.cfg.train.max_restarts} restart(s) used (train.max_restarts)"
        if self.collapse["collapsed_at"] is None:
            self.collapse.update(collapsed_at=iteration, reason=reason)
            saturated = " (the discriminator is saturated)" if stats.get("d_saturated") else ""
            note(f"warning: the run collapsed at iteration {iteration}: {reason}{saturated}; {said}")
        return action
