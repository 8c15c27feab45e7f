"""Weight initialisation shared by all networks."""

from __future__ import annotations

import torch.nn as nn


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """Xavier-normal init (gain 0.02, as the reference) for conv and linear layers; zero biases."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net
