"""Mixed precision for a train step: autocast, loss scaling and optimizer steps in one object.

Models call ``amp.autocast()``, ``amp.backward(loss)`` and ``amp.step(optimizer)`` and so stay
ignorant of the device and the precision the Trainer chose.
"""
from __future__ import annotations

import contextlib

import torch

from .config import ConfigError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, mode: str, device: torch.device):
        if mode not in DTYPES:
            raise ValueError(f"precision must be one of {', '.join(DTYPES)}, got {mode!r}")
        if mode == "fp16" and device.type not in ("cuda", "mps"):
            raise ConfigError("fp16 training needs a GPU (loss scaling is a CUDA feature); "
                             "use --precision bf16 on the CPU")
        self.mode = mode
        self.device = device
        self.dtype = DTYPES[mode]
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none
        self.scaler = torch.amp.GradScaler(device.type) if mode == "fp16" and device.type == "cuda" else None
        self.grad_sync = None  # set by the Trainer under torchrun: a function of a list of parameters

    def autocast(self):
        if self.mode == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.grad_sync is not None:  # data-parallel training: average gradients across processes
            self.grad_sync([p for g in optimizer.param_groups for p in g["params"]])
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Call once per iteration, after all optimizer steps."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
