"""``unpaired <command>``: argument parsing, one call into the package, and printing. The only
layer that prints errors (one line for an :class:`~unpaired.errors.UnpairedError`)."""

from __future__ import annotations

from .app import main

__all__ = ["main"]
