"""Run configuration: dataclasses, YAML files, ``key=value`` overrides, and the one builder.

A :class:`Config` has three sections: ``model`` (the method's options: a :class:`ModelConfig`
subclass that the method's model file defines), ``data`` and ``train``. Every configuration is made
by :func:`unpaired.methods.build_config`, with this precedence, lowest first::

    dataclass defaults < method preset < YAML file < flags < --set overrides

This module is the bottom of the package: it imports nothing of it but errors and files. Which
options class a method name stands for is looked up in :data:`MODEL_OPTIONS`, which the method
registry (:mod:`unpaired.methods`, above the models) fills.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError
from .files import write_text

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "MODEL_OPTIONS",
    "STEP_MODES",
    "VAL_METRICS",
    "VAL_UNITS",
    "ON_COLLAPSE",
    "RUNTIME_FIELDS",
    "all_model_options",
    "apply_dict",
    "canonical_key",
    "diff",
    "load_yaml",
    "model_options",
    "own_model_options",
    "parse_override",
    "resolve",
    "save_yaml",
    "set_value",
]


@dataclass
class ModelConfig:
    """Options every method has. A method's model file subclasses it with its own options."""

    name: str = "cut"  # the registered method (preset) the run was built from
    ngf: int = 64  # generator width
    ndf: int = 64  # discriminator width
    n_blocks: int = 9  # generator residual blocks
    n_layers_d: int = 3  # PatchGAN depth (3 = 70x70 receptive field)
    gan_mode: str = "lsgan"  # lsgan | vanilla | nonsaturating
    init_gain: float = 0.02  # xavier-normal gain (ResNet / PatchGAN; StyleGAN2 nets use equalized learning rate)
    # DiffAugment for the discriminator(s): "" (off, the references) or groups of color, translation,
    # cutout, e.g. "color,translation,cutout" (unpaired.nets.diffaugment)
    d_augment: str = ""
    # ResNet generator variants of the official code (files trained there load with their own):
    g_norm: str = "instance"  # instance | batch | none (the official normG / norm)
    g_antialias: bool = True  # blur-pool downsampling (False = the official --no_antialias)
    g_antialias_up: bool = True  # blurred upsampling (False = --no_antialias_up: transposed convs)
    g_dropout: bool = False  # Dropout(0.5) in each residual block (the official default without --no_dropout)

    def problems(self, data: "DataConfig") -> list[str]:
        """What is wrong with these options for this data (empty when usable)."""
        out = []
        if self.gan_mode not in ("lsgan", "vanilla", "nonsaturating"):
            out.append(f"model.gan_mode must be lsgan, vanilla or nonsaturating, got {self.gan_mode!r}")
        if min(self.ngf, self.ndf, self.n_layers_d) < 1 or self.n_blocks < 0:
            out.append("model.ngf, model.ndf and model.n_layers_d must be >= 1, model.n_blocks >= 0")
        groups = [g.strip() for g in self.d_augment.split(",") if g.strip()]
        unknown = [g for g in groups if g not in ("color", "translation", "cutout")]
        if unknown or len(set(groups)) != len(groups):
            out.append(
                f"model.d_augment must be a comma-separated list of distinct color, translation, cutout "
                f"(or empty), got {self.d_augment!r}"
            )
        if self.g_norm not in ("instance", "batch", "none"):
            out.append(f"model.g_norm must be instance, batch or none, got {self.g_norm!r}")
        return out


@dataclass
class DataConfig:
    mode: str = "unaligned"  # unaligned (two folders) | single (one image per domain, SinCUT)
    root: str | None = None  # folder with trainA/ and trainB/
    image_a: str | None = None  # single mode: the domain-A image (default: the one in root/trainA)
    image_b: str | None = None  # single mode: the domain-B image (default: the one in root/trainB)
    zoom_max: float = 3.0  # single mode: each minibatch zooms the image by a factor in [1/zoom_max, 1] per axis
    epoch_length: int = 100000  # single mode: crops per "epoch", the LR schedule unit (the reference: 100,000)
    channels: int = 3  # 1 (grayscale) or 3 (RGB); images are converted on load (alpha over white)
    crop_size: int = 256  # random crop size (multiple of 4, >= 32)
    # square resize before the crop; None = crop_size * 286/256; in the decay epochs images are resized
    # to the crop size, as the reference does
    load_size: int | None = None
    flip: bool = True  # random horizontal flip
    batch_size: int = 1  # images per iteration (per process under torchrun)
    # data-loading processes (0 = load in the main process; persistent, pinned memory on CUDA); results do
    # not depend on it
    num_workers: int = 2
    strict: bool = False  # stop at an unreadable image instead of skipping it


@dataclass
class TrainConfig:
    epochs: int = 200  # epochs at the initial learning rate
    # epochs of linear decay to zero (the LR steps once per epoch; an epoch is max(|A|, |B|) images)
    epochs_decay: int = 200
    iters: int | None = None  # stop after this many iterations in total (None = all epochs)
    lr: float = 2e-4  # Adam learning rate of G, D and F
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    adam_eps: float = 1e-8  # Adam's epsilon (PyTorch's default, as the reference)
    seed: int = 0  # weights, sampling and augmentation (bit-identical on the CPU at a fixed thread count)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "fp32"  # fp32 | bf16 (autocast anywhere) | fp16 (loss scaling, CUDA only)
    compile: str = "auto"  # auto | off | compile: how the training step runs (unpaired.step)
    deterministic: bool = False  # deterministic kernels on CUDA (unpaired.devices); changes nothing on the CPU
    log_every: int = 10  # iterations between metrics.jsonl / TensorBoard entries
    sample_every: int = 500  # iterations between triptych PNGs (0 = never)
    save_every: int = 1000  # iterations between checkpoints (0 = only at the end); one is written at every stop
    val_every: int = 0  # validate on the val split every N val_units (0 = never), and once more at the end
    val_unit: str = "epoch"  # epoch | iter
    val_num: int | None = None  # at most this many val images (None = all)
    val_metric: str = "fid"  # fid | kid: which one picks the best checkpoint
    stop_on_collapse: bool = False  # the older spelling of on_collapse: stop
    # when validation finds the run collapsed: warn (go on) | stop (with a checkpoint) | restart (roll
    # back to the last healthy validation with new random streams, at most max_restarts times)
    on_collapse: str = "warn"
    max_restarts: int = 3  # on_collapse restart: restarts before the next collapse stops the run


# method name -> its options class (CUTConfig for cut, fastcut, ...). unpaired.methods.register_method
# fills it; it lives here, below the registry and the models, so that reading a config needs neither.
MODEL_OPTIONS: dict[str, type[ModelConfig]] = {}


def model_options(name: str) -> type[ModelConfig]:
    """The options class of a registered method."""
    try:
        return MODEL_OPTIONS[name]
    except KeyError:
        known = ", ".join(MODEL_OPTIONS) or "none yet (import unpaired.methods, which registers the built-in ones)"
        raise ConfigError(f"unknown model {name!r}; choose one of: {known}") from None


def all_model_options() -> frozenset[str]:
    """Every model option of every method (configs saved before the split into per-method options
    held all of them; loading such a config drops those of other methods)."""
    return frozenset(f.name for cls in MODEL_OPTIONS.values() for f in fields(cls))


def own_model_options(name: str, model: Mapping[str, Any]) -> dict[str, Any]:
    """A saved ``model`` section without the options of methods other than ``name`` (what configs
    saved before the split into per-method options held); keys no method knows are kept."""
    own = {f.name for f in fields(model_options(name))}
    return {k: v for k, v in model.items() if k in own or k not in all_model_options()}


def _default_model() -> ModelConfig:
    return model_options("cut")(name="cut")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=_default_model)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], strict: bool = True) -> "Config":
        """A config from a ``{section: {field: value}}`` mapping; its ``model.name`` picks the method.

        ``strict=False`` is for configs saved by earlier versions (run folders, checkpoints), whose
        ``model`` section held every method's options: options of other methods are dropped."""
        if not isinstance(d, dict):
            raise ConfigError(f"expected a mapping of sections (model, data, train), got {type(d).__name__}")
        model = dict(d.get("model") or {})
        cfg = cls(model=model_options(model.get("name", "cut"))(name=model.get("name", "cut")))
        if not strict:
            model = own_model_options(cfg.model.name, model)
        apply_dict(cfg, {**d, "model": model}, source="config")
        return cfg


STEP_MODES = ("auto", "off", "compile", "cudagraphs")  # train.compile: see unpaired.step.build_step
VAL_UNITS = ("epoch", "iter")  # train.val_unit
ON_COLLAPSE = ("warn", "stop", "restart")  # train.on_collapse: what validation does with a collapsed run
VAL_METRICS = ("fid", "kid")  # train.val_metric: which one picks the best checkpoint

# Fields that may differ when a run is resumed: they change how it runs, not what it computes.
RUNTIME_FIELDS = {
    "train.iters",
    "train.device",
    "train.compile",
    "train.deterministic",
    "train.log_every",
    "train.sample_every",
    "train.save_every",
    "data.num_workers",
    "data.root",
    "data.strict",
    "train.val_every",
    "train.val_unit",
    "train.val_num",
    "train.stop_on_collapse",
    "train.on_collapse",
    "train.max_restarts",
    "data.image_a",
    "data.image_b",
}


def _section_fields(cfg: Config) -> dict[str, dict[str, dataclasses.Field]]:
    return {f.name: {g.name: g for g in fields(getattr(cfg, f.name))} for f in fields(cfg)}


def _coerce(value: Any, fld: dataclasses.Field, where: str) -> Any:
    """Check a value against a field's annotated type (ints widen to float; None where allowed)."""
    t = str(fld.type)
    if value is None:
        if "None" in t:
            return None
        raise ConfigError(f"{where} may not be empty")
    if t.startswith("list"):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{where} must be a list of integers, got {value!r}")
        return list(value)
    if t.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if t.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if t.startswith("float"):
        if isinstance(value, str):
            try:  # YAML 1.1 reads 2e-4 (no dot) as a string
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if t.startswith("str"):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


def canonical_key(cfg: Config, key: str) -> str:
    """``section.field`` of a key as :func:`set_value` reads it (a bare field name is looked up)."""
    if "." in key:
        return key
    owners = [s for s, names in _section_fields(cfg).items() if key in names]
    return f"{owners[0]}.{key}" if len(owners) == 1 else f"model.{key}"


def set_value(cfg: Config, key: str, value: Any, source: str = "--set") -> None:
    """Set ``section.field`` (or a bare ``field`` that exists in exactly one section)."""
    sections = _section_fields(cfg)
    section, name = key.split(".", 1) if "." in key else (None, key)
    if section is None:
        owners = [s for s in sections if key in sections[s]]
        if len(owners) > 1:
            raise ConfigError(
                f"{source}: {key!r} is ambiguous; write one of " + ", ".join(f"{s}.{key}" for s in owners)
            )
        section = owners[0] if owners else "model"
    if section not in sections or name not in sections[section]:
        methods = [m for m, cls in MODEL_OPTIONS.items() if name in {f.name for f in fields(cls)}]
        if section == "model" and methods:
            raise ConfigError(
                f"{source}: model.{name} is an option of {', '.join(methods)}, not of "
                f"{cfg.model.name}; leave it out for {cfg.model.name}"
            )
        raise ConfigError(
            f"{source}: unknown setting {key!r} for model {cfg.model.name}; known: "
            + ", ".join(f"{s}.{n}" for s in sections for n in sections[s])
        )
    value = _coerce(value, sections[section][name], f"{source}: {section}.{name}")
    if (section, name) == ("model", "name") and value != cfg.model.name:
        raise ConfigError(
            f"{source}: model.name {value!r} contradicts the method {cfg.model.name!r} this "
            f"configuration was built for; choose the method with --model (or preset(name))"
        )
    setattr(getattr(cfg, section), name, value)


def apply_dict(cfg: Config, d: Mapping[str, Any], source: str) -> None:
    """Apply a nested ``{section: {field: value}}`` mapping."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections (model, data, train), got {type(d).__name__}")
    for section, values in d.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: section {section!r} must be a mapping of settings")
        for name, value in values.items():
            set_value(cfg, f"{section}.{name}", value, source)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML (numbers, booleans, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {e}") from None
    return key.strip(), value


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    return d


def save_yaml(cfg: Config, path: str | Path) -> None:
    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def resolve(cfg: Config) -> Config:
    """Fill derived values and validate; returns the same object."""
    d, t = cfg.data, cfg.train
    if d.load_size is None:
        d.load_size = int(round(d.crop_size * 286 / 256))
    checks = [
        (d.channels in (1, 3), f"data.channels must be 1 or 3, got {d.channels}"),
        (
            d.crop_size >= 32 and d.crop_size % 4 == 0,
            f"data.crop_size must be a multiple of 4 and >= 32 (the PatchGAN's smallest input), got {d.crop_size}",
        ),
        (d.load_size >= d.crop_size, f"data.load_size ({d.load_size}) must be >= data.crop_size ({d.crop_size})"),
        (d.batch_size >= 1, f"data.batch_size must be >= 1, got {d.batch_size}"),
        (d.num_workers >= 0, f"data.num_workers must be >= 0, got {d.num_workers}"),
        (
            t.epochs >= 0 and t.epochs_decay >= 0 and t.epochs + t.epochs_decay > 0,
            "train.epochs and train.epochs_decay must be >= 0 with a positive sum",
        ),
        (t.iters is None or t.iters >= 1, f"train.iters must be >= 1, got {t.iters}"),
        (t.precision in ("fp32", "bf16", "fp16"), f"train.precision must be fp32, bf16 or fp16, got {t.precision!r}"),
        (t.compile in STEP_MODES, f"train.compile must be one of {', '.join(STEP_MODES)}, got {t.compile!r}"),
        (d.mode in ("unaligned", "single"), f"data.mode must be unaligned or single, got {d.mode!r}"),
        (d.zoom_max >= 1 and d.epoch_length >= 1, "data.zoom_max must be >= 1 and data.epoch_length >= 1"),
        (
            t.log_every >= 1 and t.sample_every >= 0 and t.save_every >= 0,
            "train.log_every must be >= 1; sample_every and save_every >= 0",
        ),
        (
            t.val_every >= 0
            and t.val_unit in VAL_UNITS
            and t.val_metric in VAL_METRICS
            and (t.val_num is None or t.val_num >= 2),
            "train.val_every must be >= 0, val_unit epoch or iter, val_metric fid or kid, val_num >= 2",
        ),
        (
            t.on_collapse in ON_COLLAPSE and t.max_restarts >= 0,
            f"train.on_collapse must be warn, stop or restart (got {t.on_collapse!r}) and train.max_restarts >= 0",
        ),
        (
            not (t.stop_on_collapse and t.on_collapse == "restart"),
            "train.stop_on_collapse (--stop-on-collapse) contradicts train.on_collapse: restart; give one of them",
        ),
    ]
    problems = [msg for ok, msg in checks if not ok] + cfg.model.problems(d)
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else "; ".join(problems))
    return cfg


def diff(a: Config, b: Config, ignore: set[str] = frozenset()) -> list[str]:
    """Human-readable differences between two configs, as ``key: a -> b`` lines."""
    out = []
    da, db = a.to_dict(), b.to_dict()
    for section in da:
        for name in sorted(set(da[section]) | set(db[section]), key=list({**da[section], **db[section]}).index):
            key = f"{section}.{name}"
            if key not in ignore and da[section].get(name) != db[section].get(name):
                out.append(f"{key}: {da[section].get(name)!r} -> {db[section].get(name)!r}")
    return out
