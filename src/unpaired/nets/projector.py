"""PatchSample projection head F of CUT: samples locations of encoder features and projects them."""

from __future__ import annotations

import torch
import torch.nn as nn


class PatchSampleMLP(nn.Module):
    """One 2-layer MLP (Linear(C, nc) - ReLU - Linear(nc, nc)) per tapped layer; outputs L2-normalised.

    The heads are sized from feature shapes, so build it with :meth:`from_features` on encoder
    outputs (the reference does this on the first batch).
    """

    def __init__(self, in_channels: list[int], nc: int = 256):
        super().__init__()
        self.in_channels = list(in_channels)
        self.nc = nc
        for i, c in enumerate(in_channels):
            # named mlp_<i> as in the reference, so its state dicts load unchanged
            self.add_module(f"mlp_{i}", nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)))

    @classmethod
    def from_features(cls, feats: list[torch.Tensor], nc: int = 256) -> "PatchSampleMLP":
        return cls([f.shape[1] for f in feats], nc)

    def forward(
        self, feats: list[torch.Tensor], num_patches: int, patch_ids: list[torch.Tensor] | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Sample ``num_patches`` locations per layer (the same ones for every image in the batch;
        reuse ``patch_ids`` to sample the query at the key's locations).

        Returns projected features of shape (B, P, nc) and the sampled flat location indices.
        """
        out, ids = [], []
        for i, feat in enumerate(feats):
            b, c, h, w = feat.shape
            if patch_ids is None:
                # drawn where the features are: no host round trip on a GPU (same numbers on the CPU)
                idx = torch.randperm(h * w, device=feat.device)[: min(num_patches, h * w)]
            else:
                idx = patch_ids[i].to(feat.device)
            # Gather along the flattened spatial axis of the (B, C, H*W) view, then transpose the
            # small result. The reference permutes the whole map to (B, H*W, C) first, which sends a
            # non-contiguous gradient into the generator; on the CPU (torch 2.13) InstanceNorm's
            # backward gets such gradients wrong for a batch of 1 (tests/test_nets.py shows it).
            x = getattr(self, f"mlp_{i}")(feat.flatten(2)[:, :, idx].transpose(1, 2))
            out.append(x / (x.norm(dim=-1, keepdim=True) + 1e-7))  # the reference's L2 norm
            ids.append(idx)
        return out, ids
