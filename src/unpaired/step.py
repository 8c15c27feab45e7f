"""The training step: the one object the Trainer's loop calls each iteration.

A model's ``train_step(batch, step)`` computes its losses and hands each one to
``step.update(names, loss)``, which zeroes those optimizers' gradients, back-propagates (scaled
under fp16), averages gradients across processes (torchrun), records gradient norms and steps the
optimizers. A model therefore never calls ``optimizer.step()`` itself and cannot bypass loss
scaling or gradient averaging. A faster step (compiled, graph-captured) replaces :class:`TrainStep`
without touching the loop.

Everything returned stays on the device: the Trainer reads values only when it logs.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch.profiler import record_function

from .amp import Precision


class StepResult(NamedTuple):
    losses: dict[str, torch.Tensor]   # loss terms, detached (what metrics.jsonl lists under "loss")
    stats: dict[str, torch.Tensor]    # diagnostics: D outputs, gradient norms, PatchNCE probabilities


class LossScaler:
    """fp16 loss scaling (torch's GradScaler); a pass-through for fp32 and bf16."""

    def __init__(self, enabled: bool, device: torch.device):
        self.scaler = torch.amp.GradScaler(device.type) if enabled else None

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)  # skips the step when the scaled gradients overflowed
        else:
            optimizer.step()

    def update(self) -> None:
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def grad_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """L2 norm of all gradients together (0 when none), computed on the device without a sync."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=params[0].device if params else None)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())


class TrainStep:
    """Eager training step: ``step(batch) -> StepResult``; the interface models use during it:
    :meth:`autocast`, :meth:`update`, :meth:`record`."""

    name = "eager"

    def __init__(self, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer], precision: Precision,
                 average_gradients: Callable[[list[torch.nn.Parameter]], None] | None = None):
        """``average_gradients(params)``: under torchrun, all-reduces and averages their gradients."""
        self.model = model
        self.optimizers = optimizers
        self.precision = precision
        self.scaler = LossScaler(precision.needs_loss_scaling, precision.device)
        self.average_gradients = average_gradients
        self._params = {k: [p for g in o.param_groups for p in g["params"]] for k, o in optimizers.items()}
        self._stats: dict[str, torch.Tensor] = {}

    def __call__(self, batch: dict[str, torch.Tensor]) -> StepResult:
        self._stats = {}
        losses = self.model.train_step(batch, self)
        self.scaler.update()
        return StepResult({k: v.detach() for k, v in losses.items()}, self._stats)

    # ------------------------------------------------------------- used by models
    def autocast(self):
        """Context for forward passes at the run's precision."""
        return self.precision.autocast()

    def record(self, name: str, value: torch.Tensor) -> None:
        """Log a diagnostic scalar (a tensor; averaged over the logging interval, read without a sync)."""
        self._stats[name] = value.detach().float()

    def update(self, names: str | list[str], loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` into the networks of the optimizers ``names`` and step them."""
        names = [names] if isinstance(names, str) else list(names)
        label = "+".join(names)
        for n in names:
            self.optimizers[n].zero_grad(set_to_none=True)
        with record_function(f"{label}_backward"):
            self.scaler.scale(loss).backward()
        with record_function(f"{label}_optimizer"):
            for n in names:
                opt, params = self.optimizers[n], self._params[n]
                if self.average_gradients is not None:  # data-parallel: average gradients across processes
                    self.average_gradients(params)
                self.scaler.unscale(opt)
                self._stats[f"grad_norm_{n}"] = grad_norm(params)
                self.scaler.step(opt)

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scaler.load_state_dict(state)


def build_step(model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer], precision: Precision,
               mode: str = "auto", average_gradients: Callable[[list[torch.nn.Parameter]], None] | None = None,
               log=print) -> TrainStep:
    """The training step for ``train.compile`` = ``mode`` (auto | off | compile) on this device.
    ``log`` receives one line saying which step runs (and why, when a faster one could not be used)."""
    step = TrainStep(model, optimizers, precision, average_gradients)
    return step
