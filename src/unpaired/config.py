"""Experiment configuration: dataclasses, presets, YAML files and ``key=value`` overrides.

Precedence, lowest first: dataclass defaults < preset (``--model``) < YAML file < CLI flags < ``--set``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value, file or override is invalid; the message says which and why."""


@dataclass
class ModelConfig:
    name: str = "cut"                 # preset the run was built from
    ngf: int = 64                     # generator width
    ndf: int = 64                     # discriminator width
    n_blocks: int = 9                 # generator residual blocks
    n_layers_d: int = 3               # PatchGAN depth (3 = 70x70 receptive field)
    gan_mode: str = "lsgan"           # lsgan | vanilla | nonsaturating
    lambda_gan: float = 1.0
    lambda_nce: float = 1.0
    nce_idt: bool = True              # identity PatchNCE on domain B (CUT)
    nce_layers: list[int] = field(default_factory=lambda: [0, 4, 8, 12, 16])
    num_patches: int = 256            # sampled locations per layer
    nce_temperature: float = 0.07
    nce_negatives: str = "image"      # image (CUT/FastCUT) | batch (SinCUT)
    focal_gamma: float = 0.0          # 0 with alpha 1 = cross-entropy PatchNCE
    focal_alpha: float = 1.0
    flip_equivariance: bool = False   # FastCUT's flip augmentation
    projector_dim: int = 256          # width of the projection head F
    init_gain: float = 0.02
    generator: str = "resnet"         # resnet (CUT) | stylegan2 (SinCUT)
    discriminator: str = "patchgan"   # patchgan (CUT) | stylegan2 (SinCUT)
    g_downsampling: int = 1           # stylegan2 generator: number of downsamplings
    d_tile_size: int = 0              # cut crops into tiles of this size before D (0 = whole crop)
    lambda_r1: float = 0.0            # R1 penalty on real images (SinCUT 1)
    lambda_identity: float = 0.0      # L1 between G(B) and B (SinCUT 1)
    lambda_cycle: float = 10.0        # CycleGAN: cycle-consistency L1 weight (both directions)
    cycle_identity: float = 0.5       # CycleGAN: identity L1 weight, as a fraction of lambda_cycle
    pool_size: int = 50               # CycleGAN: history of fakes shown to the discriminators


@dataclass
class DataConfig:
    mode: str = "unaligned"           # unaligned (two folders) | single (one image per domain, SinCUT)
    root: str | None = None           # folder with trainA/ and trainB/
    image_a: str | None = None        # single mode: the domain-A image (default: the one in root/trainA)
    image_b: str | None = None        # single mode: the domain-B image (default: the one in root/trainB)
    zoom_max: float = 3.0             # single mode: crops come from zooms in [1/zoom_max, 1] of the image
    epoch_length: int = 100000        # single mode: crops per "epoch" (the reference pretends 100,000)
    channels: int = 3                 # 1 (grayscale) or 3 (RGB); images are converted on load
    crop_size: int = 256
    load_size: int | None = None      # resize before cropping; None = crop_size * 286/256
    flip: bool = True                 # random horizontal flip
    batch_size: int = 1
    num_workers: int = 2              # data-loading processes (0 = load in the main process)
    strict: bool = False              # stop at an unreadable image instead of skipping it


@dataclass
class TrainConfig:
    epochs: int = 200                 # epochs at the initial learning rate
    epochs_decay: int = 200           # epochs of linear decay to zero
    iters: int | None = None          # stop after this many iterations in total (None = all epochs)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    adam_eps: float = 1e-8            # Adam's epsilon (PyTorch's default, as the reference)
    seed: int = 0
    device: str = "auto"              # auto | cpu | cuda | cuda:N | mps
    precision: str = "fp32"           # fp32 | bf16 | fp16
    log_every: int = 10               # iterations between metrics.jsonl / TensorBoard entries
    sample_every: int = 500           # iterations between triptych PNGs (0 = never)
    save_every: int = 1000            # iterations between checkpoints (0 = only at the end)
    val_every: int = 0                # validate on the val split every N val_units (0 = never)
    val_unit: str = "epoch"           # epoch | iter
    val_num: int | None = None        # at most this many val images (None = all)
    val_metric: str = "fid"           # fid | kid: which one picks the best checkpoint


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        cfg = cls()
        apply_dict(cfg, d, source="config")
        return cfg


_FOCAL = {"focal_gamma": 2.0, "focal_alpha": 0.25}
_FASTCUT = {"nce_idt": False, "lambda_nce": 10.0, "flip_equivariance": True}
_FASTCUT_TRAIN = {"epochs": 150, "epochs_decay": 50}
# SinCUT: the reference's sincut_model.py defaults, with the thesis's 128 px crops cut into 64 px
# tiles for the discriminator (d_tile_size = crop_size gives the reference's setting)
_SINCUT = {
    "model": {"generator": "stylegan2", "discriminator": "stylegan2", "ngf": 10, "ndf": 8, "g_downsampling": 1,
              "gan_mode": "nonsaturating", "lambda_nce": 4.0, "nce_idt": True, "nce_layers": [0, 2, 4],
              "num_patches": 1, "nce_negatives": "batch", "lambda_r1": 1.0, "lambda_identity": 1.0,
              "d_tile_size": 64},
    "data": {"mode": "single", "crop_size": 128, "load_size": 128, "batch_size": 16},
    "train": {"lr": 2e-3, "beta1": 0.0, "beta2": 0.99, "epochs": 8, "epochs_decay": 8,
              "sample_every": 1000, "save_every": 5000},
}

# name -> overrides of the dataclass defaults, per section (the reference's defaults per method)
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cut": {"model": {}},
    "cut-focal": {"model": dict(_FOCAL)},
    "fastcut": {"model": dict(_FASTCUT), "train": dict(_FASTCUT_TRAIN)},
    "fastcut-focal": {"model": {**_FASTCUT, **_FOCAL}, "train": dict(_FASTCUT_TRAIN)},
    "sincut": _SINCUT,
    # CycleGAN paper schedule: 100 epochs at constant LR, 100 of linear decay
    "cyclegan": {"train": {"epochs": 100, "epochs_decay": 100}},
    "sincut-focal": {**_SINCUT, "model": {**_SINCUT["model"], **_FOCAL}},
}

# Fields that may differ when a run is resumed: they change how it runs, not what it computes.
RUNTIME_FIELDS = {"train.iters", "train.device", "train.log_every", "train.sample_every",
                  "train.save_every", "data.num_workers", "data.root", "data.strict",
                  "train.val_every", "train.val_unit", "train.val_num", "data.image_a", "data.image_b"}


def preset(name: str) -> Config:
    """The configuration of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(PRESETS)}")
    cfg = Config()
    apply_dict(cfg, PRESETS[name], source=f"preset {name}")
    cfg.model.name = name
    return cfg


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
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
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


def set_value(cfg: Config, key: str, value: Any, source: str = "--set") -> None:
    """Set ``section.field`` (or a bare ``field`` that exists in exactly one section)."""
    sections = _section_fields(cfg)
    if "." in key:
        section, name = key.split(".", 1)
        if section not in sections or name not in sections[section]:
            raise ConfigError(f"{source}: unknown setting {key!r}; known: "
                              + ", ".join(f"{s}.{n}" for s in sections for n in sections[s]))
    else:
        owners = [s for s in sections if key in sections[s]]
        if len(owners) != 1:
            raise ConfigError(f"{source}: unknown setting {key!r}" if not owners else
                              f"{source}: {key!r} is ambiguous; write one of " + ", ".join(f"{s}.{key}" for s in owners))
        section, name = owners[0], key
    setattr(getattr(cfg, section), name, _coerce(value, sections[section][name], f"{source}: {section}.{name}"))


def apply_dict(cfg: Config, d: dict[str, Any], source: str) -> None:
    """Apply a nested ``{section: {field: value}}`` mapping."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (model, data, train), got {type(d).__name__}")
    for section, values in d.items():
        if not isinstance(values, dict):
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
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def resolve(cfg: Config) -> Config:
    """Fill derived values and validate; returns the same object."""
    d, m, t = cfg.data, cfg.model, cfg.train
    if d.load_size is None:
        d.load_size = int(round(d.crop_size * 286 / 256))
    checks = [
        (d.channels in (1, 3), f"data.channels must be 1 or 3, got {d.channels}"),
        (d.crop_size >= 32 and d.crop_size % 4 == 0,
         f"data.crop_size must be a multiple of 4 and >= 32 (the PatchGAN's smallest input), got {d.crop_size}"),
        (d.load_size >= d.crop_size, f"data.load_size ({d.load_size}) must be >= data.crop_size ({d.crop_size})"),
        (d.batch_size >= 1, f"data.batch_size must be >= 1, got {d.batch_size}"),
        (d.num_workers >= 0, f"data.num_workers must be >= 0, got {d.num_workers}"),
        (t.epochs >= 0 and t.epochs_decay >= 0 and t.epochs + t.epochs_decay > 0,
         "train.epochs and train.epochs_decay must be >= 0 with a positive sum"),
        (t.iters is None or t.iters >= 1, f"train.iters must be >= 1, got {t.iters}"),
        (t.precision in ("fp32", "bf16", "fp16"), f"train.precision must be fp32, bf16 or fp16, got {t.precision!r}"),
        (m.gan_mode in ("lsgan", "vanilla", "nonsaturating"), f"model.gan_mode must be lsgan, vanilla or nonsaturating, got {m.gan_mode!r}"),
        (m.nce_negatives in ("image", "batch"), f"model.nce_negatives must be image or batch, got {m.nce_negatives!r}"),
        (len(m.nce_layers) > 0 and sorted(set(m.nce_layers)) == m.nce_layers,
         f"model.nce_layers must be distinct increasing layer indices, got {m.nce_layers}"),
        (m.num_patches >= 1, f"model.num_patches must be >= 1, got {m.num_patches}"),
        (m.focal_gamma >= 0 and m.focal_alpha > 0, "model.focal_gamma must be >= 0 and model.focal_alpha > 0"),
        (m.generator in ("resnet", "stylegan2") and m.discriminator in ("patchgan", "stylegan2"),
         "model.generator must be resnet or stylegan2 and model.discriminator patchgan or stylegan2"),
        (d.mode in ("unaligned", "single"), f"data.mode must be unaligned or single, got {d.mode!r}"),
        (m.d_tile_size == 0 or (m.d_tile_size >= 8 and d.crop_size % m.d_tile_size == 0),
         f"model.d_tile_size ({m.d_tile_size}) must divide data.crop_size ({d.crop_size}) (0 = no tiles)"),
        (m.discriminator != "stylegan2" or (lambda s: s >= 8 and s & (s - 1) == 0)(m.d_tile_size or d.crop_size),
         "the stylegan2 discriminator needs a power-of-two input: set model.d_tile_size (or data.crop_size) to 64, 128, ..."),
        (d.zoom_max >= 1 and d.epoch_length >= 1, "data.zoom_max must be >= 1 and data.epoch_length >= 1"),
        (m.lambda_identity == 0 or m.nce_idt, "model.lambda_identity needs model.nce_idt: true (G(B) is computed for it)"),
        (t.log_every >= 1 and t.sample_every >= 0 and t.save_every >= 0,
         "train.log_every must be >= 1; sample_every and save_every >= 0"),
        (t.val_every >= 0 and t.val_unit in ("epoch", "iter") and t.val_metric in ("fid", "kid")
         and (t.val_num is None or t.val_num >= 2),
         "train.val_every must be >= 0, val_unit epoch or iter, val_metric fid or kid, val_num >= 2"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    return cfg


def diff(a: Config, b: Config, ignore: set[str] = frozenset()) -> list[str]:
    """Human-readable differences between two configs, as ``key: a -> b`` lines."""
    out = []
    da, db = a.to_dict(), b.to_dict()
    for section in da:
        for name in da[section]:
            key = f"{section}.{name}"
            if key not in ignore and da[section][name] != db[section].get(name):
                out.append(f"{key}: {da[section][name]!r} -> {db[section].get(name)!r}")
    return out
