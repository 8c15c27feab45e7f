"""The official CUT implementation's training step, for side-by-side timing (not part of the package).

Needs a checkout of taesungp/contrastive-unpaired-translation (never committed here), e.g.::

    git clone https://github.com/taesungp/contrastive-unpaired-translation .ref/cut

``torchvision`` is replaced by a stub in ``sys.modules``: only the official data loading uses it,
and the benchmark feeds random tensors instead.
"""

from __future__ import annotations

import contextlib
import sys
import types
from pathlib import Path

import torch

DEFAULT_CHECKOUT = Path(__file__).resolve().parents[1] / ".ref" / "cut"


def _stub_torchvision() -> None:
    if "torchvision" in sys.modules:
        return
    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.functional = types.ModuleType("torchvision.transforms.functional")
    tv.transforms.InterpolationMode = types.SimpleNamespace(BICUBIC=3, BILINEAR=2, NEAREST=0)
    sys.modules.update(
        {
            "torchvision": tv,
            "torchvision.transforms": tv.transforms,
            "torchvision.transforms.functional": tv.transforms.functional,
        }
    )


def official_step(
    model: str,
    size: int,
    device: torch.device,
    precision: str = "fp32",
    batch_size: int = 1,
    checkout: Path = DEFAULT_CHECKOUT,
    channels_last: bool = False,
):
    """(step function, parameter counts) of the official CUT/FastCUT at this size, on random inputs."""
    if not (checkout / "models" / "cut_model.py").is_file():
        raise FileNotFoundError(
            f"no official CUT checkout in {checkout}: git clone "
            f"https://github.com/taesungp/contrastive-unpaired-translation {checkout}"
        )
    _stub_torchvision()
    sys.path.insert(0, str(checkout))
    try:
        from models import create_model  # noqa: E402  (the official package)
        from options.train_options import TrainOptions
    finally:
        sys.path.remove(str(checkout))
    gpu = "0" if device.type == "cuda" else "-1"
    args = (
        f"--dataroot unused --name bench --model cut --CUT_mode {'FastCUT' if model == 'fastcut' else 'CUT'} "
        f"--gpu_ids {gpu} --load_size {size} --crop_size {size} --batch_size {batch_size} "
        f"--checkpoints_dir /tmp/official_cut_bench"
    )
    old_argv = sys.argv
    sys.argv = ["train.py", *args.split()]
    try:
        with contextlib.redirect_stdout(None):
            opt = TrainOptions().parse()
    finally:
        sys.argv = old_argv
    opt.isTrain = True
    net = create_model(opt)

    def batch():
        shape = (batch_size, 3, size, size)
        # on the device already, as ours (profile_training): set_input's .to(device) is then a no-op
        return {
            "A": torch.rand(shape, device=device) * 2 - 1,
            "B": torch.rand(shape, device=device) * 2 - 1,
            "A_paths": ["a"],
            "B_paths": ["b"],
        }

    with contextlib.redirect_stdout(None):
        net.data_dependent_initialize(batch())
        net.setup(opt)
    if channels_last:
        for name in net.model_names:
            getattr(net, "net" + name).to(memory_format=torch.channels_last)
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
    data = batch()

    def step():
        net.set_input(data)
        if dtype is None:
            net.optimize_parameters()
        else:
            with torch.autocast(device.type, dtype=dtype):
                net.optimize_parameters()

    counts = {n: sum(p.numel() for p in getattr(net, "net" + n).parameters()) for n in net.model_names}
    return step, counts
