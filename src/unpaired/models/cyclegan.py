"""CycleGAN (Zhu et al. 2017) baseline: two generators, two discriminators, cycle consistency.

As the reference: ResNet-9 generators and 70x70 PatchGAN discriminators (the same anti-aliased
networks as CUT), LSGAN, cycle L1 with lambda 10 both ways, identity L1 with weight 0.5 x lambda,
a pool of 50 past fakes for each discriminator, and G updated before D.
"""
from __future__ import annotations

import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..amp import Precision
from ..config import Config
from ..losses import GANLoss
from ..nets import PatchGANDiscriminator, ResnetGenerator, init_weights


class ImagePool(nn.Module):
    """History of generated images (Shrivastava et al. 2017): with p = 0.5 the discriminator sees
    an older fake, which is swapped for the new one. The pool is saved with the model (extra state),
    so a resumed run continues with the same history."""

    def __init__(self, size: int = 50):
        super().__init__()
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out)

    def get_extra_state(self):
        return {"images": torch.cat(self.images).cpu() if self.images else torch.zeros(0)}

    def set_extra_state(self, state) -> None:
        device = next(iter(self.buffers()), torch.zeros(0)).device
        self.images = [img[None].to(device) for img in state["images"]] if state["images"].numel() else []

    def _apply(self, fn, *args, **kwargs):  # follow .to(device) like a buffer would
        self.images = [fn(img) for img in self.images]
        return super()._apply(fn, *args, **kwargs)


class CycleGAN(nn.Module):
    GENERATOR_PREFIX = "G_A."

    @staticmethod
    def build_generator(cfg: Config) -> nn.Module:
        c = cfg.data.channels
        return ResnetGenerator(c, c, cfg.model.ngf, cfg.model.n_blocks)

    def __init__(self, cfg: Config):
        super().__init__()
        m, c = cfg.model, cfg.data.channels
        self.cfg = m
        self.G_A = init_weights(self.build_generator(cfg), m.init_gain)   # A -> B
        self.G_B = init_weights(self.build_generator(cfg), m.init_gain)   # B -> A
        self.D_A = init_weights(PatchGANDiscriminator(c, m.ndf, m.n_layers_d), m.init_gain)  # judges B
        self.D_B = init_weights(PatchGANDiscriminator(c, m.ndf, m.n_layers_d), m.init_gain)  # judges A
        self.pool_A = ImagePool(m.pool_size)  # fakes of domain A, for D_B
        self.pool_B = ImagePool(m.pool_size)  # fakes of domain B, for D_A
        self.gan_loss = GANLoss(m.gan_mode)

    @property
    def generator(self) -> nn.Module:
        return self.G_A

    def make_optimizers(self, lr: float, betas: tuple[float, float], eps: float = 1e-8) -> dict[str, torch.optim.Optimizer]:
        return {"G": torch.optim.Adam(list(self.G_A.parameters()) + list(self.G_B.parameters()), lr=lr, betas=betas, eps=eps),
                "D": torch.optim.Adam(list(self.D_A.parameters()) + list(self.D_B.parameters()), lr=lr, betas=betas, eps=eps)}

    @torch.no_grad()
    def translate(self, x: torch.Tensor) -> torch.Tensor:
        return self.G_A(x)

    def train_step(self, batch: dict[str, torch.Tensor], opt: dict[str, torch.optim.Optimizer],
                   amp: Precision) -> dict[str, torch.Tensor]:
        m = self.cfg
        real_a, real_b = batch["A"], batch["B"]
        lam, idt_w = m.lambda_cycle, m.cycle_identity

        # G step first (the reference's order), with both discriminators frozen
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        opt["G"].zero_grad(set_to_none=True)
        with amp.autocast():
            fake_b = self.G_A(real_a)
            rec_a = self.G_B(fake_b)
            fake_a = self.G_B(real_b)
            rec_b = self.G_A(fake_a)
            loss_g_a = self.gan_loss(self.D_A(fake_b), True)
            loss_g_b = self.gan_loss(self.D_B(fake_a), True)
            loss_cyc_a = F.l1_loss(rec_a.float(), real_a) * lam
            loss_cyc_b = F.l1_loss(rec_b.float(), real_b) * lam
            loss_g = loss_g_a + loss_g_b + loss_cyc_a + loss_cyc_b
            if idt_w > 0:
                loss_idt_a = F.l1_loss(self.G_A(real_b).float(), real_b) * lam * idt_w
                loss_idt_b = F.l1_loss(self.G_B(real_a).float(), real_a) * lam * idt_w
                loss_g = loss_g + loss_idt_a + loss_idt_b
        amp.backward(loss_g)
        amp.step(opt["G"])

        # D step on pooled fakes
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        opt["D"].zero_grad(set_to_none=True)
        pooled_b = self.pool_B.query(fake_b.detach())
        pooled_a = self.pool_A.query(fake_a.detach())
        with amp.autocast():
            loss_d_a = 0.5 * (self.gan_loss(self.D_A(real_b), True) + self.gan_loss(self.D_A(pooled_b), False))
            loss_d_b = 0.5 * (self.gan_loss(self.D_B(real_a), True) + self.gan_loss(self.D_B(pooled_a), False))
        amp.backward(loss_d_a + loss_d_b)
        amp.step(opt["D"])

        out = {"D_A": loss_d_a, "G_A": loss_g_a, "cycle_A": loss_cyc_a, "D_B": loss_d_b, "G_B": loss_g_b,
               "cycle_B": loss_cyc_b, "G": loss_g}
        if idt_w > 0:
            out.update(idt_A=loss_idt_a, idt_B=loss_idt_b)
        self._last = {"real_A": real_a, "fake_B": fake_b.detach(), "real_B": real_b}
        return {k: v.detach() for k, v in out.items()}

    def visuals(self) -> dict[str, torch.Tensor]:
        return getattr(self, "_last", {})
