"""Running a layer sequence while collecting the outputs of chosen layers (PatchNCE taps)."""

from __future__ import annotations

import torch
import torch.nn as nn


def run_with_taps(
    layers: nn.Sequential, x: torch.Tensor, taps: list[int], stop_early: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Apply ``layers`` to ``x``; return the last output computed and the outputs of the layer
    indices in ``taps`` (in order). ``stop_early`` stops after the last tapped layer."""
    wanted, last = set(taps), max(taps)
    if last >= len(layers):
        raise ValueError(f"NCE layer {last} does not exist: the network has {len(layers)} layers")
    feats = []
    for idx, layer in enumerate(layers):
        x = layer(x)
        if idx in wanted:
            feats.append(x)
        if stop_early and idx == last:
            break
    return x, feats
