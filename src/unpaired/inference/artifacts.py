"""Reading the files ``unpaired export`` writes (safetensors, TorchScript, ONNX): their JSON
description and the generator inside, ready for a :class:`~unpaired.inference.translator.Translator`.
The format itself is described in :mod:`unpaired.inference.export`."""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path
from typing import Any

import safetensors
import torch
import torch.nn as nn
from safetensors.torch import load_file

from ..checkpoint import CheckpointError
from ..config import Config, ConfigError
from ..devices import select_device
from ..errors import UnpairedError
from ..methods import build_generator
from .generator import model_info

METADATA_KEY = "unpaired"  # safetensors / ONNX metadata key of the JSON description
TORCHSCRIPT_EXTRA = "unpaired.json"  # TorchScript extra file holding it
EXPORT_KIND = "unpaired-generator"
EXPORT_VERSION = 1


class ExportError(UnpairedError, RuntimeError):
    """An export cannot be written or run (a missing optional package, a failed check); the message says why."""


def require_package(module: str, what: str):
    """An optional dependency (the ``export`` extra), or an ExportError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{what} needs the '{module}' package: pip install 'unpaired[export]'") from None


# ----------------------------------------------------------------------------------------- reading
def export_format(path: str | Path) -> str | None:
    """safetensors, torchscript or onnx if ``path`` is an export (by name, for TorchScript by its
    ``unpaired.json`` entry: checkpoints are .pt zip files too), else None."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return "safetensors"
    if suffix == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if any(n.endswith("/extra/" + TORCHSCRIPT_EXTRA) for n in z.namelist()):
                return "torchscript"
    return None


def is_export(path: str | Path) -> bool:
    return export_format(path) is not None


def _parse(text: str | bytes | None, path: Path, where: str) -> dict[str, Any]:
    if not text:
        raise CheckpointError(f"{path} has no unpaired description ({where}); was it written by 'unpaired export'?")
    try:
        meta = json.loads(text)
    except ValueError:
        raise CheckpointError(f"{path}: its unpaired description ({where}) is not valid JSON") from None
    if meta.get("kind") != EXPORT_KIND or meta.get("version") != EXPORT_VERSION:
        raise CheckpointError(
            f"{path} is not an unpaired generator export of version {EXPORT_VERSION} "
            f"(found kind {meta.get('kind')!r}, version {meta.get('version')!r}); "
            f"export it again with this version of unpaired"
        )
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON description of an export."""
    path = Path(path)
    fmt = export_format(path)
    if fmt == "safetensors":
        try:
            with safetensors.safe_open(str(path), "pt") as f:
                text = (f.metadata() or {}).get(METADATA_KEY)
        except (OSError, safetensors.SafetensorError) as e:
            raise CheckpointError(f"cannot read {path}: {e}") from None
        return _parse(text, path, "safetensors metadata")
    if fmt == "torchscript":
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith("/extra/" + TORCHSCRIPT_EXTRA))
            return _parse(z.read(name), path, TORCHSCRIPT_EXTRA)
    if fmt == "onnx":
        onnx = require_package("onnx", "reading an .onnx export")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as e:
            raise CheckpointError(f"cannot read {path} as ONNX: {e}") from None
        return _parse({p.key: p.value for p in model.metadata_props}.get(METADATA_KEY), path, "ONNX metadata_props")
    raise CheckpointError(
        f"{path} is not an export (.safetensors, TorchScript .pt or .onnx written by 'unpaired export')"
    )


def config_of(meta: dict[str, Any]) -> Config:
    """A Config holding what an export records of its run: model options, channels, train size."""
    return Config.from_dict(
        {"model": meta["model_config"], "data": {"channels": meta["channels"]["in"], "crop_size": meta["train_size"]}},
        strict=False,
    )


class ScriptedGenerator(nn.Module):
    """A TorchScript export as a generator: ``G(x)`` or ``G(x, origin=(y0, x0))``."""

    fixed_precision, format_name = "fp32", "TorchScript"

    def __init__(self, module: torch.jit.ScriptModule, meta: dict):
        super().__init__()
        self.module = module
        self.multiple = meta["input_multiple"]
        self.takes_origin = meta["origin_input"]

    def forward(self, x: torch.Tensor, origin=None) -> torch.Tensor:
        if origin is None or not self.takes_origin:
            return self.module(x)
        return self.module(x, torch.as_tensor(origin, dtype=torch.long, device=x.device))


class OnnxGenerator(nn.Module):
    """An ONNX export run by onnxruntime, as a generator: ``G(x)`` or ``G(x, origin=(y0, x0))``.
    Outputs come back on the input's device and in its dtype."""

    fixed_precision, format_name = "fp32", "ONNX"

    def __init__(self, path: Path, meta: dict, providers: list[str]):
        super().__init__()
        ort = require_package("onnxruntime", "running an .onnx export")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the origin default is an initializer on purpose
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:
            raise CheckpointError(f"onnxruntime cannot load {path}: {e}") from None
        self.multiple = meta["input_multiple"]
        self.takes_origin = meta["origin_input"]

    def forward(self, x: torch.Tensor, origin=None) -> torch.Tensor:
        feed = {"image": x.detach().float().cpu().contiguous().numpy()}
        if origin is not None and self.takes_origin:
            feed["origin"] = torch.as_tensor(origin, dtype=torch.long).numpy()
        y = self.session.run(["output"], feed)[0]
        return torch.from_numpy(y).to(x.device, x.dtype)


def _onnx_device(device: str | torch.device) -> tuple[torch.device, list[str]]:
    ort = require_package("onnxruntime", "running an .onnx export")
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if str(device) == "auto":
        return (
            (torch.device("cuda"), ["CUDAExecutionProvider", "CPUExecutionProvider"])
            if cuda and torch.cuda.is_available()
            else (torch.device("cpu"), ["CPUExecutionProvider"])
        )
    dev = select_device(device)
    if dev.type == "cpu":
        return dev, ["CPUExecutionProvider"]
    if dev.type == "cuda" and cuda:
        return dev, [("CUDAExecutionProvider", {"device_id": dev.index or 0}), "CPUExecutionProvider"]
    raise ConfigError(
        f"this onnxruntime cannot run on {dev}; use --device cpu, or the .safetensors export "
        f"(which runs on any device PyTorch has)"
    )


def load_export(path: str | Path, device: str | torch.device = "auto") -> tuple[nn.Module, Config, dict, torch.device]:
    """(generator in eval mode, config, Translator info, device) of an export file."""
    path = Path(path)
    fmt = export_format(path)
    meta = read_metadata(path)
    cfg = config_of(meta)
    if fmt == "onnx":
        dev, providers = _onnx_device(device)
        G: nn.Module = OnnxGenerator(path, meta, providers)
    else:
        dev = select_device(device)
        if fmt == "torchscript":
            try:
                G = ScriptedGenerator(torch.jit.load(str(path), map_location=dev), meta)
            except Exception as e:
                raise CheckpointError(f"torch.jit cannot load {path}: {e}") from None
        else:
            G = build_generator(cfg)
            try:
                G.load_state_dict(load_file(str(path)))
            except RuntimeError as e:
                raise CheckpointError(
                    f"{path}: its weights do not fit the network its description names ({str(e).splitlines()[0]})"
                ) from None
            G = G.to(dev)
    info = {
        **model_info(cfg, G, str(path), meta["iterations"], fmt),
        "display_name": meta["display_name"],
        "package_version": meta["package_version"],
    }
    return G.eval(), cfg, info, dev
