"""DiffAugment (model.d_augment): each operation against a direct formula, gradients through it,
real and fake images both augmented in the D and G updates, and off = no change at all."""

import numpy as np
import pytest
import torch
from conftest import TINY

import unpaired
from unpaired.config import ConfigError
from unpaired.methods import build_model
from unpaired.nets import diffaugment as da
from unpaired.training.step import TrainStep


def test_colour_operations_against_direct_formulas():
    x = torch.tensor(np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2) / 24 - 0.5)
    u = torch.tensor([0.25, 0.9], dtype=torch.float64).reshape(2, 1, 1, 1)
    xn, un = x.numpy(), u.numpy().ravel()
    want_b, want_s, want_c = np.empty_like(xn), np.empty_like(xn), np.empty_like(xn)
    for i in range(2):
        want_b[i] = xn[i] + un[i] - 0.5
        for r in range(2):
            for c in range(2):
                m = sum(xn[i, k, r, c] for k in range(3)) / 3
                for k in range(3):
                    want_s[i, k, r, c] = m + (xn[i, k, r, c] - m) * 2 * un[i]
        m = xn[i].sum() / xn[i].size
        want_c[i] = m + (xn[i] - m) * (un[i] + 0.5)
    np.testing.assert_allclose(da.brightness(x, u).numpy(), want_b, rtol=1e-12)
    np.testing.assert_allclose(da.saturation(x, u).numpy(), want_s, rtol=1e-12)
    np.testing.assert_allclose(da.contrast(x, u).numpy(), want_c, rtol=1e-12)


def test_translation_shifts_each_image_by_its_own_offset_filling_zeros():
    x = torch.arange(1, 2 * 1 * 4 * 5 + 1, dtype=torch.float32).reshape(2, 1, 4, 5)
    dy, dx = torch.tensor([1, -2]), torch.tensor([-1, 3])
    out = da.translation(x, dy, dx)
    want = torch.zeros_like(x)
    for i in range(2):
        for r in range(4):
            for c in range(5):
                sr, sc = r - int(dy[i]), c - int(dx[i])
                if 0 <= sr < 4 and 0 <= sc < 5:
                    want[i, 0, r, c] = x[i, 0, sr, sc]
    assert torch.equal(out, want)


def test_cutout_zeroes_a_square_clipped_at_the_border():
    x = torch.ones(2, 2, 6, 6)
    out = da.cutout(x, torch.tensor([2, 0]), torch.tensor([3, 5]), (3, 3))
    want = torch.ones_like(x)
    for i, (cy, cx) in enumerate([(2, 3), (0, 5)]):
        for r in range(cy - 1, cy + 2):
            for c in range(cx - 1, cx + 2):
                if 0 <= r < 6 and 0 <= c < 6:
                    want[i, :, r, c] = 0
    assert torch.equal(out, want)
    assert int((out[1] == 0).sum()) == 2 * 4  # rows 0-1, columns 4-5: the corner of the square


def test_augment_keeps_shapes_draws_per_image_and_is_differentiable():
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64).expand(4, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    y = da.augment(x, "color,translation,cutout")
    assert y.shape == x.shape
    assert all(not torch.equal(y[0], y[i]) for i in range(1, 4))  # same image in, four different draws

    def fixed(t):
        torch.manual_seed(1)  # the same draws on every call: gradcheck compares with finite differences
        return da.augment(t, "color,translation,cutout")

    assert torch.autograd.gradcheck(fixed, (x[:2].clone().requires_grad_(True),))


def test_off_is_the_input_itself_and_draws_nothing():
    x = torch.rand(2, 3, 8, 8)
    before = torch.get_rng_state()
    assert da.augment(x, "") is x and da.augment(x, []) is x
    assert torch.equal(torch.get_rng_state(), before)
    assert da.parse_policy(" color , cutout") == ["color", "cutout"]
    with pytest.raises(ValueError, match="unknown augmentation flip"):
        da.parse_policy("color,flip")
    with pytest.raises(ConfigError, match="model.d_augment"):
        unpaired.preset("cut", **{"model.d_augment": "colour"})


def _record_d_inputs(model, names):
    seen = []
    for name in names:
        d = getattr(model, name)
        original = d.forward

        def forward(x, original=original, name=name):
            seen.append((name, x.detach().clone()))
            return original(x)

        d.forward = forward
    return seen


def _holes(x):
    """Exactly-zero pixels (all channels) per image: cutout's mark; random inputs have none."""
    return (x == 0).all(dim=1).flatten(1).sum(1)


@pytest.mark.parametrize("method, discriminators", [("cut", ["D"]), ("cyclegan", ["D_A", "D_B"])])
def test_discriminators_see_only_augmented_images_and_g_gets_gradients_through_them(method, discriminators):
    tiny = TINY if method == "cut" else {k: TINY[k] for k in ("model.ngf", "model.ndf", "model.n_blocks")}
    cfg = unpaired.preset(method, crop_size=32, **{"model.d_augment": "cutout"}, **tiny)
    model = build_model(cfg)
    seen = _record_d_inputs(model, discriminators)
    opts = model.make_optimizers(2e-4, (0.5, 0.999))
    step = TrainStep(model, opts, unpaired.amp.Precision("fp32", torch.device("cpu")))
    torch.manual_seed(0)
    batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1}
    step(batch)
    # the D update sees 2 reals + 2 fakes per discriminator, the G update 2 fakes: every image has a hole
    assert len(seen) == 2 * len(discriminators)
    for name, x in seen:
        assert bool((_holes(x) > 0).all()), name  # a square of up to 16x16 (half of 32 px), clipped at borders
    # gradients reach G through the augmentation
    fake = model.generator(batch["A"])
    d = getattr(model, discriminators[0])
    loss = model.gan_loss(d(da.augment(fake, "cutout,translation,color")), True)
    g_params = list(model.generator.parameters())
    grads = torch.autograd.grad(loss, g_params)
    assert all(torch.isfinite(g).all() for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
