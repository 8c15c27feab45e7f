"""Export a run's A->B generator alone: safetensors (default), TorchScript or ONNX (reading them back:
:mod:`unpaired.inference.artifacts`).

Every export is one self-contained file: the generator and a small JSON description (``metadata``:
method, channels, normalisation, the input multiple, train size, iterations trained, versions).
Where the JSON sits: safetensors' header metadata, key ``unpaired``; TorchScript's extra file
``unpaired.json``; ONNX's ``metadata_props``, key ``unpaired``. A .safetensors export holds the
weights and the model options needed to rebuild the network with this package (any device and
precision); TorchScript and ONNX exports hold the traced fp32 network and need no Python code of
ours: inputs ``image`` (N, C, H, W) float32 in [-1, 1] with H and W multiples of ``input_multiple``
(pad as :func:`unpaired.tiling.pad_to_multiple`), output ``output`` of the same shape. SinCUT's
generator has a second, optional input ``origin``: int64 (2,), the (y, x) position of a tile in a
larger image for its fixed noise (default (0, 0)).

ONNX export uses torch's TorchScript-based exporter (``dynamo=False``): it works across the torch
versions this package supports, in under a second, without onnxscript; its graph is the same trace
as the TorchScript export. (The torch.export-based exporter gave the same outputs here, to 4e-6, in
~10 s and needs onnxscript; switch to it when torch drops the old one.)
"""

from __future__ import annotations

import copy
import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save

from .. import __version__
from ..config import Config
from ..files import atomic_path
from ..methods import METHODS
from ..tiling import input_multiple, pad_to_multiple
from .artifacts import (
    EXPORT_KIND,
    EXPORT_VERSION,
    METADATA_KEY,
    TORCHSCRIPT_EXTRA,
    ExportError,
    load_export,
    require_package,
)
from .generator import open_generator

FORMATS = {"safetensors": ".safetensors", "torchscript": ".pt", "onnx": ".onnx"}
ONNX_OPSET = 17  # onnxruntime >= 1.12 runs it, as do most other ONNX runtimes
MINIMUM_SIZE = 8  # smallest side the ResNet generator's reflect padding accepts
PARITY_TOLERANCE = 1e-4  # max abs difference to PyTorch that the export check accepts
CHECK_SIZES = ((256, 256), (211, 317))  # (H, W) of the export check; the second is padded first


# ----------------------------------------------------------------------------------------- writing
def export_metadata(G: nn.Module, cfg: Config, state: dict, source: str) -> dict[str, Any]:
    """The JSON description stored in every export."""
    method = METHODS.get(cfg.model.name)
    norm = "instance" if any(isinstance(m, nn.InstanceNorm2d) for m in G.modules()) else "none"
    progress = state.get("progress", {})
    return {
        "kind": EXPORT_KIND,
        "version": EXPORT_VERSION,
        "method": cfg.model.name,
        "display_name": method.display if method else cfg.model.name,
        "label": method.label(vars(cfg.model)) if method else cfg.model.name,
        "iterations": progress.get("iteration"),
        "epoch": progress.get("epoch"),
        "channels": {"in": cfg.data.channels, "out": cfg.data.channels},
        "normalisation": {
            "input": "x = pixel / 127.5 - 1 (8-bit RGB or grayscale -> [-1, 1]), NCHW float32",
            "output": "pixel = round((clamp(y, -1, 1) + 1) * 127.5)",
            "layers": norm,
        },
        "input_multiple": input_multiple(G),
        "minimum_size": MINIMUM_SIZE,
        "padding": "pad bottom and right to multiples of input_multiple (at least minimum_size) with "
        "reflect padding (replicate where the pad is not smaller than the side), run, crop back",
        "origin_input": bool(getattr(G, "takes_origin", False)),
        "train_size": cfg.data.crop_size,
        "package_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "source": source,
        "model_config": cfg.to_dict()["model"],  # rebuilds the network (safetensors)
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
    onnx = require_package("onnx", "ONNX export")
    module, args = _traced(with_two_pass_norms(G), meta["channels"]["in"])
    names = ["image", "origin"][: len(args)]
    dynamic = {"image": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}}
    with _quiet_tracing(), torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=names,
            output_names=["output"],
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    if len(args) == 2:  # an initializer named like an input is that input's default: origin may be left out
        model.graph.initializer.append(onnx.numpy_helper.from_array(args[1].numpy(), "origin"))
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
    model.producer_name, model.producer_version = "unpaired", __version__
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


WRITERS = {"safetensors": _write_safetensors, "torchscript": _write_torchscript, "onnx": _write_onnx}


def export_generator(
    run_or_checkpoint: str | Path, out: str | Path, fmt: str = "safetensors", which: str = "latest", check: bool = True
) -> dict[str, Any]:
    """Write the A->B generator of a run folder (its ``which`` checkpoint) or checkpoint file to
    ``out`` in ``fmt`` (safetensors, torchscript or onnx). With ``check``, the written file is
    loaded back and run on CHECK_SIZES inputs (the second padded as translate pads it); its outputs
    must equal PyTorch's within PARITY_TOLERANCE, else the file is removed and an ExportError
    raised. Returns the metadata, with ``check`` (max abs difference per size) when checked.
    The file appears whole or not at all (written under a temporary name, then renamed)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    G, cfg, about = open_generator(run_or_checkpoint, "cpu", which)
    ckpt = Path(about["source"])
    meta = export_metadata(G, cfg, about["state"], str(ckpt))
    if "official" in about:
        meta["official"] = about["official"]  # what it was converted from
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
            raise ExportError(
                f"cannot export the {meta['display_name']} generator to {fmt}: "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            ) from None
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
    exported, _, _, _ = load_export(path, "cpu")
    gen = torch.Generator().manual_seed(0)
    diffs = {}
    for h, w in CHECK_SIZES:
        x = pad_to_multiple(photo_like(h, w, meta["channels"]["in"], gen), meta["input_multiple"], meta["minimum_size"])
        diffs[f"{w}x{h}"] = float((exported(x) - G(x)).abs().max())  # named width x height
    worst = max(diffs.values())
    if not worst <= PARITY_TOLERANCE:  # also catches NaN
        raise ExportError(
            f"the export's outputs differ from PyTorch's by up to {worst:.3g} (> {PARITY_TOLERANCE:g}) "
            f"on {', '.join(diffs)} inputs; nothing was written"
        )
    return diffs
