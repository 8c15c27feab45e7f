"""unpaired: unpaired image-to-image translation with patchwise contrastive learning.

The public Python API (stable names, keyword arguments)::

    import unpaired

    config = unpaired.preset("fastcut", root="datasets/horse2zebra", crop_size=128)
    summary = unpaired.Trainer(config, "runs/h2z").fit()      # resumes if runs/h2z holds a checkpoint
    translator = unpaired.load("runs/h2z")                    # -> unpaired.Translator
    zebra = translator(PIL.Image.open("horse.jpg"))          # same size and mode as the input
    scores = unpaired.evaluate_folders("datasets/horse2zebra/testB", "out/", kid=True)

Names: :class:`Config`, :func:`preset`, :func:`build_config`, :class:`Trainer`, :class:`Callback`,
:func:`load`, :class:`Translator`, :func:`evaluate_folders`, :func:`register_method`, :data:`METHODS`,
:class:`UnpairedError` (the base of every error a user can fix) and :class:`ConfigError`.
They are imported on first use, so ``import unpaired`` stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

# public name -> module that defines it
# (Config comes through methods: importing the registry registers the built-in methods, whose
# options classes Config.from_dict looks up)
_EXPORTS = {
    "Config": "methods",
    "ConfigError": "errors",
    "UnpairedError": "errors",
    "preset": "methods",
    "build_config": "methods",
    "Trainer": "training.trainer",
    "Callback": "training.callbacks",
    "load": "inference.translator",
    "Translator": "inference.translator",
    "evaluate_folders": "evaluate",
    "register_method": "methods",
    "METHODS": "methods",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'unpaired' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
