"""Export a run's A->B generator alone: safetensors (default), TorchScript or ONNX, and load exports.

Every export is one self-contained file: the generator and a small JSON description (``metadata``:
method, channels, normalisation, the input multiple, train size, iterations trained, versions).
Where the JSON sits: safetensors' header metadata, key ``unpaired``; TorchScript's extra file
``unpaired.json``; ONNX's ``metadata_props``, key ``unpaired``. A .safetensors export holds the
weights and the model options needed to rebuild the network with this package (any device and
precision); TorchScript and ONNX exports hold the traced fp32 network and need no Python code of
ours: inputs ``image`` (N, C, H, W) float32 in [-1, 1] with H and W multiples of ``input_multiple``
(pad as :func:`unpaired.translate.pad_to_multiple`), output ``output`` of the same shape. SinCUT's
generator has a second, optional input ``origin``: int64 (2,), the (y, x) position of a tile in a
larger image for its fixed noise (default (0, 0)).

ONNX export uses torch's TorchScript-based exporter (``dynamo=False``): it works across the torch
versions this package supports, in under a second, without onnxscript; its graph is the same trace
as the TorchScript export. (The torch.export-based exporter gave the same outputs here, to 4e-6, in
~10 s and needs onnxscript; switch to it when torch drops the old one.)
"""
from __future__ import annotations

import copy
import importlib
import json
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import __version__
from . import checkpoint as ckpt_io
from .checkpoint import CheckpointError
from .config import Config
from .outputs import atomic_path

FORMATS = {"safetensors": ".safetensors", "torchscript": ".pt", "onnx": ".onnx"}
METADATA_KEY = "unpaired"                 # safetensors / ONNX metadata key of the JSON description
TORCHSCRIPT_EXTRA = "unpaired.json"       # TorchScript extra file holding it
EXPORT_KIND = "unpaired-generator"
EXPORT_VERSION = 1
ONNX_OPSET = 17                           # onnxruntime >= 1.12 runs it, as do most other ONNX runtimes
MINIMUM_SIZE = 8                          # smallest side the ResNet generator's reflect padding accepts
PARITY_TOLERANCE = 1e-4                   # max abs difference to PyTorch that the export check accepts
CHECK_SIZES = ((256, 256), (211, 317))    # (H, W) of the export check; the second is padded first


class ExportError(RuntimeError):
    """An export cannot be written or run (a missing optional package, a failed check); the message says why."""


def _require(module: str, what: str):
    """An optional dependency (the ``export`` extra), or an ExportError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{what} needs the '{module}' package: pip install 'unpaired[export]'") from None


# ----------------------------------------------------------------------------------------- writing
def export_metadata(G: nn.Module, cfg: Config, state: dict, source: str) -> dict[str, Any]:
    """The JSON description stored in every export."""
    from .methods import METHODS
    from .translate import input_multiple

    method = METHODS.get(cfg.model.name)
    norm = "instance" if any(isinstance(m, nn.InstanceNorm2d) for m in G.modules()) else "none"
    progress = state.get("progress", {})
    return {
        "kind": EXPORT_KIND, "version": EXPORT_VERSION,
        "method": cfg.model.name, "display_name": method.display if method else cfg.model.name,
        "label": method.label(vars(cfg.model)) if method else cfg.model.name,
        "iterations": progress.get("iteration"), "epoch": progress.get("epoch"),
        "channels": {"in": cfg.data.channels, "out": cfg.data.channels},
        "normalisation": {"input": "x = pixel / 127.5 - 1 (8-bit RGB or grayscale -> [-1, 1]), NCHW float32",
                          "output": "pixel = round((clamp(y, -1, 1) + 1) * 127.5)",
                          "layers": norm},
        "input_multiple": input_multiple(G), "minimum_size": MINIMUM_SIZE,
        "padding": "pad bottom and right to multiples of input_multiple (at least minimum_size) with "
                   "reflect padding (replicate where the pad is not smaller than the side), run, crop back",
        "origin_input": bool(getattr(G, "takes_origin", False)),
        "train_size": cfg.data.crop_size,
        "package_version": __version__, "torch_version": torch.__version__.split("+")[0],
        "source": source,
        "model_config": cfg.to_dict()["model"],   # rebuilds the network (safetensors)
    }


class _WithOrigin(nn.Module):
    """Traces a noise generator with its ``origin`` as a tensor input."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G

    def forward(self, image: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
        return self.G(image, origin)


class _DefaultOrigin(nn.Module):
    """TorchScript wrapper: ``origin`` optional, (0, 0) when left out."""

    def __init__(self, traced: torch.jit.ScriptModule):
        super().__init__()
        self.traced = traced

    def forward(self, image: torch.Tensor, origin: torch.Tensor | None = None) -> torch.Tensor:
        if origin is None:
            origin = torch.zeros(2, dtype=torch.long, device=image.device)
        return self.traced(image, origin)


def _example(G: nn.Module, channels: int) -> tuple[torch.Tensor, ...]:
    x = torch.zeros(1, channels, 64, 64)
    return (x, torch.zeros(2, dtype=torch.long)) if getattr(G, "takes_origin", False) else (x,)


@contextmanager
def _quiet_tracing():
    """Tracing and the TorchScript-based ONNX exporter warn about their own internals (deprecation,
    constants frozen into the trace: here the channel counts and the fp32 code paths, which are
    fixed by the weights); nothing in them is for the user to act on. The export check below is
    what guarantees the result."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _traced(G: nn.Module, channels: int) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    args = _example(G, channels)
    # in eval mode: the ONNX exporter restores a module's training flag after export, recursively,
    # so a wrapper left in training mode would switch G's noise to random noise
    module = _WithOrigin(G).eval() if len(args) == 2 else G.eval()
    return module, args


def _write_safetensors(G: nn.Module, meta: dict, path: Path) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    # written by us rather than save_file, which creates the file readable by its owner only
    path.write_bytes(save(tensors, metadata={METADATA_KEY: json.dumps(meta)}))


def _write_torchscript(G: nn.Module, meta: dict, path: Path) -> None:
    module, args = _traced(G, meta["channels"]["in"])
    with _quiet_tracing(), torch.no_grad():
        scripted = torch.jit.trace(module, args, check_trace=False)
        if len(args) == 2:
            scripted = torch.jit.script(_DefaultOrigin(scripted))
        torch.jit.save(scripted, str(path), _extra_files={TORCHSCRIPT_EXTRA: json.dumps(meta)})


class TwoPassInstanceNorm(nn.Module):
    """Instance normalisation (no affine parameters, no running statistics) written out for ONNX:
    mean of each row, then of those means, for the mean and the variance of the centred values.

    onnxruntime's InstanceNormalization, and a single ReduceMean over all H x W values, sum in float32
    in a way that loses digits where a channel's mean is large against its spread: on the trained
    64 px people2outline CUT generator the first normalisation layer was 5e-4 off float64 (torch:
    5e-6) and the output 2.8e-4 off PyTorch's on the test photos. Sums of one row and then of one
    column are short enough: 3.7e-6 on the same photos."""

    def __init__(self, eps: float):
        super().__init__()
        self.eps = eps

    @staticmethod
    def _mean(x: torch.Tensor) -> torch.Tensor:
        return x.mean(3, keepdim=True).mean(2, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - self._mean(x)
        return centred / torch.sqrt(self._mean(centred * centred) + self.eps)


def with_two_pass_norms(G: nn.Module) -> nn.Module:
    """A copy of G whose parameter-free instance normalisations are :class:`TwoPassInstanceNorm`."""
    G = copy.deepcopy(G)
    for parent in list(G.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.InstanceNorm2d) and not child.affine and not child.track_running_stats:
                setattr(parent, name, TwoPassInstanceNorm(child.eps))
    return G.eval()


def _write_onnx(G: nn.Module, meta: dict, path: Path) -> None:
    onnx = _require("onnx", "ONNX export")
    module, args = _traced(with_two_pass_norms(G), meta["channels"]["in"])
    names = ["image", "origin"][:len(args)]
    dynamic = {"image": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}}
    with _quiet_tracing(), torch.no_grad():
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=ONNX_OPSET, input_names=names,
                          output_names=["output"], dynamic_axes=dynamic, do_constant_folding=True)
    model = onnx.load(str(path))
    if len(args) == 2:  # an initializer named like an input is that input's default: origin may be left out
        model.graph.initializer.append(onnx.numpy_helper.from_array(args[1].numpy(), "origin"))
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
    model.producer_name, model.producer_version = "unpaired", __version__
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


WRITERS = {"safetensors": _write_safetensors, "torchscript": _write_torchscript, "onnx": _write_onnx}


def export_generator(run_or_checkpoint: str | Path, out: str | Path, fmt: str = "safetensors",
                     which: str = "latest", check: bool = True) -> dict[str, Any]:
    """Write the A->B generator of a run folder (its ``which`` checkpoint) or checkpoint file to
    ``out`` in ``fmt`` (safetensors, torchscript or onnx). With ``check``, the written file is
    loaded back and run on CHECK_SIZES inputs (the second padded as translate pads it); its outputs
    must equal PyTorch's within PARITY_TOLERANCE, else the file is removed and an ExportError
    raised. Returns the metadata, with ``check`` (max abs difference per size) when checked.
    The file appears whole or not at all (written under a temporary name, then renamed)."""
    from .translate import generator_from_state

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    ckpt = ckpt_io.resolve_path(run_or_checkpoint, which)
    state = ckpt_io.load(ckpt)
    G, cfg = generator_from_state(state, "cpu", source=ckpt)
    meta = export_metadata(G, cfg, state, str(ckpt))
    out = Path(out)
    if out.exists() and out.resolve() == ckpt.resolve():
        raise ExportError(f"--out {out} is the checkpoint being exported; choose another file name")
    # the temporary file keeps the format's extension: loading it back for the check goes by it
    with atomic_path(out, suffix=FORMATS[fmt]) as tmp:
        try:
            WRITERS[fmt](G, meta, tmp)
        except ExportError:
            raise
        except Exception as e:  # a network the tracer or exporter cannot handle (an added method's)
            raise ExportError(f"cannot export the {meta['display_name']} generator to {fmt}: "
                              f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        if check:
            meta["check"] = check_export(G, tmp, meta)
    return meta


def photo_like(h: int, w: int, channels: int, generator: torch.Generator) -> torch.Tensor:
    """A smooth random image (1, C, h, w) in [-1, 1]: a 6 x 6 grid of random colours, bicubically
    enlarged. Like photos, and unlike uniform noise, it has large areas of nearly equal values, which
    give some channels large means against their spread (differences to PyTorch came out ~10x
    larger than on uniform noise for the trained CUT generator)."""
    grid = torch.rand(1, channels, 6, 6, generator=generator) * 2 - 1
    return F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)


@torch.no_grad()
def check_export(G: nn.Module, path: Path, meta: dict) -> dict[str, float]:
    """Max abs difference between the export at ``path`` and ``G`` on :func:`photo_like` inputs of
    CHECK_SIZES, padded as translate pads them; an ExportError when one exceeds PARITY_TOLERANCE."""
    from .translate import pad_to_multiple

    exported, _, _, _ = load_export(path, "cpu")
    gen = torch.Generator().manual_seed(0)
    diffs = {}
    for h, w in CHECK_SIZES:
        x = pad_to_multiple(photo_like(h, w, meta["channels"]["in"], gen), meta["input_multiple"], meta["minimum_size"])
        diffs[f"{w}x{h}"] = float((exported(x) - G(x)).abs().max())  # named width x height
    worst = max(diffs.values())
    if not worst <= PARITY_TOLERANCE:  # also catches NaN
        raise ExportError(f"the export's outputs differ from PyTorch's by up to {worst:.3g} (> {PARITY_TOLERANCE:g}) "
                          f"on {', '.join(diffs)} inputs; nothing was written")
    return diffs


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
        raise CheckpointError(f"{path} is not an unpaired generator export of version {EXPORT_VERSION} "
                              f"(found kind {meta.get('kind')!r}, version {meta.get('version')!r}); "
                              f"export it again with this version of unpaired")
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON description of an export."""
    path = Path(path)
    fmt = export_format(path)
    if fmt == "safetensors":
        import safetensors

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
        onnx = _require("onnx", "reading an .onnx export")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as e:
            raise CheckpointError(f"cannot read {path} as ONNX: {e}") from None
        return _parse({p.key: p.value for p in model.metadata_props}.get(METADATA_KEY), path, "ONNX metadata_props")
    raise CheckpointError(f"{path} is not an export (.safetensors, TorchScript .pt or .onnx written by 'unpaired export')")


def config_of(meta: dict[str, Any]) -> Config:
    """A Config holding what an export records of its run: model options, channels, train size."""
    return Config.from_dict({"model": meta["model_config"],
                             "data": {"channels": meta["channels"]["in"], "crop_size": meta["train_size"]}},
                            strict=False)


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
        ort = _require("onnxruntime", "running an .onnx export")
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
    from .config import ConfigError
    from .devices import select_device

    ort = _require("onnxruntime", "running an .onnx export")
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if str(device) == "auto":
        return (torch.device("cuda"), ["CUDAExecutionProvider", "CPUExecutionProvider"]) \
            if cuda and torch.cuda.is_available() else (torch.device("cpu"), ["CPUExecutionProvider"])
    dev = select_device(device)
    if dev.type == "cpu":
        return dev, ["CPUExecutionProvider"]
    if dev.type == "cuda" and cuda:
        return dev, [("CUDAExecutionProvider", {"device_id": dev.index or 0}), "CPUExecutionProvider"]
    raise ConfigError(f"this onnxruntime cannot run on {dev}; use --device cpu, or the .safetensors export "
                      f"(which runs on any device PyTorch has)")


def load_export(path: str | Path, device: str | torch.device = "auto") -> tuple[nn.Module, Config, dict, torch.device]:
    """(generator in eval mode, config, Translator info, device) of an export file."""
    from .devices import select_device
    from .methods import get_method

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
            from safetensors.torch import load_file

            G = get_method(cfg.model.name).model.build_generator(cfg.model, cfg.data.channels, cfg.data.crop_size)
            try:
                G.load_state_dict(load_file(str(path)))
            except RuntimeError as e:
                raise CheckpointError(f"{path}: its weights do not fit the network its description names "
                                      f"({str(e).splitlines()[0]})") from None
            G = G.to(dev)
    info = {"method": meta["method"], "display_name": meta["display_name"], "iterations": meta["iterations"],
            "source": str(path), "input_multiple": meta["input_multiple"], "channels": meta["channels"]["in"],
            "train_size": meta["train_size"], "format": fmt, "package_version": meta["package_version"]}
    return G.eval(), cfg, info, dev
