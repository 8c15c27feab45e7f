"""The one place a generator is built from saved weights: a checkpoint's state (for translate,
export, serve, evaluation) and what a :class:`~unpaired.inference.translator.Translator` says about it."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import checkpoint as ckpt_io
from ..config import Config
from ..methods import METHODS, build_config, build_generator, get_method
from ..models import official
from ..tiling import input_multiple


def load_generator(
    checkpoint: str | Path, device: torch.device | str = "cpu", which: str = "latest"
) -> tuple[torch.nn.Module, Config]:
    """The A->B generator of a run folder (its ``which`` checkpoint), a checkpoint file, or a
    generator file of the official CUT / CycleGAN code (or its folder), in eval mode, and its config."""
    G, cfg, _ = open_generator(checkpoint, device, which)
    return G, cfg


def open_generator(
    source: str | Path, device: torch.device | str = "cpu", which: str = "latest"
) -> tuple[torch.nn.Module, Config, dict]:
    """(generator in eval mode, config, about) of a run folder, an unpaired checkpoint, or an official
    generator file or folder. ``about``: ``state`` (the checkpoint's, {} for an official file),
    ``iterations``, ``format`` (checkpoint | official), ``source`` (the file read) and, for an
    official file, ``name`` and ``official`` (the file, its method and architecture)."""
    source = Path(source)
    if official.is_official_folder(source) and not (source / "checkpoints").is_dir():
        return official_generator(source, device)
    path = ckpt_io.resolve_path(source, which)
    try:
        state = ckpt_io.load(path)
    except ckpt_io.CheckpointError as e:
        if not _is_plain_state_dict(path):
            raise e from None
        return official_generator(path, device)
    G, cfg = generator_from_state(state, device, source=path)
    iterations = state.get("progress", {}).get("iteration")
    return G, cfg, {"state": state, "iterations": iterations, "format": "checkpoint", "source": str(path)}


def _is_plain_state_dict(path: Path) -> bool:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return official.looks_official(official.strip_module(obj) if isinstance(obj, dict) else obj)


def official_generator(source: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, Config, dict]:
    """The generator of an official CUT / FastCUT / SinCUT / CycleGAN file (or folder), as
    :func:`open_generator` returns it. Its architecture comes from its keys and shapes; its method
    from ``train_opt.txt`` beside it (else from the network and the file name)."""
    net = official.read_generator(source)
    settings = dict(net.settings)
    crop = official._int(net.options, "crop_size")
    if net.kind == "resnet_G" and crop:
        settings["data.crop_size"] = crop
    if net.kind == "stylegan2_G" and settings["data.crop_size"] < 64:
        settings["model.d_tile_size"] = 0
    cfg = build_config(net.method, settings=[(f"the official file {net.path}", settings)])
    G = build_generator(cfg)
    official.load_generator_weights(G, net)
    about = {
        "state": {},
        "iterations": None,
        "format": "official",
        "source": str(net.path),
        "name": net.name,
        "official": {
            "file": str(net.path),
            "method": net.method,
            "epoch": net.epoch,
            "settings": net.settings,
            "crop_size": settings.get("data.crop_size"),  # None: train_opt.txt is not beside the file
        },
    }
    return G.to(device).eval(), cfg, about


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
