"""The method registry: each method is registered once, with its model class, preset and display name.

``--model`` choices, :func:`unpaired.preset`, checkpoint loading and the report's method names all
read this table. Adding a method is one model file (an ``nn.Module`` with a ``config_class``, see
``models/cut.py``) and one :func:`register_method` call::

    register_method("mymethod", MyModel, display="MyMethod", preset={"train": {"epochs": 50}},
                    description="what it is, in one line")

It sits above the configuration schema and the model files: it is where a method name becomes a
configuration (:func:`build_config`, :func:`preset`) and a model (:func:`build_model`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from .config import (
    MODEL_OPTIONS,
    Config,
    ConfigError,
    apply_dict,
    canonical_key,
    load_yaml,
    parse_override,
    resolve,
    set_value,
)
from .models import official
from .models.cut import CUT
from .models.cyclegan import CycleGAN


@dataclass(frozen=True)
class Method:
    name: str  # what --model and preset() take, and what checkpoints record
    model: type  # nn.Module class: config_class, make_optimizers, train_step, ...
    display: str  # family name in tables: CUT, FastCUT, SinCUT, CycleGAN
    preset: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # overrides per config section
    description: str = ""

    @property
    def config_class(self) -> type:
        return self.model.config_class

    def label(self, model_options: Mapping[str, Any]) -> str:
        """How a report names a run: 'CUT - CE', 'FastCUT - Focal (gamma 2, alpha 0.25)', 'CycleGAN'."""
        if "focal_gamma" not in model_options:
            return self.display
        g, a = model_options["focal_gamma"], model_options["focal_alpha"]
        return f"{self.display} - CE" if (g, a) == (0, 1) else f"{self.display} - Focal (gamma {g:g}, alpha {a:g})"


METHODS: dict[str, Method] = {}


def register_method(
    name: str, model: type, display: str, preset: Mapping[str, Mapping[str, Any]] | None = None, description: str = ""
) -> Method:
    """Make a method available to the CLI, the Python API, checkpoints and reports."""
    if not hasattr(model, "config_class"):
        raise TypeError(f"{model.__name__} needs a config_class attribute (a ModelConfig subclass)")
    method = Method(name, model, display, preset or {}, description)
    METHODS[name] = method
    MODEL_OPTIONS[name] = model.config_class
    return method


def unregister_method(name: str) -> None:
    """Remove a method added with :func:`register_method` (tests, notebooks that redefine one)."""
    METHODS.pop(name, None)
    MODEL_OPTIONS.pop(name, None)


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(METHODS)}") from None


def method_names() -> list[str]:
    return list(METHODS)


# ----------------------------------------------------------------------------- the built-in methods
def _register_builtin() -> None:
    focal = {"focal_gamma": 2.0, "focal_alpha": 0.25}
    fastcut = {"nce_idt": False, "lambda_nce": 10.0, "flip_equivariance": True}
    fastcut_train = {"epochs": 150, "epochs_decay": 50}
    # SinCUT: the reference's sincut_model.py defaults, with the thesis's 128 px crops cut into 64 px
    # tiles for the discriminator (d_tile_size = crop_size gives the reference's setting)
    sincut_model = {
        "generator": "stylegan2",
        "discriminator": "stylegan2",
        "ngf": 10,
        "ndf": 8,
        "g_downsampling": 1,
        "gan_mode": "nonsaturating",
        "lambda_nce": 4.0,
        "nce_idt": True,
        "nce_layers": [0, 2, 4],
        "num_patches": 1,
        "nce_negatives": "batch",
        "lambda_r1": 1.0,
        "lambda_identity": 1.0,
        "d_tile_size": 64,
    }
    sincut_rest = {
        "data": {"mode": "single", "crop_size": 128, "load_size": 128, "batch_size": 16},
        "train": {
            "lr": 2e-3,
            "beta1": 0.0,
            "beta2": 0.99,
            "epochs": 8,
            "epochs_decay": 8,
            "sample_every": 1000,
            "save_every": 5000,
        },
    }
    register_method("cut", CUT, "CUT", {}, "identity PatchNCE on B, lambda_NCE 1, 200 + 200 epochs (the paper's CUT)")
    register_method("cut-focal", CUT, "CUT", {"model": focal}, "CUT with focal PatchNCE (gamma 2, alpha 0.25)")
    register_method(
        "fastcut",
        CUT,
        "FastCUT",
        {"model": fastcut, "train": fastcut_train},
        "no identity NCE, lambda_NCE 10, flip-equivariance, 150 + 50 epochs",
    )
    register_method(
        "fastcut-focal",
        CUT,
        "FastCUT",
        {"model": {**fastcut, **focal}, "train": fastcut_train},
        "FastCUT with focal PatchNCE (gamma 2, alpha 0.25)",
    )
    register_method(
        "sincut",
        CUT,
        "SinCUT",
        {"model": sincut_model, **sincut_rest},
        "one image per domain: StyleGAN2-style G/D, R1, identity L1, 16 crops of 128 px",
    )
    register_method(
        "sincut-focal",
        CUT,
        "SinCUT",
        {"model": {**sincut_model, **focal}, **sincut_rest},
        "SinCUT with focal PatchNCE (gamma 2, alpha 0.25)",
    )
    # CycleGAN paper schedule: 100 epochs at constant LR, 100 of linear decay
    register_method(
        "cyclegan",
        CycleGAN,
        "CycleGAN",
        {"train": {"epochs": 100, "epochs_decay": 100}},
        "baseline: two ResNet-9 G, two PatchGAN D, cycle L1 10, identity 0.5, pool 50",
    )


_register_builtin()


# ----------------------------------------------------------------------------- configurations and models
Settings = Mapping[str, Any]


def build_config(
    method: str | None = None,
    *,
    file: str | Path | None = None,
    base: Config | None = None,
    settings: Sequence[tuple[str, Settings]] = (),
    overrides: Iterable[str] = (),
    init_from: str | Path | None = None,
) -> Config:
    """The one way a configuration is made (CLI, Python API, profile, sweep, experiment, demo).

    ``method``: a registered method (``cut``, ``fastcut``, ...); else the YAML ``file``'s
    ``model.name``; else ``base`` (e.g. the saved config of a run being resumed); else, with
    ``init_from``, the method of the official files. Then, in order: the method's preset, the YAML
    ``file``, each ``(source, {key: value})`` of ``settings`` (flags; ``source`` names them in
    errors), and the ``key=value`` strings of ``overrides`` (``--set``).

    ``init_from``: an official run folder or generator file (``train --init-from``): the
    architecture its networks have (``unpaired.models.official.init_settings``) is set last; a file,
    flag or override that asks for another value of one of those settings is a :class:`ConfigError`
    naming it. Returns a resolved, validated config."""
    file_cfg = load_yaml(file) if file else {}
    if not isinstance(file_cfg, dict):
        raise ConfigError(f"{file}: expected a mapping of sections (model, data, train)")
    file_name = (file_cfg.get("model") or {}).get("name") if isinstance(file_cfg.get("model"), dict) else None
    if method and file_name and method != file_name:
        raise ConfigError(f"--model {method} contradicts model.name: {file_name} in {file}")
    name = method or file_name
    init: dict[str, Any] = {}
    if init_from is not None:
        found, init = official.init_settings(init_from, name or (base.model.name if base is not None else None))
        if not name and base is None:
            name = found
    if name:
        m = get_method(name)
        cfg = Config(model=m.config_class(name=name))
        apply_dict(cfg, m.preset, source=f"preset {name}")
        apply_dict(cfg, file_cfg, source=str(file))
    elif base is not None:
        cfg = copy.deepcopy(base)
    else:
        raise ConfigError(
            "choose a model with --model (" + ", ".join(method_names()) + ") or a --config file that sets model.name"
        )
    explicit = {}  # section.field -> the source that set it last (a file, a flag, --set)
    for section, values in file_cfg.items() if init else ():
        for key in values if isinstance(values, Mapping) else ():
            explicit[f"{section}.{key}"] = str(file)
    for source, values in settings:
        for key, value in values.items():
            set_value(cfg, key, value, source=source)
            explicit[canonical_key(cfg, key)] = source
    for item in overrides:
        key, value = parse_override(item)
        set_value(cfg, key, value)
        explicit[canonical_key(cfg, key)] = f"--set {key}"
    for key, want in init.items():
        section, field_name = key.split(".", 1)
        have = getattr(getattr(cfg, section), field_name)
        if key in explicit and have != want:
            raise ConfigError(
                f"{explicit[key]}: {key} {have!r} contradicts --init-from {init_from}, whose networks have "
                f"{key} {want!r}; leave it out (the architecture is read from the official files)"
            )
        set_value(cfg, key, want, source=f"--init-from {init_from}")
    return resolve(cfg)


def preset(name: str, init_from: str | Path | None = None, **overrides: Any) -> Config:
    """The resolved configuration of a registered method, with any settings changed by keyword:
    a field name (``crop_size=64``, ``root="datasets/h2z"``, ``focal_gamma=3``) or, through
    ``**{"model.ngf": 32}``, a dotted key. Derived values (``data.load_size``) follow the overrides.

    ``init_from``: an official run folder or generator file whose networks the run will start from
    (pass it to :class:`~unpaired.training.trainer.Trainer` too): the configuration takes their
    architecture (``ngf``, blocks, norm, ...); a keyword that contradicts it is a :class:`ConfigError`."""
    return build_config(name, settings=[("preset()", overrides)] if overrides else (), init_from=init_from)


def build_model(cfg: Config) -> torch.nn.Module:
    """Instantiate the method named by ``cfg.model.name`` for the configured channels and crop size."""
    return get_method(cfg.model.name).model(cfg.model, channels=cfg.data.channels, crop_size=cfg.data.crop_size)


def build_generator(cfg: Config) -> torch.nn.Module:
    """The method's A->B generator alone (for translation and export), untrained."""
    return get_method(cfg.model.name).model.build_generator(cfg.model, cfg.data.channels, cfg.data.crop_size)
