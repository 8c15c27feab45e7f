"""Translation methods. Each is an ``nn.Module`` with a ``config_class`` (its options), ``make_optimizers``,
``train_step(batch, step)``, ``generator`` and ``visuals``; the Trainer does everything else.
Methods are registered with their presets in :mod:`unpaired.methods`."""

from __future__ import annotations

from .cut import CUT, CUTConfig
from .cyclegan import CycleGAN, CycleGANConfig


def param_counts(model) -> dict[str, int]:
    """Parameters per network (top-level submodules that have any): G, D, F for CUT; G_A, G_B, D_A, D_B
    for CycleGAN."""
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    return {k: v for k, v in counts.items() if v}


__all__ = ["CUT", "CUTConfig", "CycleGAN", "CycleGANConfig", "param_counts"]
