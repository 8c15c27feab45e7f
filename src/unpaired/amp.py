"""Mixed precision: which dtype autocast uses, and where each mode is allowed.

Loss scaling (fp16) lives in :class:`unpaired.step.LossScaler`; this module only decides the
autocast dtype, so that a model's forward code reads ``with step.autocast():`` whatever the device.
"""

from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(mode: str, device: torch.device):
    """The autocast context of precision ``mode`` on ``device`` (none for fp32), for training and inference."""
    if mode == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[mode])


class Precision:
    def __init__(self, mode: str, device: torch.device):
        if mode not in DTYPES:
            raise ValueError(f"precision must be one of {', '.join(DTYPES)}, got {mode!r}")
        if mode == "fp16" and device.type != "cuda":
            # fp16 gradients underflow without loss scaling, and torch's GradScaler is a CUDA feature
            raise ConfigError(f"fp16 training needs a CUDA GPU (loss scaling); on {device.type} use --precision bf16")
        self.mode = mode
        self.device = device
        self.dtype = DTYPES[mode]

    @property
    def needs_loss_scaling(self) -> bool:
        # bf16 has fp32's exponent range and needs none
        return self.mode == "fp16"

    def autocast(self):
        return autocast(self.mode, self.device)
