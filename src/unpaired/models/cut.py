"""CUT, FastCUT and SinCUT (Park et al., "Contrastive Learning for Unpaired Image-to-Image
Translation", 2020).

One class serves all three; they differ only in configuration (``unpaired.config.PRESETS``):
FastCUT is CUT without identity PatchNCE, with lambda_NCE 10 and flip-equivariance; SinCUT uses the
StyleGAN2-style networks, a nonsaturating GAN with R1 on real images, an identity L1 term,
minibatch negatives, and a discriminator on tiles of the crops. Focal PatchNCE is a loss setting.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..amp import Precision
from ..config import Config
from ..losses import GANLoss, PatchNCELoss
from ..nets import PatchGANDiscriminator, PatchSampleMLP, ResnetGenerator, init_weights
from ..nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator


class CUT(nn.Module):
    """Generator G, discriminator D and projection head F, with the CUT training step."""

    GENERATOR_PREFIX = "G."  # where the A->B generator's weights sit in this module's state dict

    @staticmethod
    def build_generator(cfg: Config) -> nn.Module:
        c, m = cfg.data.channels, cfg.model
        if m.generator == "stylegan2":
            return StyleGAN2Generator(c, c, m.ngf, m.n_blocks, m.g_downsampling, cfg.data.crop_size)
        return ResnetGenerator(c, c, m.ngf, m.n_blocks)

    @staticmethod
    def build_discriminator(cfg: Config) -> nn.Module:
        c, m = cfg.data.channels, cfg.model
        if m.discriminator == "stylegan2":
            return StyleGAN2Discriminator(c, m.ndf, m.d_tile_size or cfg.data.crop_size)
        return PatchGANDiscriminator(c, m.ndf, m.n_layers_d)

    def __init__(self, cfg: Config):
        super().__init__()
        m, c = cfg.model, cfg.data.channels
        self.cfg = m
        # the StyleGAN2 networks keep their own N(0, 1) init (equalized learning rate), as the reference
        self.G = self.build_generator(cfg)
        self.D = self.build_discriminator(cfg)
        if m.generator == "resnet":
            init_weights(self.G, m.init_gain)
        if m.discriminator == "patchgan":
            init_weights(self.D, m.init_gain)
        # F's heads are sized from G's feature shapes; channel counts do not depend on image size,
        # so a small probe gives them without waiting for the first batch (and resume can load F).
        with torch.no_grad():
            probe = self.G.encode(torch.zeros(1, c, 32, 32), m.nce_layers)
        self.F = init_weights(PatchSampleMLP.from_features(probe, m.projector_dim), m.init_gain)
        self.gan_loss = GANLoss(m.gan_mode)
        self.nce_loss = PatchNCELoss(m.nce_temperature, m.focal_gamma, m.focal_alpha, m.nce_negatives)

    @property
    def generator(self) -> nn.Module:
        """The A->B generator (validation and translation use it)."""
        return self.G

    def make_optimizers(self, lr: float, betas: tuple[float, float], eps: float = 1e-8) -> dict[str, torch.optim.Optimizer]:
        return {name: torch.optim.Adam(getattr(self, name).parameters(), lr=lr, betas=betas, eps=eps)
                for name in ("G", "D", "F")}

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D on the images, or on their d_tile_size tiles (the thesis's SinCUT: 128 px crops, 64 px tiles)."""
        t = self.cfg.d_tile_size
        if t and x.shape[-1] != t:
            b, c, h, w = x.shape
            x = x.reshape(b, c, h // t, t, w // t, t).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, t, t)
        return self.D(x)

    def r1_penalty(self, pred_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """lambda_R1 / 2 * E ||grad_x D(x)||^2 on real images (Mescheder et al. 2018), as the reference."""
        grad, = torch.autograd.grad(pred_real.float().sum(), real, create_graph=True)
        return grad.float().pow(2).reshape(grad.shape[0], -1).sum(1).mean() * (0.5 * self.cfg.lambda_r1)

    @torch.no_grad()
    def translate(self, x: torch.Tensor) -> torch.Tensor:
        """A -> B for images in [-1, 1] whose sides are multiples of 4."""
        return self.G(x)

    def nce(self, feat_k: list[torch.Tensor], tgt: torch.Tensor, flipped: bool) -> torch.Tensor:
        """PatchNCE between the input's features ``feat_k`` (keys) and the output ``tgt`` (queries),
        averaged over layers."""
        layers = self.cfg.nce_layers
        feat_q = self.G.encode(tgt, layers)
        if flipped:  # the output was made from a flipped input: flip its features back
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        with torch.no_grad():  # PatchNCE detaches the keys: no graph needed through G or F
            key, ids = self.F([f.detach() for f in feat_k], self.cfg.num_patches)
        query, _ = self.F(feat_q, self.cfg.num_patches, ids)
        total = sum(self.nce_loss(q, k).mean() for q, k in zip(query, key))
        return total * self.cfg.lambda_nce / len(layers)

    def train_step(self, batch: dict[str, torch.Tensor], opt: dict[str, torch.optim.Optimizer],
                   amp: Precision) -> dict[str, torch.Tensor]:
        """One iteration: D update, then G and F update. Returns detached losses."""
        m = self.cfg
        real_a, real_b = batch["A"], batch["B"]
        n = real_a.shape[0]
        real = torch.cat([real_a, real_b]) if m.nce_idt else real_a
        flipped = m.flip_equivariance and bool(torch.rand(()) < 0.5)

        with amp.autocast():
            if flipped:
                fake = self.G(torch.flip(real, [3]))
                with torch.no_grad():  # keys come from the unflipped input
                    keys = self.G.encode(real, m.nce_layers)
            else:
                # the encoder pass that makes the output also gives the keys (the reference
                # recomputes them: same values, one more encoder pass per NCE term)
                fake, keys = self.G.forward_with_features(real, m.nce_layers)
        fake_b = fake[:n]
        idt_b = fake[n:] if m.nce_idt else None

        # D step (before G, as the reference)
        self.D.requires_grad_(True)
        opt["D"].zero_grad(set_to_none=True)
        real_b_d = real_b.detach().requires_grad_(True) if m.lambda_r1 > 0 else real_b
        with amp.autocast():
            loss_d_fake = self.gan_loss(self.discriminate(fake_b.detach()), False)
            pred_real = self.discriminate(real_b_d)
            loss_d_real = self.gan_loss(pred_real, True)
            loss_d = 0.5 * (loss_d_fake + loss_d_real)
            if m.lambda_r1 > 0:
                loss_r1 = self.r1_penalty(pred_real, real_b_d)
                loss_d = loss_d + loss_r1
        amp.backward(loss_d)
        amp.step(opt["D"])

        # G and F step; D's parameters need no gradients here
        self.D.requires_grad_(False)
        opt["G"].zero_grad(set_to_none=True)
        opt["F"].zero_grad(set_to_none=True)
        with amp.autocast():
            loss_g_gan = self.gan_loss(self.discriminate(fake_b), True) * m.lambda_gan if m.lambda_gan > 0 \
                else fake_b.new_zeros(())
            loss_nce = self.nce([k[:n] for k in keys], fake_b, flipped)
            if m.nce_idt:
                loss_nce_y = self.nce([k[n:] for k in keys], idt_b, flipped)
                loss_g = loss_g_gan + 0.5 * (loss_nce + loss_nce_y)
            else:
                loss_g = loss_g_gan + loss_nce
            if m.lambda_identity > 0:  # SinCUT: G should leave target-domain images unchanged
                loss_idt = F.l1_loss(idt_b.float(), real_b) * m.lambda_identity
                loss_g = loss_g + loss_idt
        amp.backward(loss_g)
        amp.step(opt["G"])
        amp.step(opt["F"])

        out = {"D_real": loss_d_real, "D_fake": loss_d_fake, "G_GAN": loss_g_gan, "NCE": loss_nce, "G": loss_g}
        if m.nce_idt:
            out["NCE_Y"] = loss_nce_y
        if m.lambda_r1 > 0:
            out["D_R1"] = loss_r1
        if m.lambda_identity > 0:
            out["idt"] = loss_idt
        shown = torch.flip(fake_b, [3]) if flipped else fake_b
        self._last = {"real_A": real_a, "fake_B": shown.detach(), "real_B": real_b}
        return {k: v.detach() for k, v in out.items()}

    def visuals(self) -> dict[str, torch.Tensor]:
        """Images of the last train step, for sample triptychs: real_A, fake_B, real_B."""
        return getattr(self, "_last", {})
