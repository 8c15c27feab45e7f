"""Losses: adversarial objectives and PatchNCE (cross-entropy or focal)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

GAN_MODES = ("lsgan", "vanilla", "nonsaturating")


class GANLoss(nn.Module):
    """Adversarial loss on discriminator outputs, averaged over all elements.

    lsgan: (D - target)^2. vanilla: BCE-with-logits. nonsaturating: softplus(-D) for real,
    softplus(D) for fake (the StyleGAN2 form; equal to vanilla's BCE).
    """

    def __init__(self, mode: str = "lsgan"):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown GAN loss {mode!r}; choose one of {', '.join(GAN_MODES)}")
        self.mode = mode

    def forward(self, pred: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        pred = pred.to(torch.promote_types(pred.dtype, torch.float32))  # at least float32 (float64 stays)
        if self.mode == "lsgan":
            return F.mse_loss(pred, torch.full_like(pred, 1.0 if target_is_real else 0.0))
        if self.mode == "vanilla":
            target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
            return F.binary_cross_entropy_with_logits(pred, target)
        return F.softplus(-pred).mean() if target_is_real else F.softplus(pred).mean()


class PatchNCELoss(nn.Module):
    """PatchNCE loss of CUT, with an optional focal modulation.

    ``loss(query, key)`` takes L2-normalised features of shape (B, P, C) (query: output image,
    key: input image, sampled at the same P locations) and returns per-location losses (B, P).
    The positive of query i is key i; negatives are the other keys of the same image
    (``negatives="image"``) or of the whole minibatch (``negatives="batch"``). As in the reference,
    the self-similarity entry of the negatives is filled with -10 before dividing by the temperature.

    gamma=0, alpha=1 is the paper's cross-entropy; otherwise the focal loss
    -alpha (1 - p)^gamma log p with p the softmax probability of the positive.
    """

    def __init__(self, temperature: float = 0.07, gamma: float = 0.0, alpha: float = 1.0, negatives: str = "image"):
        super().__init__()
        if negatives not in ("image", "batch"):
            raise ValueError(f"negatives must be 'image' or 'batch', got {negatives!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if gamma < 0 or alpha <= 0:
            raise ValueError(f"focal loss needs gamma >= 0 and alpha > 0, got gamma={gamma}, alpha={alpha}")
        self.temperature = temperature
        self.gamma = gamma
        self.alpha = alpha
        self.negatives = negatives

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return self.from_log_prob(self.positive_log_prob(query, key))

    def positive_log_prob(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """log p of the positive for every query, (B, P): the log-softmax over [positive, negatives]."""
        if query.shape != key.shape or query.dim() != 3:
            raise ValueError(f"query and key must both be (B, P, C); got {tuple(query.shape)} and {tuple(key.shape)}")
        b, p, c = query.shape
        key = key.detach()
        # at least float32: bf16 has too few mantissa bits for log-softmax over hundreds of entries
        dtype = torch.promote_types(query.dtype, torch.float32)
        q, k = query.to(dtype), key.to(dtype)
        pos = (q * k).sum(-1).reshape(-1, 1)  # (B*P, 1)
        groups = 1 if self.negatives == "batch" else b
        qg, kg = q.reshape(groups, -1, c), k.reshape(groups, -1, c)
        n = qg.shape[1]
        neg = torch.bmm(qg, kg.transpose(1, 2))  # (G, n, n)
        eye = torch.eye(n, dtype=torch.bool, device=q.device)[None]
        neg = neg.masked_fill(eye, -10.0).reshape(-1, n)
        logits = torch.cat([pos, neg], dim=1) / self.temperature
        return F.log_softmax(logits, dim=1)[:, 0].reshape(b, p)

    def from_log_prob(self, log_p: torch.Tensor) -> torch.Tensor:
        """Per-location losses from :meth:`positive_log_prob`: -alpha log p, times (1 - p)^gamma."""
        if self.gamma == 0.0:
            # no (1-p)^0 factor: its gradient is 0 * inf = NaN where p rounds to 1
            return -self.alpha * log_p
        one_minus_p = -torch.expm1(log_p)  # 1 - p without cancellation when p ~ 1
        return -self.alpha * one_minus_p.clamp(min=0).pow(self.gamma) * log_p
