"""CUT, FastCUT and SinCUT (Park et al., "Contrastive Learning for Unpaired Image-to-Image
Translation", 2020).

One class serves all three; they differ only in their presets (``unpaired.methods``): FastCUT is
CUT without identity PatchNCE, with lambda_NCE 10 and flip-equivariance; SinCUT uses the
StyleGAN2-style networks, a nonsaturating GAN with R1 on real images, an identity L1 term,
minibatch negatives, and a discriminator on tiles of the crops. Focal PatchNCE is a loss setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as nnf
from torch.profiler import record_function

from ..config import DataConfig, ModelConfig
from ..losses import GANLoss, PatchNCELoss
from ..nets import PatchGANDiscriminator, PatchSampleMLP, init_weights, resnet_generator
from ..nets.diffaugment import augment, parse_policy
from ..nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from .optim import adam


@dataclass
class CUTConfig(ModelConfig):
    """Options of CUT, FastCUT and SinCUT (the ``model:`` section)."""

    lambda_gan: float = 1.0  # weight of the GAN loss
    lambda_nce: float = 1.0  # weight of PatchNCE (FastCUT 10, SinCUT 4)
    nce_idt: bool = True  # identity PatchNCE on domain B (CUT): loss_G = GAN + (NCE_X + NCE_Y)/2
    nce_layers: list[int] = field(default_factory=lambda: [0, 4, 8, 12, 16])  # G layers tapped (reference indices)
    num_patches: int = 256  # sampled locations per layer
    nce_temperature: float = 0.07  # tau of the PatchNCE softmax
    nce_negatives: str = "image"  # image (CUT/FastCUT) | batch (SinCUT)
    focal_gamma: float = 0.0  # focal PatchNCE gamma; 0 with alpha 1 = the paper's cross-entropy
    focal_alpha: float = 1.0  # focal PatchNCE alpha (0.25 also divides the NCE weight by 4)
    flip_equivariance: bool = False  # FastCUT's flip of the input with p = 0.5, features flipped back
    projector_dim: int = 256  # width of the projection head F
    generator: str = "resnet"  # resnet (CUT) | stylegan2 (SinCUT)
    discriminator: str = "patchgan"  # patchgan (CUT) | stylegan2 (SinCUT)
    g_downsampling: int = 1  # stylegan2 generator: number of downsamplings
    g_noise: bool = True  # stylegan2 generator: noise injection (False = the official smallstylegan2)
    d_tile_size: int = 0  # cut crops into tiles of this size before D (0 = whole crop)
    lambda_r1: float = 0.0  # R1 penalty on real images (SinCUT 1)
    lambda_identity: float = 0.0  # L1 between G(B) and B (SinCUT 1)

    def problems(self, data: DataConfig) -> list[str]:
        checks = [
            (
                self.nce_negatives in ("image", "batch"),
                f"model.nce_negatives must be image or batch, got {self.nce_negatives!r}",
            ),
            (
                len(self.nce_layers) > 0 and sorted(set(self.nce_layers)) == self.nce_layers,
                f"model.nce_layers must be distinct increasing layer indices, got {self.nce_layers}",
            ),
            (self.num_patches >= 1, f"model.num_patches must be >= 1, got {self.num_patches}"),
            (
                self.focal_gamma >= 0 and self.focal_alpha > 0,
                "model.focal_gamma must be >= 0 and model.focal_alpha > 0",
            ),
            (
                self.generator in ("resnet", "stylegan2") and self.discriminator in ("patchgan", "stylegan2"),
                "model.generator must be resnet or stylegan2 and model.discriminator patchgan or stylegan2",
            ),
            (
                self.d_tile_size == 0 or (self.d_tile_size >= 8 and data.crop_size % self.d_tile_size == 0),
                f"model.d_tile_size ({self.d_tile_size}) must divide data.crop_size ({data.crop_size}) (0 = no tiles)",
            ),
            (
                self.discriminator != "stylegan2"
                or (lambda s: s >= 8 and s & (s - 1) == 0)(self.d_tile_size or data.crop_size),
                "the stylegan2 discriminator needs a power-of-two input: set model.d_tile_size (or data.crop_size) "
                "to 64, 128, ...",
            ),
            (
                self.lambda_identity == 0 or self.nce_idt,
                "model.lambda_identity needs model.nce_idt: true (G(B) is computed for it)",
            ),
        ]
        return super().problems(data) + [msg for ok, msg in checks if not ok]


class CUT(nn.Module):
    """Generator G, discriminator D and projection head F, with the CUT training step."""

    config_class = CUTConfig
    GENERATOR_PREFIX = "G."  # where the A->B generator's weights sit in this module's state dict

    @staticmethod
    def build_generator(cfg: CUTConfig, channels: int = 3, crop_size: int = 256) -> nn.Module:
        if cfg.generator == "stylegan2":
            return StyleGAN2Generator(
                channels, channels, cfg.ngf, cfg.n_blocks, cfg.g_downsampling, crop_size, noise=cfg.g_noise
            )
        return resnet_generator(cfg, channels)

    @staticmethod
    def build_discriminator(cfg: CUTConfig, channels: int = 3, crop_size: int = 256) -> nn.Module:
        if cfg.discriminator == "stylegan2":
            return StyleGAN2Discriminator(channels, cfg.ndf, cfg.d_tile_size or crop_size)
        return PatchGANDiscriminator(channels, cfg.ndf, cfg.n_layers_d)

    def __init__(self, cfg: CUTConfig, channels: int = 3, crop_size: int = 256):
        super().__init__()
        self.cfg = cfg
        # the StyleGAN2 networks keep their own N(0, 1) init (equalized learning rate), as the reference
        self.G = self.build_generator(cfg, channels, crop_size)
        self.D = self.build_discriminator(cfg, channels, crop_size)
        if cfg.generator == "resnet":
            init_weights(self.G, cfg.init_gain)
        if cfg.discriminator == "patchgan":
            init_weights(self.D, cfg.init_gain)
        # F's heads are sized from G's feature shapes; channel counts do not depend on image size,
        # so a small probe gives them without waiting for the first batch (and resume can load F).
        with torch.no_grad():
            probe = self.G.encode(torch.zeros(1, channels, 32, 32), cfg.nce_layers)
        self.F = init_weights(PatchSampleMLP.from_features(probe, cfg.projector_dim), cfg.init_gain)
        self.d_augment = parse_policy(cfg.d_augment)
        self.gan_loss = GANLoss(cfg.gan_mode)
        self.nce_loss = PatchNCELoss(cfg.nce_temperature, cfg.focal_gamma, cfg.focal_alpha, cfg.nce_negatives)

    @property
    def generator(self) -> nn.Module:
        """The A->B generator (validation and translation use it)."""
        return self.G

    def make_optimizers(
        self, lr: float, betas: tuple[float, float], eps: float = 1e-8
    ) -> dict[str, torch.optim.Optimizer]:
        return {name: adam(getattr(self, name).parameters(), lr, betas, eps) for name in ("G", "D", "F")}

    @property
    def twice_differentiated(self) -> dict[str, str]:
        """Networks the step differentiates twice, with why: R1 takes the gradient of D's gradient."""
        return {"D": "R1 differentiates its gradient"} if self.cfg.lambda_r1 > 0 else {}

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D on the images, or on their d_tile_size tiles (the thesis's SinCUT: 128 px crops, 64 px tiles),
        after DiffAugment (``model.d_augment``; each image drawn independently) when it is on."""
        x = augment(x, self.d_augment)
        t = self.cfg.d_tile_size
        if t and x.shape[-1] != t:
            b, c, h, w = x.shape
            x = x.reshape(b, c, h // t, t, w // t, t).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, t, t)
        return self.D(x)

    def r1_penalty(self, pred_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """lambda_R1 / 2 * E ||grad_x D(x)||^2 on real images (Mescheder et al. 2018), as the reference."""
        (grad,) = torch.autograd.grad(pred_real.float().sum(), real, create_graph=True)
        return grad.float().pow(2).reshape(grad.shape[0], -1).sum(1).mean() * (0.5 * self.cfg.lambda_r1)

    def query_features(self, tgt: torch.Tensor, flipped: bool) -> list[torch.Tensor]:
        """The encoder features of generated images (PatchNCE queries), flipped back when the
        images were made from a flipped input."""
        feat_q = self.G.encode(tgt, self.cfg.nce_layers)
        return [torch.flip(f, [3]) for f in feat_q] if flipped else feat_q

    def nce(self, feat_k: list[torch.Tensor], tgt: torch.Tensor, flipped: bool) -> torch.Tensor:
        """PatchNCE between the input's features ``feat_k`` (keys) and the output ``tgt`` (queries),
        averaged over layers."""
        return self.patch_nce(feat_k, self.query_features(tgt, flipped))

    def patch_nce(
        self,
        feat_k: list[torch.Tensor],
        feat_q: list[torch.Tensor],
        positive_prob: list[torch.Tensor] | None = None,
        patch_ids: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """PatchNCE of query features against key features at the same sampled locations, averaged
        over layers. ``positive_prob`` receives each layer's mean softmax probability of the
        positive (the quantity the focal loss reweights). ``patch_ids``: the locations to sample
        (one flat index tensor per layer) instead of drawing them."""
        with torch.no_grad():  # PatchNCE detaches the keys: no graph needed through G or F
            key, ids = self.F([f.detach() for f in feat_k], self.cfg.num_patches, patch_ids)
        query, _ = self.F(feat_q, self.cfg.num_patches, ids)
        total = 0
        for q, k in zip(query, key):
            log_p = self.nce_loss.positive_log_prob(q, k)
            total = total + self.nce_loss.from_log_prob(log_p).mean()
            if positive_prob is not None:
                positive_prob.append(log_p.detach().exp().mean())
        return total * self.cfg.lambda_nce / len(feat_q)

    def train_step(
        self,
        batch: dict[str, torch.Tensor],
        step,
        *,
        flipped: bool | None = None,
        patch_ids: dict[str, list[torch.Tensor]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """One iteration: D update, then G and F update (``step``: :class:`unpaired.step.TrainStep`).

        The step's random draws can be given instead of drawn (to repeat another implementation's
        step exactly, benchmarks/official_step_equality.py): ``flipped``, whether FastCUT flips this
        batch (ignored without flip-equivariance), and ``patch_ids``, the sampled locations of each
        PatchNCE term (``"NCE"``, and ``"NCE_Y"`` with identity PatchNCE), one flat index tensor
        per NCE layer."""
        m = self.cfg
        real_a, real_b = batch["A"], batch["B"]
        n = real_a.shape[0]
        real = torch.cat([real_a, real_b]) if m.nce_idt else real_a
        if patch_ids is not None:
            terms = ["NCE", "NCE_Y"] if m.nce_idt else ["NCE"]
            got = {k: len(v) for k, v in patch_ids.items()}
            if got != {t: len(m.nce_layers) for t in terms}:
                raise ValueError(
                    f"patch_ids must map {' and '.join(terms)} to {len(m.nce_layers)} index tensors "
                    f"(one per NCE layer), got {got}"
                )
        if not m.flip_equivariance:
            flipped = False
        elif flipped is None:
            flipped = bool(torch.rand(()) < 0.5)

        with record_function("G_forward"), step.autocast():
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

        # D step (before G, as the reference); fakes and reals in one pass: D treats images independently
        self.D.requires_grad_(True)
        real_b_d = real_b.detach().requires_grad_(True) if m.lambda_r1 > 0 else real_b
        with record_function("D_forward"), step.autocast():
            pred_fake, pred_real = self.discriminate(torch.cat([fake_b.detach(), real_b_d])).chunk(2)
            loss_d_fake = self.gan_loss(pred_fake, False)
            loss_d_real = self.gan_loss(pred_real, True)
            loss_d = 0.5 * (loss_d_fake + loss_d_real)
            if m.lambda_r1 > 0:
                loss_r1 = self.r1_penalty(pred_real, real_b_d)
                loss_d = loss_d + loss_r1
        step.record("D_real_mean", pred_real.float().mean())
        step.record("D_fake_mean", pred_fake.float().mean())
        step.update("D", loss_d)

        # G and F step; D's parameters need no gradients here
        self.D.requires_grad_(False)
        positive_prob: list[torch.Tensor] = []
        with step.autocast():
            with record_function("G_gan_loss"):
                loss_g_gan = (
                    self.gan_loss(self.discriminate(fake_b), True) * m.lambda_gan
                    if m.lambda_gan > 0
                    else fake_b.new_zeros(())
                )
            with record_function("NCE"):
                queries = self.query_features(fake, flipped)  # one encoder pass over G(A) and G(B)
                given = patch_ids or {}
                loss_nce = self.patch_nce(
                    [k[:n] for k in keys], [q[:n] for q in queries], positive_prob, given.get("NCE")
                )
                if m.nce_idt:
                    loss_nce_y = self.patch_nce(
                        [k[n:] for k in keys], [q[n:] for q in queries], None, given.get("NCE_Y")
                    )
                    loss_g = loss_g_gan + 0.5 * (loss_nce + loss_nce_y)
                else:
                    loss_g = loss_g_gan + loss_nce
            if m.lambda_identity > 0:  # SinCUT: G should leave target-domain images unchanged
                loss_idt = nnf.l1_loss(idt_b.float(), real_b) * m.lambda_identity
                loss_g = loss_g + loss_idt
        for layer, p in zip(m.nce_layers, positive_prob):
            step.record(f"nce_p_pos_layer{layer}", p)
        step.update(["G", "F"], loss_g)

        out = {"D_real": loss_d_real, "D_fake": loss_d_fake, "G_GAN": loss_g_gan, "NCE": loss_nce, "G": loss_g}
        if m.nce_idt:
            out["NCE_Y"] = loss_nce_y
        if m.lambda_r1 > 0:
            out["D_R1"] = loss_r1
        if m.lambda_identity > 0:
            out["idt"] = loss_idt
        shown = torch.flip(fake_b, [3]) if flipped else fake_b
        self._last = {"real_A": real_a, "fake_B": shown.detach(), "real_B": real_b}
        return out

    def visuals(self) -> dict[str, torch.Tensor]:
        """Images of the last train step, for sample triptychs: real_A, fake_B, real_B."""
        return getattr(self, "_last", {})
