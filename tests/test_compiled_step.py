"""The compiled training step (torch.compile, inductor on the CPU) computes what the eager step does.

Every model runs from the same weights, batches and random numbers, eagerly and compiled, at the
networks of ``benchmarks/step_equality.py`` (32 px, ngf 8, ndf 8, 2 blocks; Adam's epsilon 1, so
that an update is linear in its gradient and rounding in a gradient whose true value is 0 cannot
flip an update's sign).

- In float64, the weights after 5 steps agree to 1e-5 relative (measured on 2026-12-05: 4e-14 at
  most). This is the equality test: the step is a non-smooth function (ReLU gates), and float32
  rounding is enough to put a ReLU input that lies near 0 on the other side, after which two correct
  evaluations part: eager PyTorch on 1 thread against 2 threads is already 4.5e-5 apart (CUT's
  G.model.1.weight) after 5 steps, and the compiled CUT step's gradients are 1% off after one
  (benchmarks/compile_kink.py, docs/measured/speed.md). In float64 rounding is 1e-16, far from any
  ReLU input, and what is left is what the compiled step computes.
- In float32, the first step's losses agree to 1e-5 relative (the losses are continuous: a gate
  flip moves a gradient, not a value) and each network's first update to 5% of its size (measured:
  CUT's and SinCUT's G 1.3% and 1.2% off, every other network 0.2% at most; a wrong kernel moves
  an update by its whole size).

Compiling is what these tests pay for (about 7 minutes on 2 idle cores, far more under load): they
carry the ``compile`` mark, ``-m "not compile"`` leaves them out.
"""

import pytest
import torch
from conftest import TINY

import unpaired
from unpaired.amp import Precision
from unpaired.methods import build_model
from unpaired.training.step import build_step

STEPS = 5
SIZE = 32
SMALL = {"model.ngf": 8, "model.ndf": 8, "model.n_blocks": 2}
SETTINGS = {
    "cut": TINY,
    "fastcut": TINY,
    "cyclegan": SMALL,
    # its StyleGAN2 networks: the encoder's blocks are its NCE layers (the preset's), and the
    # discriminator needs power-of-two tiles that divide the crop
    "sincut": {"model.ngf": 8, "model.ndf": 8, "model.d_tile_size": 16, "model.projector_dim": 32},
}
BATCH = {"sincut": 2}


def run(model_name: str, mode: str, dtype: torch.dtype, steps: int):
    """Losses of each step, and the weights before and after, for ``steps`` steps in ``mode``."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # weights, batches and every tensor the step makes
    try:
        cfg = unpaired.preset(model_name, crop_size=SIZE, **SETTINGS[model_name])
        torch.manual_seed(0)
        model = build_model(cfg)
        before = weights(model)
        step = build_step(
            model,
            model.make_optimizers(2e-4, (0.5, 0.999), 1.0),
            Precision("fp32", torch.device("cpu")),
            mode,
            log=lambda line: None,
        )
        g = torch.Generator().manual_seed(1)
        shape = (BATCH.get(model_name, 1), 3, SIZE, SIZE)
        batches = [{k: torch.rand(shape, generator=g) * 2 - 1 for k in "AB"} for _ in range(steps)]
        torch.manual_seed(2)
        losses = [{k: float(v) for k, v in step(b).losses.items()} for b in batches]
        return step.name, losses, before, weights(model)
    finally:
        torch.set_default_dtype(default)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v) and v.is_floating_point()}


def assert_same_losses(eager: list[dict], compiled: list[dict], rel: float) -> None:
    for a, b in zip(eager, compiled, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            # abs for the losses that are about 0 (a saturated discriminator's)
            assert b[k] == pytest.approx(a[k], rel=rel, abs=1e-6), k


@pytest.mark.compile
@pytest.mark.parametrize("model_name", list(SETTINGS))
def test_compiled_step_equals_eager_in_float64(model_name):
    eager_name, eager_losses, _, eager_weights = run(model_name, "off", torch.float64, STEPS)
    name, losses, _, compiled_weights = run(model_name, "compile", torch.float64, STEPS)
    assert eager_name == "eager" and name == "compile", "compilation fell back to eager"
    assert compiled_weights[next(iter(compiled_weights))].dtype == torch.float64
    assert_same_losses(eager_losses, losses, rel=1e-5)
    assert compiled_weights.keys() == eager_weights.keys()
    for k, v in eager_weights.items():
        # 1e-5 relative; atol only for weights that are 0 to begin with (biases)
        torch.testing.assert_close(compiled_weights[k], v, rtol=1e-5, atol=1e-8, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.compile
@pytest.mark.parametrize("model_name", list(SETTINGS))
def test_compiled_first_step_agrees_with_eager_in_float32(model_name):
    eager_name, eager_losses, before, eager_weights = run(model_name, "off", torch.float32, 1)
    name, losses, _, compiled_weights = run(model_name, "compile", torch.float32, 1)
    assert eager_name == "eager" and name == "compile", "compilation fell back to eager"
    assert_same_losses(eager_losses, losses, rel=1e-5)
    # each network's update as one vector: a flipped gate turns it by about 1%, a wrong kernel by all of it
    for net in sorted({k.split(".")[0] for k in before}):
        keys = [k for k in before if k.startswith(net + ".")]
        eager_update = torch.cat([(eager_weights[k] - before[k]).flatten() for k in keys])
        compiled_update = torch.cat([(compiled_weights[k] - before[k]).flatten() for k in keys])
        off = ((compiled_update - eager_update).norm() / eager_update.norm().clamp_min(1e-30)).item()
        assert off < 5e-2, f"{net}'s first update is {off:.1%} off the eager one"
