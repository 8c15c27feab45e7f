"""Translation methods. Each is an ``nn.Module`` with a ``config_class`` (its options), ``make_optimizers``,
``train_step(batch, step)``, ``generator`` and ``visuals``; the Trainer does everything else.
Methods are registered with their presets in :mod:`unpaired.methods`."""
from __future__ import annotations

from ..config import Config
from .cut import CUT, CUTConfig
from .cyclegan import CycleGAN, CycleGANConfig


def build_model(cfg: Config):
    """Instantiate the method named by ``cfg.model.name`` for the configured channels and crop size."""
    from ..methods import get_method

    return get_method(cfg.model.name).model(cfg.model, channels=cfg.data.channels, crop_size=cfg.data.crop_size)


def build_generator(cfg: Config):
    """The method's A->B generator alone (for translation and export), untrained."""
    from ..methods import get_method

    return get_method(cfg.model.name).model.build_generator(cfg.model, cfg.data.channels, cfg.data.crop_size)


def param_counts(model) -> dict[str, int]:
    """Parameters per network (top-level submodules that have any): G, D, F for CUT; G_A, G_B, D_A, D_B
    for CycleGAN."""
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    return {k: v for k, v in counts.items() if v}


__all__ = ["CUT", "CUTConfig", "CycleGAN", "CycleGANConfig", "build_model", "build_generator", "param_counts"]
