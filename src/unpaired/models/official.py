"""Networks saved by the official code: CUT / FastCUT / SinCUT (taesungp/contrastive-unpaired-translation)
and pytorch-CycleGAN-and-pix2pix (``latest_net_G.pth``, ``400_net_G_A.pth``, the released models).

Those files are plain state dicts (``torch.save(net.state_dict())``), sometimes with the
``module.`` prefix of DataParallel, next to the ``train_opt.txt`` the official code writes. This
module reads them: it tells a generator from a discriminator or projection head by its keys,
infers the architecture from the keys and shapes (what ``train_opt.txt`` says is used where the
weights cannot tell), and maps the weights onto this package's networks, whose layer lists mirror
the official ones. It sits below training and inference, which both use it (``translate``,
``export``, ``serve`` and ``train --init-from``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import FORMAT_VERSION, CheckpointError, load_module_state, state_mismatch
from ..nets.stylegan2 import _channels, working_resolution

OPTIONS_FILE = "train_opt.txt"
# names the official code gives its files: <epoch>_net_<name>.pth
_NET_FILE = re.compile(r"^(?P<epoch>.+)_net_(?P<name>G|G_A|G_B|D|D_A|D_B|F)\.pth$")
_STATS = ("running_mean", "running_var", "num_batches_tracked")


class OfficialFileError(CheckpointError):
    """An official file that is not a generator this package can build; the message says what it is."""


@dataclass
class OfficialNetwork:
    """One network file of the official code, read and recognised."""

    path: Path
    kind: str  # resnet_G | stylegan2_G | patchgan_D | stylegan2_D | F
    state: dict[str, torch.Tensor]  # with our key names (module. stripped, SinCUT keys renamed)
    settings: dict[str, Any] = field(default_factory=dict)  # config settings ("model.ngf": 8, ...)
    method: str | None = None  # cut | fastcut | sincut | cyclegan (None: not known)
    options: dict[str, str] = field(default_factory=dict)  # train_opt.txt, when beside the file
    epoch: str | None = None  # from the file name (latest, 400, ...)

    @property
    def name(self) -> str:
        """How pages and reports name it: 'horse2zebra (latest_net_G.pth)'."""
        return f"{self.path.parent.name} ({self.path.name})" if self.path.parent.name else self.path.name


# ------------------------------------------------------------------------------------ train_opt.txt
def parse_options(text: str) -> dict[str, str]:
    """The options of an official ``train_opt.txt`` (``name: value  [default: ...]`` lines), as strings."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if ":" not in line or line.lstrip().startswith("-"):
            continue
        key, value = line.split(":", 1)
        value = value.split("\t[default:", 1)[0].split("[default:", 1)[0]
        key, value = key.strip(), value.strip()
        if key and " " not in key:
            out[key] = value
    return out


def read_options(path: Path) -> dict[str, str]:
    """``train_opt.txt`` beside an official file (or in the folder), else {}."""
    folder = path if path.is_dir() else path.parent
    f = folder / OPTIONS_FILE
    if not f.is_file():
        return {}
    try:
        return parse_options(f.read_text(errors="replace"))
    except OSError:
        return {}


def _flag(options: dict[str, str], key: str) -> bool | None:
    v = options.get(key)
    return None if v is None else v.lower() in ("true", "1", "yes")


def _int(options: dict[str, str], key: str) -> int | None:
    try:
        return int(options[key])
    except (KeyError, ValueError):
        return None


def method_of(options: dict[str, str]) -> str | None:
    """The method a ``train_opt.txt`` describes (cut, fastcut, sincut, cyclegan), or None."""
    model = options.get("model", "").lower()
    if model == "cut":
        return "fastcut" if options.get("CUT_mode", "CUT").lower() == "fastcut" else "cut"
    if model == "sincut":
        return "sincut"
    if model in ("cycle_gan", "cyclegan", "test"):
        return "cyclegan"
    return None


# ------------------------------------------------------------------------------------ reading files
def looks_official(obj: Any) -> bool:
    """Whether a loaded object is a plain state dict (the official format), not an unpaired checkpoint."""
    return (
        isinstance(obj, dict)
        and obj.get("format") != FORMAT_VERSION
        and bool(obj)
        and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())
    )


def strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without DataParallel's ``module.`` prefix."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def kind_of(state: dict[str, torch.Tensor]) -> str:
    """resnet_G, stylegan2_G, patchgan_D, stylegan2_D, F, or a description of what it is instead."""
    keys = set(state)
    if any(k.startswith("mlp_") for k in keys):
        return "F"
    if any(k.startswith("encoder.convs.") for k in keys) and any(k.startswith("decoder.convs.") for k in keys):
        return "stylegan2_G"
    if "final_linear.0.weight" in keys and any(k.startswith("convs.") for k in keys):
        return "stylegan2_D"
    if any(k.startswith("model.model.") for k in keys):
        return "a U-Net generator (netG unet_128 / unet_256), which unpaired does not build"
    w = state.get("model.1.weight")
    if w is not None and w.dim() == 4 and w.shape[-1] == 7:
        return "resnet_G"
    w = state.get("model.0.weight")
    if w is not None and w.dim() == 4 and w.shape[-1] == 4:
        return "patchgan_D"
    return "not a network of the official CUT or CycleGAN code"


WHAT = {
    "patchgan_D": "the official PatchGAN discriminator (netD)",
    "stylegan2_D": "the official SinCUT StyleGAN2 discriminator (netD)",
    "F": "the official projection head of PatchNCE (netF)",
}


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} is not a PyTorch state dict torch can read ({type(e).__name__})") from None
    if not looks_official(obj):
        raise CheckpointError(f"{path} is neither an unpaired checkpoint nor a state dict of the official code")
    return strip_module(obj)


# ------------------------------------------------------------------------------------ architectures
def _resnet_settings(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """ngf, n_blocks, norm, anti-aliasing and dropout of an official ResNet generator, from its keys."""
    stem = state["model.1.weight"]
    ngf, c_in = stem.shape[0], stem.shape[1]
    if "model.2.weight" in state and "model.2.running_mean" in state:
        norm = "batch"
    elif "model.1.bias" in state:
        norm = "instance"
    else:
        norm = "none"
    antialias = "model.7.filt" in state
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    first = 12 if antialias else 10
    if blocks and blocks[0] != first:
        raise OfficialFileError(
            f"{path}: a ResNet generator whose residual blocks start at layer {blocks[0]}, "
            f"not {first}: a layout unpaired does not build"
        )
    n_blocks = len(blocks)
    up = first + n_blocks
    antialias_up = f"model.{up}.filt" in state
    # the second convolution is conv_block.5, or conv_block.6 behind a Dropout (index 6 is a batch norm otherwise)
    dropout = any(re.match(r"model\.\d+\.conv_block\.6\.weight", k) and v.dim() == 4 for k, v in state.items())
    head = max(int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.weight$", k)))
    c_out = state[f"model.{head}.weight"].shape[0]
    if c_in != c_out:
        raise OfficialFileError(
            f"{path}: a generator from {c_in} to {c_out} channels; unpaired's generators keep the channel count"
        )
    return {
        "model.ngf": int(ngf),
        "model.n_blocks": n_blocks,
        "model.g_norm": norm,
        "model.g_antialias": antialias,
        "model.g_antialias_up": antialias_up,
        "model.g_dropout": dropout,
        "data.channels": int(c_in),
    }


def _stylegan2_settings(state: dict[str, torch.Tensor], options: dict[str, str], path: Path) -> dict[str, Any]:
    """ngf, blocks, downsamplings and working resolution of the official SinCUT generator."""
    enc = sorted({int(m.group(1)) for k in state if (m := re.match(r"encoder\.convs\.(\d+)\.", k))})
    down = [
        i for i in enc if f"encoder.convs.{i}.skip.1.weight" in state and f"encoder.convs.{i}.conv2.0.kernel" in state
    ]
    n_down = len(down)
    n_res = len([i for i in enc if f"encoder.convs.{i}.conv1.0.weight" in state]) - n_down
    widths = [state["encoder.convs.1.0.weight"].shape[0]] + [
        state[f"encoder.convs.{i}.conv2.1.weight"].shape[0] for i in down
    ]
    c_in = state["encoder.convs.1.0.weight"].shape[1]
    size = min(_int(options, "load_size") or 10**9, _int(options, "crop_size") or 10**9)
    sizes = [working_resolution(size)] if size < 10**9 else []
    sizes += [s for s in (256, 128, 512, 64, 1024, 32, 16, 8) if s not in sizes]
    ngfs = [n for n in [_int(options, "ngf")] if n] + list(range(1, 2049))
    for res in sizes:
        for ngf in ngfs:
            ch = _channels(ngf, 32, 512)
            if all(res >> i in ch and ch[res >> i] == w for i, w in enumerate(widths)):
                return {
                    "model.generator": "stylegan2",
                    "model.ngf": ngf,
                    "model.n_blocks": 2 * n_res,
                    "model.g_downsampling": n_down,
                    "data.crop_size": res,
                    "data.load_size": res,
                    "data.channels": int(c_in),
                }
    raise OfficialFileError(f"{path}: a StyleGAN2 generator with channel widths {widths} that no ngf reproduces")


_SG2_DECODER = re.compile(r"^decoder\.convs\.(\d+)\.(.*)$")


def _stylegan2_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official SinCUT generator keys -> ours: ``encoder.convs.i`` is ``encoder.i``; an upsampling
    StyledConv's ``conv.weight`` / ``conv.blur`` are our UpsampleConv's ``weight`` / ``blur``."""
    out = {}
    for k, v in state.items():
        if k.startswith("encoder.convs."):
            out["encoder." + k[len("encoder.convs.") :]] = v
        elif m := _SG2_DECODER.match(k):
            i, rest = m.groups()
            if rest.startswith("conv.") and not rest.startswith("conv.modulation"):
                rest = rest[len("conv.") :]
            out[f"decoder.{i}.{rest}"] = v
        else:
            out[k] = v
    return out


def _method(kind: str, options: dict[str, str], path: Path, settings: dict[str, Any]) -> str:
    named = method_of(options)
    if named:
        return named
    if kind == "stylegan2_G":
        return "sincut"
    m = _NET_FILE.match(path.name)
    if m and m.group("name") in ("G_A", "G_B"):
        return "cyclegan"
    if not settings.get("model.g_antialias", True) and not settings.get("model.g_antialias_up", True):
        return "cyclegan"  # the CycleGAN repository's generator (its test model's single G)
    return "cut"


def read_network(path: str | Path) -> OfficialNetwork:
    """Read and recognise one official network file (any of G, G_A, G_B, D, F)."""
    path = Path(path)
    state = _load_state(path)
    kind = kind_of(state)
    m = _NET_FILE.match(path.name)
    net = OfficialNetwork(path, kind, state, options=read_options(path), epoch=m.group("epoch") if m else None)
    if kind == "resnet_G":
        net.settings = _resnet_settings(state, path)
    elif kind == "stylegan2_G":
        net.settings = _stylegan2_settings(state, net.options, path)
        net.state = _stylegan2_keys(state)
    if kind in ("resnet_G", "stylegan2_G"):
        net.method = _method(kind, net.options, path, net.settings)
    return net


def read_generator(path: str | Path) -> OfficialNetwork:
    """An official generator file (or a folder holding ``latest_net_G.pth`` / ``latest_net_G_A.pth``);
    a discriminator or projection head, or anything else, is one line of :class:`OfficialFileError`."""
    path = generator_file(path)
    net = read_network(path)
    if net.kind not in ("resnet_G", "stylegan2_G"):
        what = WHAT.get(net.kind, net.kind)
        hint = f"; pass the generator beside it ({_sibling(path, 'G').name})" if net.kind in WHAT else ""
        raise OfficialFileError(f"{path} is {what}, not a generator{hint}")
    return net


def generator_file(path: str | Path) -> Path:
    """A file as it is; in a folder, its latest_net_G.pth (CUT, CycleGAN's test model) or latest_net_G_A.pth."""
    path = Path(path)
    if path.is_dir():
        for name in ("latest_net_G.pth", "latest_net_G_A.pth"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(
            f"{path} holds no checkpoints/latest.pt (unpaired) nor latest_net_G.pth / latest_net_G_A.pth "
            f"(the official code)"
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def is_official_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / n).is_file() for n in ("latest_net_G.pth", "latest_net_G_A.pth"))


def _sibling(path: Path, name: str) -> Path:
    m = _NET_FILE.match(path.name)
    epoch = m.group("epoch") if m else "latest"
    return path.with_name(f"{epoch}_net_{name}.pth")


def load_generator_weights(G: torch.nn.Module, net: OfficialNetwork) -> None:
    """Load an official generator's weights into ``G`` (built from ``net.settings``); one line names
    any key or shape that does not fit. InstanceNorm running statistics that old PyTorch versions saved
    (the official code deletes them too) are dropped."""
    own = G.state_dict()
    state = {k: v for k, v in net.state.items() if k in own or not k.endswith(_STATS)}
    load_module_state(G, state, net.path, "the network")


# ------------------------------------------------------------------------------------ fine-tuning
# our model's attribute -> the official network name, per family
NETWORKS = {"cut": {"G": "G", "D": "D", "F": "F"}, "cyclegan": {"G_A": "G_A", "G_B": "G_B", "D_A": "D_A", "D_B": "D_B"}}
GENERATORS = ("G", "G_A", "G_B")


def family_of(method: str | None) -> str:
    """The network family of a method: cyclegan (G_A, G_B, D_A, D_B) or cut (G, D, F)."""
    return "cyclegan" if method == "cyclegan" else "cut"


def network_files(source: str | Path, family: str) -> dict[str, Path]:
    """The official files a fine-tuning run starts from: {our attribute: file}. ``source`` is a folder
    (its latest_net_G.pth or latest_net_G_A.pth) or one generator file; the other networks of the same
    epoch beside it (``<epoch>_net_D.pth``, ``_F``, ``_G_B``, ...) are used when present."""
    source = Path(source)
    if not source.exists():
        raise CheckpointError(f"--init-from {source} does not exist; give an official run folder or its *_net_G.pth")
    first = generator_file(source)
    m = _NET_FILE.match(first.name)
    name = m.group("name") if m else None
    out: dict[str, Path] = {}
    if family == "cyclegan" and name == "G_B":
        out["G_B"] = first
    else:
        out["G_A" if family == "cyclegan" else "G"] = first  # the file given is the A->B generator
    if m:
        for ours, theirs in NETWORKS[family].items():
            f = _sibling(first, theirs)
            if ours not in out and f.is_file():
                out[ours] = f
    if not any(g in out for g in ("G", "G_A")):
        raise CheckpointError(f"--init-from {source}: no {_sibling(first, 'G_A').name} beside it (the A->B generator)")
    return out


def _patchgan_settings(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """ndf and depth of an official PatchGAN discriminator; one line for the variants unpaired does not build."""
    if "model.2.filt" not in state or any(k.endswith("running_mean") for k in state):
        raise OfficialFileError(
            f"{path}: a discriminator trained with --no_antialias or --normD batch, which unpaired's PatchGAN "
            f"(anti-aliased, instance norm) does not build; move {path.name} out of the folder to start D afresh"
        )
    convs = [k for k in state if re.match(r"model\.\d+\.weight$", k) and state[k].dim() == 4]
    return {"model.ndf": int(state["model.0.weight"].shape[0]), "model.n_layers_d": len(convs) - 2}


def init_settings(source: str | Path, method: str | None = None) -> tuple[str | None, dict[str, Any]]:
    """(method, settings) of the official run a fine-tuning run starts from: the method its files
    describe, and the architecture the run must have to take their weights: the generator's (from
    its keys and shapes), the discriminator's and the projection head's widths where their files
    are beside it, and ``model.nce_layers`` from ``train_opt.txt`` when F is loaded (F's heads are
    sized by those layers). ``method``: the run's method when it is already chosen (its family picks
    the networks: G, D, F or G_A, G_B, D_A, D_B). A file that is not what its place says, or a
    variant unpaired does not build, is one line of :class:`OfficialFileError`."""
    if not Path(source).exists():
        raise CheckpointError(f"--init-from {source} does not exist; give an official run folder or its *_net_G.pth")
    G = read_generator(source)
    method = method or G.method
    family = family_of(method)
    if family == "cyclegan" and G.kind == "stylegan2_G":
        raise OfficialFileError(
            f"{G.path} is the official SinCUT generator (StyleGAN2), and CycleGAN builds ResNet generators; "
            f"use --model sincut"
        )
    settings = dict(G.settings)
    if G.kind == "stylegan2_G":
        settings.pop("data.load_size", None)
    elif family == "cut":
        settings["model.generator"] = "resnet"
    for ours, f in network_files(G.path, family).items():
        if f == G.path:
            continue
        net = read_network(f)
        want = "generator" if ours in GENERATORS else ("discriminator" if ours.startswith("D") else "projection head")
        if (ours in GENERATORS) != (net.kind in ("resnet_G", "stylegan2_G")) or (ours == "F") != (net.kind == "F"):
            raise OfficialFileError(f"{f} should hold the {want} but is {WHAT.get(net.kind, net.kind)}")
        if ours in GENERATORS and net.settings != G.settings:
            raise OfficialFileError(f"{f}: its architecture differs from {G.path.name}'s; unpaired builds both alike")
        if net.kind == "patchgan_D":
            settings.update(_patchgan_settings(net.state, f))
        elif ours == "F":
            settings["model.projector_dim"] = int(net.state["mlp_0.2.weight"].shape[0])
            layers = G.options.get("nce_layers")
            if layers:
                settings["model.nce_layers"] = [int(x) for x in layers.split(",") if x.strip()]
    return method, settings


def mismatches(cfg: Any, settings: dict[str, Any]) -> list[str]:
    """``key: file value, config value`` for each setting a configuration does not share."""
    out = []
    for key, want in settings.items():
        section, name = key.split(".", 1)
        have = getattr(getattr(cfg, section), name, None)
        if have != want:
            out.append(f"{key} is {want!r} in the official files but {have!r} in the configuration")
    return out


def init_from_official(model: torch.nn.Module, source: str | Path) -> dict[str, str]:
    """Load the official networks of ``source`` into a freshly built model (CUT-family or CycleGAN):
    G (or G_A, G_B), and D, F (D_A, D_B) when their files are beside it. Returns {our network: file}
    of what was loaded. A file that does not fit is one line of error naming it and what to do."""
    family = "cyclegan" if hasattr(model, "G_A") else "cut"
    loaded = {}
    for ours, f in network_files(source, family).items():
        module = getattr(model, ours)
        net = read_network(f)
        if ours in GENERATORS and net.kind not in ("resnet_G", "stylegan2_G"):
            raise OfficialFileError(f"{f} is {WHAT.get(net.kind, net.kind)}, not a generator")
        own = module.state_dict()  # InstanceNorm statistics that old PyTorch versions saved are dropped
        state = {k: v for k, v in net.state.items() if k in own or not k.endswith(_STATS)}
        problem = state_mismatch(module, state)
        if problem:
            if ours == "F":
                got = [int(state[k].shape[1]) for k in sorted(state, key=_head) if k.endswith(".0.weight")]
                have = list(getattr(module, "in_channels", []))
                hint = (
                    f"its heads take {got} channels, the run's model.nce_layers {model.cfg.nce_layers} give "
                    f"{have}: pass the official --nce_layers as --set model.nce_layers=[...] (train_opt.txt beside "
                    f"it says which), or move {f.name} aside to start F afresh"
                )
            else:
                hint = f"{problem}; " + (
                    "build the run's configuration with --init-from (preset(..., init_from=...)), which reads it"
                    if ours in GENERATORS
                    else f"move {f.name} aside to start {ours} afresh"
                )
            raise OfficialFileError(f"--init-from {f}: it does not fit the run's {ours}: {hint}")
        module.load_state_dict(state)
        loaded[ours] = str(f)
    return loaded


def _head(key: str) -> int:
    m = re.match(r"mlp_(\d+)\.", key)
    return int(m.group(1)) if m else -1


def init_record(source: str | Path, loaded: dict[str, str]) -> dict[str, Any]:
    """What a run records about the official files it started from (its ``init_from.json``): the
    source as given (absolute), and per network the file and its SHA-256."""
    networks = {}
    for ours, f in loaded.items():
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        networks[ours] = {"file": str(Path(f).resolve()), "sha256": h.hexdigest()}
    return {"source": str(Path(source).resolve()), "networks": networks, "optimizers": "fresh"}
