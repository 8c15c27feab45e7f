"""Device-path bugs that a CPU-only machine can still catch: which device collectives use, where a
restored CycleGAN image pool lands, and precisions a device cannot train in."""

import pytest
import torch

from unpaired.amp import Precision
from unpaired.config import ConfigError
from unpaired.models.cyclegan import ImagePool
from unpaired.training import distributed


def test_collectives_use_cuda_tensors_under_nccl(monkeypatch):
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert distributed.collective_device() == torch.device("cuda", 3)
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "gloo")
    assert distributed.collective_device() == torch.device("cpu")


def test_logging_collectives_build_their_tensors_on_the_collective_device(monkeypatch):
    asked, reduced = [], []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(distributed.dist, "all_reduce", lambda t, op=None: reduced.append(t.device))
    monkeypatch.setattr(distributed, "collective_device", lambda: asked.append(1) or torch.device("cpu"))
    assert distributed.mean_across({"a": 1.0}) == {"a": 0.5}  # the fake all-reduce leaves the sum alone
    assert distributed.any_across(True) is True
    assert len(asked) == 2 and reduced == [torch.device("cpu")] * 2


def test_restored_image_pool_follows_the_model_device():
    pool = ImagePool(2)
    pool.query(torch.rand(2, 3, 4, 4))
    state = pool.get_extra_state()
    other = ImagePool(2).to("meta")  # stands for a GPU: the pool must land where its module is
    other.set_extra_state(state)
    assert [im.device.type for im in other.images] == ["meta", "meta"]
    assert set(pool.state_dict()) == {"_extra_state"}  # checkpoints unchanged: the anchor is not saved


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_fp16_needs_cuda(device):
    with pytest.raises(ConfigError, match="bf16"):
        Precision("fp16", torch.device(device))
    assert Precision("bf16", torch.device(device)).dtype == torch.bfloat16
