"""The one place a generator is built from saved weights: a checkpoint's state (for translate,
export, serve, evaluation) and what a :class:`~unpaired.inference.translator.Translator` says about it."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import checkpoint as ckpt_io
from ..config import Config
from ..methods import METHODS, build_generator, get_method
from ..tiling import input_multiple


def load_generator(
    checkpoint: str | Path, device: torch.device | str = "cpu", which: str = "latest"
) -> tuple[torch.nn.Module, Config]:
    """The A->B generator of a run folder (its ``which`` checkpoint) or checkpoint file, in eval
    mode, and the run's config."""
    path = ckpt_io.resolve_path(checkpoint, which)
    return generator_from_state(ckpt_io.load(path), device, source=path)


def generator_from_state(
    state: dict, device: torch.device | str = "cpu", source: str | Path = "the checkpoint"
) -> tuple[torch.nn.Module, Config]:
    """The A->B generator of an already loaded checkpoint (read from ``source``), in eval mode, and
    the run's config."""
    if not isinstance(state.get("model"), dict):
        raise ckpt_io.CheckpointError(
            f"{source} is not an unpaired checkpoint (it has no model weights); {ckpt_io.NOT_OURS}"
        )
    cfg = Config.from_dict(state["config"], strict=False)
    G = build_generator(cfg)
    prefix = get_method(cfg.model.name).model.GENERATOR_PREFIX
    ckpt_io.load_module_state(
        G,
        {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)},
        source,
        f"the {cfg.model.name} generator",
    )
    return G.to(device).eval(), cfg


def model_info(
    config: Config,
    generator: torch.nn.Module,
    source: str | None = None,
    iterations: int | None = None,
    fmt: str | None = None,
) -> dict:
    """What a :class:`Translator` says about its model (``translator.info``): method, display_name,
    iterations (trained; None when unknown), source, input_multiple, channels, train_size, format
    (checkpoint, safetensors, torchscript, onnx; None for a generator handed over in memory)."""
    method = METHODS.get(config.model.name)
    return {
        "method": config.model.name,
        "display_name": method.display if method else config.model.name,
        "iterations": iterations,
        "source": source,
        "input_multiple": input_multiple(generator),
        "channels": config.data.channels,
        "train_size": config.data.crop_size,
        "format": fmt,
    }
