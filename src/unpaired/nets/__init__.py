"""Network architectures (plain ``nn.Module`` s)."""

from .init import init_weights
from .patchgan import PatchGANDiscriminator
from .projector import PatchSampleMLP
from .resnet import ResnetGenerator, resnet_generator

__all__ = ["ResnetGenerator", "resnet_generator", "PatchGANDiscriminator", "PatchSampleMLP", "init_weights"]
