import pytest
import torch

from unpaired.methods import build_model, preset
from unpaired.nets import PatchGANDiscriminator, PatchSampleMLP, ResnetGenerator
from unpaired.nets.blurpool import Downsample, Upsample


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_equal_reference():
    model = build_model(preset("cut"))
    assert n_params(model.G) == 11_378_179
    assert n_params(model.D) == 2_764_737
    assert n_params(model.F) == 560_384


def test_fastcut_has_same_networks():
    model = build_model(preset("fastcut"))
    assert (n_params(model.G), n_params(model.D), n_params(model.F)) == (11_378_179, 2_764_737, 560_384)


def test_five_nce_taps_at_256():
    G = ResnetGenerator()
    with torch.no_grad():
        feats = G.encode(torch.randn(1, 3, 256, 256), [0, 4, 8, 12, 16])
    assert [tuple(f.shape) for f in feats] == [
        (1, 3, 262, 262),  # reflect-padded input
        (1, 128, 256, 256),  # 64->128 conv, full resolution
        (1, 256, 128, 128),  # 128->256 conv, half resolution
        (1, 256, 64, 64),  # first residual block
        (1, 256, 64, 64),  # fifth residual block
    ]


def test_tap_layers_are_the_reference_modules():
    G = ResnetGenerator()
    kinds = [type(G.model[i]).__name__ for i in (0, 4, 8, 12, 16)]
    assert kinds == ["ReflectionPad2d", "Conv2d", "Conv2d", "ResnetBlock", "ResnetBlock"]
    assert G.model[4].out_channels == 128 and G.model[8].out_channels == 256


@pytest.mark.parametrize("channels", [1, 3])
def test_generator_shape_and_range(channels):
    """The output has the input's shape and is the tanh of the last convolution: the same [-1, 1]
    scale as the normalised training images (a missing or different final activation fails)."""
    G = ResnetGenerator(channels, channels, ngf=8, n_blocks=2)
    x = torch.randn(2, channels, 36, 44)
    y = G(x)
    assert y.shape == (2, channels, 36, 44)
    head = G.model[-2]
    assert isinstance(head, torch.nn.Conv2d) and head.out_channels == channels
    pre = G.model[:-1](x)  # everything up to the final activation
    assert torch.equal(y, torch.tanh(pre))


def test_patchgan_output_grid():
    D = PatchGANDiscriminator(3, ndf=8)
    assert D(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_blurpool_shapes_and_constant_preservation():
    x = torch.full((1, 4, 10, 14), 0.7)
    d = Downsample(4)(x)
    u = Upsample(4)(x)
    assert d.shape == (1, 4, 5, 7) and u.shape == (1, 4, 20, 28)
    torch.testing.assert_close(d, torch.full_like(d, 0.7))
    torch.testing.assert_close(u, torch.full_like(u, 0.7))
    assert Downsample(2)(torch.randn(1, 2, 9, 9)).shape == (1, 2, 5, 5)


def test_blurpool_filters_are_binomial():
    f = Downsample(1).filt[0, 0]
    torch.testing.assert_close(f, torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16)
    u = Upsample(1).filt[0, 0]
    a = torch.tensor([1.0, 3.0, 3.0, 1.0])
    torch.testing.assert_close(u, (a[:, None] * a[None, :]) / 64 * 4)


def test_projector_samples_same_locations_and_normalises():
    feats = [torch.randn(2, 3, 8, 8), torch.randn(2, 16, 4, 4)]
    F = PatchSampleMLP.from_features(feats, nc=32)
    out, ids = F(feats, num_patches=10)
    assert [tuple(o.shape) for o in out] == [(2, 10, 32), (2, 10, 32)]  # layer 2 has 16 >= 10 locations
    torch.testing.assert_close(out[0].norm(dim=-1), torch.ones(2, 10), atol=1e-5, rtol=0)
    again, ids2 = F(feats, num_patches=10, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(ids, ids2))
    torch.testing.assert_close(out[1], again[1])
    few, _ = F(feats, num_patches=100)
    assert few[1].shape == (2, 16, 32)  # capped at the number of locations


def test_state_dict_uses_reference_names():
    keys = set(ResnetGenerator().state_dict())
    assert {"model.1.weight", "model.7.filt", "model.12.conv_block.1.weight", "model.26.weight"} <= keys
    assert "mlp_4.2.weight" in build_model(preset("cut")).F.state_dict()


def test_forward_features_equal_separate_encoding():
    # CUT takes PatchNCE keys from the forward pass over cat(A, B) instead of re-encoding A and B
    torch.manual_seed(0)
    G = ResnetGenerator(3, 3, ngf=8, n_blocks=5)
    x = torch.randn(2, 3, 32, 32)
    out, feats = G.forward_with_features(x, [0, 4, 8, 12, 16])
    torch.testing.assert_close(out, G(x))
    for i in range(2):
        for f, g in zip(feats, G.encode(x[i : i + 1], [0, 4, 8, 12, 16])):
            torch.testing.assert_close(f[i : i + 1], g, rtol=1e-4, atol=1e-4)  # float rounding only


def test_patchnce_gradient_is_per_image():
    """The generator's PatchNCE gradient for image 0 must not depend on what else is in the batch.

    Regression test: sampling patches from a (B, H*W, C) permutation of the feature map (the
    reference's way) sends non-contiguous gradients into InstanceNorm's backward, which torch 2.13
    computes wrongly on the CPU for a batch of 1: batch-1 training then got wrong gradients."""
    from unpaired.config import resolve

    cfg = preset("cut")
    cfg.model.ngf, cfg.model.n_blocks, cfg.model.projector_dim, cfg.data.crop_size = 8, 2, 32, 32
    cfg.model.nce_layers = [0, 4, 8, 12]
    model = build_model(resolve(cfg)).double()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    k = torch.rand(2, 3, 32, 32, dtype=torch.float64)

    def grad(xs, ks):
        xs = xs.clone().requires_grad_(True)
        with torch.no_grad():
            keys = model.G.encode(ks, cfg.model.nce_layers)
        torch.manual_seed(5)  # same patch locations in both calls
        (g,) = torch.autograd.grad(model.nce(keys, xs, False), xs)
        return g

    both, first = grad(x, k), grad(x[:1], k[:1])
    torch.testing.assert_close(2 * both[:1], first, rtol=1e-9, atol=1e-12)
