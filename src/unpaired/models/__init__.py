"""Translation methods. Each is an ``nn.Module`` with ``make_optimizers``, ``train_step`` and
``translate``; the Trainer does everything else."""
from __future__ import annotations

from ..config import Config
from .cut import CUT
from .cyclegan import CycleGAN

MODELS = {"cut": CUT, "cut-focal": CUT, "fastcut": CUT, "fastcut-focal": CUT, "sincut": CUT, "sincut-focal": CUT,
          "cyclegan": CycleGAN}


def build_model(cfg: Config):
    """Instantiate the method named by ``cfg.model.name``."""
    try:
        cls = MODELS[cfg.model.name]
    except KeyError:
        raise ValueError(f"unknown model {cfg.model.name!r}; choose one of {', '.join(MODELS)}") from None
    return cls(cfg)


def param_counts(model) -> dict[str, int]:
    """Parameters per network (top-level submodules that have any): G, D, F for CUT; G_A, G_B, D_A, D_B
    for CycleGAN."""
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    return {k: v for k, v in counts.items() if v}


__all__ = ["CUT", "CycleGAN", "MODELS", "build_model", "param_counts"]
