"""The compiled training step (torch.compile, inductor on the CPU) computes what the eager step does."""

import pytest
import torch

import unpaired
from unpaired.amp import Precision
from unpaired.methods import build_model
from unpaired.training.step import build_step

# tiny networks: compiling is what this test pays for, on 2 cores about a minute
TINY = {
    "model.ngf": 4,
    "model.ndf": 4,
    "model.n_blocks": 1,
    "model.nce_layers": [0, 4, 8, 12],
    "model.projector_dim": 16,
}


def run(mode, steps=3):
    cfg = unpaired.preset("cut", crop_size=32, **TINY)
    torch.manual_seed(0)
    model = build_model(cfg)
    # Adam divides by |gradient|: a large epsilon makes the update linear in the gradient, so float
    # rounding in a zero-mean gradient (biases before instance norm) cannot flip an update's sign
    step = build_step(
        model,
        model.make_optimizers(2e-4, (0.5, 0.999), 1.0),
        Precision("fp32", torch.device("cpu")),
        mode,
        log=lambda line: None,
    )
    g = torch.Generator().manual_seed(1)
    batches = [{k: torch.rand(1, 3, 32, 32, generator=g) * 2 - 1 for k in "AB"} for _ in range(steps)]
    torch.manual_seed(2)
    losses = [{k: float(v) for k, v in step(b).losses.items()} for b in batches]
    return step, losses, model.state_dict()


def test_compiled_step_equals_eager():
    eager_step, eager_losses, eager_weights = run("off")
    step, losses, weights = run("compile")
    assert eager_step.name == "eager" and step.name == "compile", "compilation fell back to eager"
    for a, b in zip(eager_losses, losses):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5), k
    for k, v in eager_weights.items():
        if v.is_floating_point():
            torch.testing.assert_close(weights[k], v, rtol=1e-4, atol=1e-6, msg=k)
