"""Network architectures (plain ``nn.Module`` s)."""

from .init import init_weights
from .patchgan import PatchGANDiscriminator
from .projector import PatchSampleMLP
from .resnet import ResnetGenerator

__all__ = ["ResnetGenerator", "PatchGANDiscriminator", "PatchSampleMLP", "init_weights"]
