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

import copy
from typing import Callable, NamedTuple

import torch
from torch.profiler import record_function

from .. import checkpoint as ckpt_io
from ..amp import Precision
from ..errors import ConfigError, one_line


class StepResult(NamedTuple):
    losses: dict[str, torch.Tensor]  # loss terms, detached (what metrics.jsonl lists under "loss")
    stats: dict[str, torch.Tensor]  # diagnostics: D outputs, gradient norms, PatchNCE probabilities


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

    def __init__(
        self,
        model: torch.nn.Module,
        optimizers: dict[str, torch.optim.Optimizer],
        precision: Precision,
        average_gradients: Callable[[list[torch.nn.Parameter]], None] | None = None,
    ):
        """``average_gradients(params)``: under torchrun, all-reduces and averages their gradients."""
        self.model = model
        self.optimizers = optimizers
        self.precision = precision
        self.scaler = LossScaler(precision.needs_loss_scaling, precision.device)
        self.average_gradients = average_gradients
        self._params = {k: [p for g in o.param_groups for p in g["params"]] for k, o in optimizers.items()}
        self._stats: dict[str, torch.Tensor] = {}

    def __call__(self, batch: dict[str, torch.Tensor], **draws) -> StepResult:
        """One training step on ``batch``; ``draws`` go to the model's ``train_step`` (random draws
        given instead of drawn, e.g. CUT's ``flipped`` and ``patch_ids``)."""
        self._stats = {}
        losses = self.model.train_step(batch, self, **draws)
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


# the methods through which models call their networks (generators: whole pass, PatchNCE taps)
COMPILED_METHODS = ("forward", "encode", "forward_with_features")


def compile_networks(model: torch.nn.Module, **options) -> tuple[list[str], dict[str, str]]:
    """``torch.compile`` the networks of a model in place (state dict keys are unchanged): each
    trainable child's ``forward`` and, for generators, ``encode`` / ``forward_with_features``.
    Returns the names of the compiled networks, and those left eager with why."""
    # torch.compile's autograd (aot_autograd) has no double backward: a network whose gradient is
    # differentiated again (R1) must run eagerly, or the whole compiled step fails on its first call
    eager = dict(getattr(model, "twice_differentiated", {}))
    compiled = []
    for name, net in model.named_children():
        if not any(p.requires_grad for p in net.parameters()) or name == "F" or name in eager:
            continue  # loss modules; F is a few small MLPs around randperm and gathers: nothing to fuse
        for method in COMPILED_METHODS:
            if hasattr(net, method):
                own = getattr(net, method)
                setattr(net, method, _in_training(net, own, torch.compile(own, **options)))
        compiled.append(name)
    return compiled, eager


def _in_training(net: torch.nn.Module, eager: Callable, compiled: Callable) -> Callable:
    """``compiled`` while ``net`` is in training mode (the step), ``eager`` in eval mode: samples and
    validation translate whole images and tiles of many sizes, and SinCUT's tiles pass their origin
    as Python ints, each of which would be a recompilation (minutes per sample on a CPU)."""

    def call(*args, **kwargs):
        return (compiled if net.training else eager)(*args, **kwargs)

    return call


class CompiledStep(TrainStep):
    """The eager step with the networks compiled by ``torch.compile`` (inductor): fused elementwise
    kernels around the convolutions. Random ops keep PyTorch's generators (``fallback_random``), so
    the sequence of random numbers, and with it exact resume, is that of the eager step; the values
    agree with it to float rounding.

    Compilation happens during the first step. Should it fail, the networks, optimizers and RNG
    are put back as they were before that step, one line says why, and training goes on eagerly."""

    def __init__(self, *args, log=print, cuda_graphs: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        import torch._inductor.config as inductor_config  # noqa: PLC0415 - slow import, compiled steps only

        inductor_config.fallback_random = True
        self.log = log
        self.name = "cudagraphs" if cuda_graphs else "compile"
        self._originals = {
            name: {m: net.__dict__.get(m) for m in COMPILED_METHODS} for name, net in self.model.named_children()
        }
        # reduce-overhead: each compiled forward and backward is replayed as a CUDA graph (one launch)
        self.compiled, self.left_eager = compile_networks(
            self.model, **({"mode": "reduce-overhead"} if cuda_graphs else {})
        )
        self._first = True

    def __call__(self, batch: dict[str, torch.Tensor], **draws) -> StepResult:
        if not self._first:
            return super().__call__(batch, **draws)
        saved = (
            copy.deepcopy(self.model.state_dict()),
            copy.deepcopy({k: o.state_dict() for k, o in self.optimizers.items()}),
            ckpt_io.rng_state(),
        )
        try:
            result = super().__call__(batch, **draws)
        except Exception as e:  # noqa: BLE001 - any compiler failure: fall back, saying so
            self.model.load_state_dict(saved[0])
            for k, o in self.optimizers.items():
                o.load_state_dict(saved[1][k])
            ckpt_io.set_rng_state(saved[2])
            self._uncompile()
            self.log(f"step: torch.compile failed ({one_line(e)}); training with the eager step instead")
            result = super().__call__(batch, **draws)
        self._first = False
        return result

    def _uncompile(self) -> None:
        for name, net in self.model.named_children():
            for method, original in self._originals.get(name, {}).items():
                if original is None:
                    net.__dict__.pop(method, None)
                else:
                    setattr(net, method, original)
        self.name, self.compiled, self.left_eager = "eager", [], {}


def choose_mode(mode: str, device: torch.device) -> tuple[str, str]:
    """The step mode ``auto`` stands for on this device, and why."""
    if mode != "auto":
        return mode, "asked for"
    # auto picks a compiled mode only where a measurement showed it faster than eager and equal to
    # it on that device class; none has yet (docs/measured/speed.md), so it is the eager step everywhere
    if device.type == "cpu":
        return "off", (
            "auto on cpu: compiling costs minutes of start-up for no faster step on CPUs (docs/measured/speed.md)"
        )
    return "off", (
        f"auto on {device.type}: no measurement on this device class has shown a compiled step faster than "
        f"and equal to the eager one yet (benchmarks/gpu_check.sh)"
    )


def build_step(
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    precision: Precision,
    mode: str = "auto",
    average_gradients: Callable[[list[torch.nn.Parameter]], None] | None = None,
    log=print,
) -> TrainStep:
    """The training step for ``train.compile`` = ``mode`` (auto | off | compile | cudagraphs) on this
    device. ``log`` receives one line saying which step runs and why."""
    chosen, why = choose_mode(mode, precision.device)
    if chosen == "cudagraphs" and precision.device.type != "cuda":
        raise ConfigError(
            f"--compile cudagraphs needs a CUDA GPU (this run is on {precision.device.type}); "
            f"use --compile compile or off"
        )
    if chosen in ("compile", "cudagraphs"):
        step = CompiledStep(
            model, optimizers, precision, average_gradients, log=log, cuda_graphs=chosen == "cudagraphs"
        )
        log(
            f"step: {step.name} ({why}; torch.compile of {', '.join(step.compiled)}"
            + (", replayed as CUDA graphs" if step.name == "cudagraphs" else "")
            + "".join(
                f"; {name} stays eager ({reason}: torch.compile has no double backward)"
                for name, reason in step.left_eager.items()
            )
            + "; the first iterations compile)"
        )
        return step
    log(f"step: eager ({why})")
    return TrainStep(model, optimizers, precision, average_gradients)
