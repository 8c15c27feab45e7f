"""CycleGAN (Zhu et al. 2017) baseline: two generators, two discriminators, cycle consistency.

As the reference: ResNet-9 generators and 70x70 PatchGAN discriminators (the same anti-aliased
networks as CUT), LSGAN, cycle L1 with lambda 10 both ways, identity L1 with weight 0.5 x lambda,
a pool of 50 past fakes for each discriminator, and G updated before D.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.profiler import record_function

from ..config import DataConfig, ModelConfig
from ..losses import GANLoss
from ..nets import PatchGANDiscriminator, init_weights, resnet_generator
from ..nets.diffaugment import augment, parse_policy
from .optim import adam


class ImagePool(nn.Module):
    """History of generated images (Shrivastava et al. 2017): with p = 0.5 the discriminator sees
    an older fake, which is swapped for the new one. The pool is saved with the model (extra state),
    so a resumed run continues with the same history."""

    def __init__(self, size: int = 50):
        super().__init__()
        self.size = size
        self.images: list[torch.Tensor] = []
        # an empty buffer that follows .to(device), so a restored pool lands where the model is
        self.register_buffer("device_anchor", torch.zeros(0), persistent=False)

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
        device = self.device_anchor.device
        self.images = [img[None].to(device) for img in state["images"]] if state["images"].numel() else []

    def _apply(self, fn, *args, **kwargs):  # follow .to(device) like a buffer would
        self.images = [fn(img) for img in self.images]
        return super()._apply(fn, *args, **kwargs)


@dataclass
class CycleGANConfig(ModelConfig):
    """Options of the CycleGAN baseline (the ``model:`` section)."""

    lambda_cycle: float = 10.0  # cycle-consistency L1 weight (both directions)
    cycle_identity: float = 0.5  # identity L1 weight, as a fraction of lambda_cycle
    pool_size: int = 50  # history of fakes shown to the discriminators

    def problems(self, data: DataConfig) -> list[str]:
        ok = self.lambda_cycle >= 0 and self.cycle_identity >= 0 and self.pool_size >= 0
        return super().problems(data) + (
            [] if ok else ["model.lambda_cycle, model.cycle_identity and model.pool_size must be >= 0"]
        )


class CycleGAN(nn.Module):
    config_class = CycleGANConfig
    GENERATOR_PREFIX = "G_A."

    @staticmethod
    def build_generator(cfg: CycleGANConfig, channels: int = 3, crop_size: int = 256) -> nn.Module:
        return resnet_generator(cfg, channels)

    def __init__(self, cfg: CycleGANConfig, channels: int = 3, crop_size: int = 256):
        super().__init__()
        m, c = cfg, channels
        self.cfg = m
        self.G_A = init_weights(self.build_generator(cfg, c), m.init_gain)  # A -> B
        self.G_B = init_weights(self.build_generator(cfg, c), m.init_gain)  # B -> A
        self.D_A = init_weights(PatchGANDiscriminator(c, m.ndf, m.n_layers_d), m.init_gain)  # judges B
        self.D_B = init_weights(PatchGANDiscriminator(c, m.ndf, m.n_layers_d), m.init_gain)  # judges A
        self.pool_A = ImagePool(m.pool_size)  # fakes of domain A, for D_B
        self.pool_B = ImagePool(m.pool_size)  # fakes of domain B, for D_A
        self.gan_loss = GANLoss(m.gan_mode)
        self.d_augment = parse_policy(m.d_augment)

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment (``model.d_augment``) before a discriminator, each image drawn independently."""
        return augment(x, self.d_augment)

    @property
    def generator(self) -> nn.Module:
        return self.G_A

    def make_optimizers(
        self, lr: float, betas: tuple[float, float], eps: float = 1e-8
    ) -> dict[str, torch.optim.Optimizer]:
        return {
            "G": adam([*self.G_A.parameters(), *self.G_B.parameters()], lr, betas, eps),
            "D": adam([*self.D_A.parameters(), *self.D_B.parameters()], lr, betas, eps),
        }

    def train_step(self, batch: dict[str, torch.Tensor], step) -> dict[str, torch.Tensor]:
        """One iteration: G update, then D update on pooled fakes (``step``: :class:`unpaired.step.TrainStep`)."""
        m = self.cfg
        real_a, real_b = batch["A"], batch["B"]
        lam, idt_w = m.lambda_cycle, m.cycle_identity

        # G step first (the reference's order), with both discriminators frozen
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        with step.autocast():
            with record_function("G_forward"):
                if idt_w > 0:  # each generator's translation and identity images in one pass
                    fake_b, idt_a = self.G_A(torch.cat([real_a, real_b])).chunk(2)
                    fake_a, idt_b = self.G_B(torch.cat([real_b, real_a])).chunk(2)
                else:
                    fake_b, fake_a = self.G_A(real_a), self.G_B(real_b)
                rec_a = self.G_B(fake_b)
                rec_b = self.G_A(fake_a)
            with record_function("G_gan_loss"):
                loss_g_a = self.gan_loss(self.D_A(self._aug(fake_b)), True)
                loss_g_b = self.gan_loss(self.D_B(self._aug(fake_a)), True)
            loss_cyc_a = F.l1_loss(rec_a.float(), real_a) * lam
            loss_cyc_b = F.l1_loss(rec_b.float(), real_b) * lam
            loss_g = loss_g_a + loss_g_b + loss_cyc_a + loss_cyc_b
            if idt_w > 0:
                loss_idt_a = F.l1_loss(idt_a.float(), real_b) * lam * idt_w
                loss_idt_b = F.l1_loss(idt_b.float(), real_a) * lam * idt_w
                loss_g = loss_g + loss_idt_a + loss_idt_b
        step.update("G", loss_g)

        # D step on pooled fakes
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        pooled_b = self.pool_B.query(fake_b.detach())
        pooled_a = self.pool_A.query(fake_a.detach())
        with record_function("D_forward"), step.autocast():  # reals and pooled fakes in one pass per D
            pred_real_b, pred_fake_b = self.D_A(self._aug(torch.cat([real_b, pooled_b]))).chunk(2)
            pred_real_a, pred_fake_a = self.D_B(self._aug(torch.cat([real_a, pooled_a]))).chunk(2)
            loss_d_a = 0.5 * (self.gan_loss(pred_real_b, True) + self.gan_loss(pred_fake_b, False))
            loss_d_b = 0.5 * (self.gan_loss(pred_real_a, True) + self.gan_loss(pred_fake_a, False))
        step.record("D_real_mean", pred_real_b.float().mean())  # D_A, the judge of the target domain
        step.record("D_fake_mean", pred_fake_b.float().mean())
        step.update("D", loss_d_a + loss_d_b)

        out = {
            "D_A": loss_d_a,
            "G_A": loss_g_a,
            "cycle_A": loss_cyc_a,
            "D_B": loss_d_b,
            "G_B": loss_g_b,
            "cycle_B": loss_cyc_b,
            "G": loss_g,
        }
        if idt_w > 0:
            out.update(idt_A=loss_idt_a, idt_B=loss_idt_b)
        self._last = {"real_A": real_a, "fake_B": fake_b.detach(), "real_B": real_b}
        return out

    def visuals(self) -> dict[str, torch.Tensor]:
        return getattr(self, "_last", {})
