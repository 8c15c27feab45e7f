"""The official CUT model and update as a method of this package, for measurements only.

:class:`OfficialCUT` wraps the official ``CUTModel`` (built from a checkout of
taesungp/contrastive-unpaired-translation, never copied into the project) in the interface the
Trainer expects of a method: ``config_class``, ``make_optimizers`` (the official Adam optimizers),
``train_step`` (the official ``set_input`` + ``optimize_parameters`` on our data pipeline's
batches), ``generator`` and ``visuals``. Only the model and its update then differ from ours:
data order, augmentation, schedule, validation, checkpoints and scoring are the package's.

:func:`register` adds it as the method ``official-cut`` to the registry of the process that calls
it (a benchmark's own processes); nothing in the package knows it.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_cut import DEFAULT_CHECKOUT, _stub_torchvision  # noqa: E402

from unpaired.models.cut import CUTConfig  # noqa: E402

NAME = "official-cut"
_official: dict = {}  # the official modules, imported once


def available(checkout: Path = DEFAULT_CHECKOUT) -> bool:
    return (checkout / "models" / "cut_model.py").is_file()


def _import(checkout: Path = DEFAULT_CHECKOUT) -> dict:
    if not _official:
        if not available(checkout):
            raise FileNotFoundError(
                f"no official CUT checkout in {checkout}: git clone "
                f"https://github.com/taesungp/contrastive-unpaired-translation {checkout}"
            )
        _stub_torchvision()
        sys.path.insert(0, str(checkout))
        try:
            from models import create_model, networks  # noqa: PLC0415 - the official package, on sys.path now
            from options.train_options import TrainOptions  # noqa: PLC0415
        finally:
            sys.path.remove(str(checkout))
        _official.update(create_model=create_model, networks=networks, TrainOptions=TrainOptions)
    return _official


def official_options(cfg: CUTConfig, channels: int, crop_size: int):
    """The official option namespace for these settings (its CUT mode: the paper's CUT defaults)."""
    off = _import()
    args = (
        f"--dataroot unused --name stability --model cut --CUT_mode CUT --gpu_ids -1 "
        f"--input_nc {channels} --output_nc {channels} --ngf {cfg.ngf} --ndf {cfg.ndf} "
        f"--load_size {crop_size} --crop_size {crop_size} --batch_size 1 "
        f"--checkpoints_dir /tmp/official_cut_stability"
    )
    old_argv = sys.argv
    sys.argv = ["train.py", *args.split()]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            opt = off["TrainOptions"]().parse()
    finally:
        sys.argv = old_argv
    opt.isTrain = True
    return opt


class OfficialCUT(nn.Module):
    """The official CUT (``--CUT_mode CUT``) behind the package's method interface."""

    config_class = CUTConfig
    GENERATOR_PREFIX = "netG."

    @staticmethod
    def build_generator(cfg: CUTConfig, channels: int = 3, crop_size: int = 256) -> nn.Module:
        opt = official_options(cfg, channels, crop_size)
        with contextlib.redirect_stdout(io.StringIO()):
            return _import()["networks"].define_G(
                opt.input_nc,
                opt.output_nc,
                opt.ngf,
                opt.netG,
                opt.normG,
                not opt.no_dropout,
                opt.init_type,
                opt.init_gain,
                opt.no_antialias,
                opt.no_antialias_up,
                [],
                opt,
            )

    def __init__(self, cfg: CUTConfig, channels: int = 3, crop_size: int = 256):
        super().__init__()
        self.cfg = cfg
        opt = official_options(cfg, channels, crop_size)
        with contextlib.redirect_stdout(io.StringIO()):
            net = _import()["create_model"](opt)
            # F's MLPs are made at the first forward (the official data-dependent initialisation); the
            # shapes do not depend on the pixels, so a blank batch of the crop size does it
            blank = torch.zeros(1, channels, crop_size, crop_size)
            net.data_dependent_initialize({"A": blank, "B": blank, "A_paths": [""], "B_paths": [""]})
        self.net = net
        self.netG, self.netD, self.netF = net.netG, net.netD, net.netF
        self.criterionGAN = net.criterionGAN  # its label buffers follow .to(device)

    @property
    def generator(self) -> nn.Module:
        return self.netG

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.net.device = next(self.netG.parameters()).device  # set_input's .to(device)
        return out

    def make_optimizers(self, lr: float, betas: tuple[float, float], eps: float = 1e-8) -> dict:
        opts = {"G": self.net.optimizer_G, "D": self.net.optimizer_D, "F": self.net.optimizer_F}
        for o in opts.values():
            for g in o.param_groups:
                g.update(lr=lr, betas=betas, eps=eps)
        return opts

    @torch.no_grad()
    def translate(self, x: torch.Tensor) -> torch.Tensor:
        return self.netG(x)

    def train_step(self, batch: dict[str, torch.Tensor], step) -> dict[str, torch.Tensor]:
        net = self.net
        net.set_input({"A": batch["A"], "B": batch["B"], "A_paths": [""], "B_paths": [""]})
        with step.autocast():
            net.optimize_parameters()
        step.record("D_real_mean", net.pred_real.detach().float().mean())
        out = {
            "D_real": net.loss_D_real,
            "D_fake": net.loss_D_fake,
            "G_GAN": torch.as_tensor(net.loss_G_GAN),
            "NCE": net.loss_NCE,
            "G": net.loss_G,
        }
        if net.opt.nce_idt:
            out["NCE_Y"] = net.loss_NCE_Y
        self._last = {"real_A": net.real_A, "fake_B": net.fake_B.detach(), "real_B": net.real_B}
        return out

    def visuals(self) -> dict[str, torch.Tensor]:
        return getattr(self, "_last", {})


def register() -> None:
    """Add ``official-cut`` (the official CUT, the paper's defaults) to this process's method registry."""
    from unpaired.methods import register_method  # noqa: PLC0415

    register_method(NAME, OfficialCUT, "Official CUT", {}, "the official CUT code's model and update (benchmarks only)")
