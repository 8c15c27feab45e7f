"""Translation methods. Each is an ``nn.Module`` with ``make_optimizers``, ``train_step`` and
``translate``; the Trainer does everything else."""
from __future__ import annotations

from ..config import Config
from .cut import CUT

MODELS = {"cut": CUT, "cut-focal": CUT, "fastcut": CUT, "fastcut-focal": CUT, "sincut": CUT, "sincut-focal": CUT}


def build_model(cfg: Config):
    """Instantiate the method named by ``cfg.model.name``."""
    try:
        cls = MODELS[cfg.model.name]
    except KeyError:
        raise ValueError(f"unknown model {cfg.model.name!r}; choose one of {', '.join(MODELS)}") from None
    return cls(cfg)


__all__ = ["CUT", "MODELS", "build_model"]
