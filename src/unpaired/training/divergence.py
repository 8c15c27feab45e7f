"""Divergence: a loss or a weight that became NaN or infinite stops training before anything is saved."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..config import Config
from ..errors import UnpairedError


class TrainingDiverged(UnpairedError, RuntimeError):
    """A loss or the weights became NaN or infinite; nothing non-finite was saved. The message names
    the loss (or tensor) and the iteration, and what to try."""


def diverged(what: str, cfg: Config, checkpoint: Path, saved_iteration: int | None) -> TrainingDiverged:
    """The error for ``what`` went wrong, saying which checkpoint is still good and what to try."""
    kept = (
        f"{checkpoint} still holds iteration {saved_iteration}, the last good one"
        if saved_iteration is not None
        else "no checkpoint had been written"
    )
    fp32 = ", in fp32 (--precision fp32)" if cfg.train.precision != "fp32" else ""
    return TrainingDiverged(
        f"training diverged: {what}; stopped without saving ({kept}). Start again in a new "
        f"--out with a lower learning rate (now {cfg.train.lr:g}; --set train.lr=...){fp32}, "
        f"or check the data"
    )


def non_finite_losses(losses: dict[str, float]) -> str | None:
    """'loss nce = nan' or 'losses G = inf, D = nan' for the non-finite values, None if all are finite."""
    bad = [(k, v) for k, v in losses.items() if not math.isfinite(v)]
    if not bad:
        return None
    return ("loss " if len(bad) == 1 else "losses ") + ", ".join(f"{k} = {v}" for k, v in bad)


def non_finite_sums(loss_sums: dict[str, torch.Tensor]) -> str | None:
    """:func:`non_finite_losses` of losses summed on the device (one device read for all of them)."""
    if not loss_sums:
        return None
    finite = torch.stack([torch.isfinite(v).all() for v in loss_sums.values()]).cpu()
    if bool(finite.all()):
        return None
    return non_finite_losses({k: float(loss_sums[k]) for k, ok in zip(loss_sums, finite.tolist()) if not ok})


def non_finite_weight(model: torch.nn.Module) -> str | None:
    """The name of the model's first floating-point tensor (weight or buffer) that holds a NaN or an
    infinity, None when all are finite (one device read)."""
    weights = [(k, t) for k, t in model.state_dict().items() if torch.is_tensor(t) and t.is_floating_point()]
    finite = torch.stack([torch.isfinite(t).all() for _, t in weights]).cpu()
    if bool(finite.all()):
        return None
    return weights[int((~finite).nonzero()[0])][0]
