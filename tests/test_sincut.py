import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from unpaired import checkpoint as ckpt_io
from unpaired.cli import main
from unpaired.config import resolve
from unpaired.methods import build_model, preset
from unpaired.nets.stylegan2 import EqualConv2d, NoiseInjection, StyleGAN2Discriminator, StyleGAN2Generator

TINY = [
    "--size",
    "32",
    "--batch-size",
    "2",
    "--set",
    "model.ngf=4",
    "--set",
    "model.ndf=4",
    "--set",
    "model.d_tile_size=16",
    "--num-workers",
    "0",
    "--quiet",
    "--set",
    "train.log_every=1",
]


def test_preset_follows_reference_and_thesis():
    c = resolve(preset("sincut"))
    m = c.model
    assert (m.generator, m.discriminator, m.ngf, m.ndf, m.g_downsampling) == ("stylegan2", "stylegan2", 10, 8, 1)
    assert (m.gan_mode, m.lambda_nce, m.nce_layers, m.num_patches, m.nce_negatives) == (
        "nonsaturating",
        4.0,
        [0, 2, 4],
        1,
        "batch",
    )
    assert (m.lambda_r1, m.lambda_identity, m.nce_idt) == (1.0, 1.0, True)
    assert (c.train.lr, c.train.beta1, c.train.beta2) == (2e-3, 0.0, 0.99)
    assert (c.data.crop_size, c.data.batch_size, m.d_tile_size, c.data.zoom_max) == (128, 16, 64, 3.0)
    assert (preset("sincut-focal").model.focal_gamma, preset("sincut-focal").model.focal_alpha) == (2.0, 0.25)


def test_generator_shapes_taps_and_equalized_lr():
    G = StyleGAN2Generator(crop_size=128)
    x = torch.randn(2, 3, 40, 56)
    out, feats = G.forward_with_features(x, [0, 2, 4])
    assert out.shape == x.shape
    assert [tuple(f.shape) for f in feats] == [(2, 3, 40, 56), (2, 80, 20, 28), (2, 80, 20, 28)]
    assert torch.equal(feats[0], x)  # tap 0 is the input itself, as the reference's Identity layer
    conv = next(m for m in G.modules() if isinstance(m, EqualConv2d))
    assert conv.scale == pytest.approx(1 / math.sqrt(conv.weight[0].numel()))
    assert abs(float(conv.weight.std()) - 1) < 0.2  # N(0, 1) storage, scaled at run time
    for m in G.modules():  # noise weights start at 0 (reference): give the noise an effect
        if isinstance(m, NoiseInjection):
            m.weight.data.fill_(0.5)
    G.eval()
    assert torch.equal(G(x), G(x))  # eval-mode noise is a fixed field
    G.train()
    assert not torch.equal(G(x), G(x))  # training-mode noise is drawn anew


def test_discriminator_on_tiles():
    cfg = resolve(preset("sincut"))
    model = build_model(cfg)
    assert isinstance(model.D, StyleGAN2Discriminator) and model.D.size == 64
    x = torch.randn(2, 3, 128, 128)
    assert model.discriminate(x).shape == (8, 1)  # 2 crops x 4 tiles of 64 x 64
    tiles = x.reshape(2, 3, 2, 64, 2, 64).permute(0, 2, 4, 1, 3, 5).reshape(8, 3, 64, 64)
    torch.testing.assert_close(model.discriminate(x), model.D(tiles))
    torch.testing.assert_close(tiles[1], x[0, :, :64, 64:])  # tile order: row by row


def test_r1_penalty_matches_formula():
    cfg = resolve(preset("sincut"))
    model = build_model(cfg)
    w = torch.randn(3, 8, 8)

    class Linear(torch.nn.Module):  # D(x) = <w, x>: its gradient is w for every input
        def forward(self, x):
            return (x * w).flatten(1).sum(1, keepdim=True)

    model.D = Linear()
    model.cfg.d_tile_size = 0
    x = torch.randn(5, 3, 8, 8, requires_grad=True)
    r1 = model.r1_penalty(model.discriminate(x), x)
    assert float(r1) == pytest.approx(0.5 * 1.0 * float((w**2).sum()), rel=1e-5)


def single_images(tmp_path):
    rng = np.random.default_rng(0)
    a = np.zeros((80, 96, 3), np.uint8)
    a[..., 0] = rng.integers(100, 256, (80, 96))
    b = np.zeros((72, 88, 3), np.uint8)
    b[..., 2] = rng.integers(100, 256, (72, 88))
    for side, arr in (("A", a), ("B", b)):
        (tmp_path / "d" / f"train{side}").mkdir(parents=True)
        Image.fromarray(arr).save(tmp_path / "d" / f"train{side}" / f"{side}.png")
    return tmp_path / "d"


def test_sincut_trains_samples_full_resolution_and_resumes_exactly(tmp_path):
    data = single_images(tmp_path)
    straight, resumed = tmp_path / "s", tmp_path / "r"
    assert (
        main(
            [
                "train",
                "--model",
                "sincut",
                "--data",
                str(data),
                "--out",
                str(straight),
                "--iters",
                "4",
                "--sample-every",
                "2",
                *TINY,
            ]
        )
        == 0
    )
    losses = [json.loads(line)["loss"] for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert {"D_R1", "idt", "NCE", "NCE_Y", "G_GAN"} <= set(losses[0])
    assert all(math.isfinite(v) for entry in losses for v in entry.values())
    sample = Image.open(straight / "samples" / "iter_0000004.png")
    assert sample.size == (3 * 96, 80)  # real_A | fake_B | real_B at image A's full resolution
    # --image-a/--image-b instead of --data, and exact resume (the noise RNG is in the checkpoint)
    args = [
        "train",
        "--model",
        "sincut",
        "--image-a",
        str(data / "trainA" / "A.png"),
        "--image-b",
        str(data / "trainB" / "B.png"),
        "--out",
        str(resumed),
        "--sample-every",
        "2",
        *TINY,
    ]
    assert main(args + ["--iters", "2"]) == 0 and main(args + ["--iters", "4"]) == 0
    a, b = ckpt_io.load(straight), ckpt_io.load(resumed)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_single_image_folder_errors(tmp_path, capsys):
    data = single_images(tmp_path)
    Image.new("RGB", (64, 64)).save(data / "trainA" / "second.png")
    assert main(["train", "--model", "sincut", "--data", str(data), "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "exactly one image" in capsys.readouterr().err
    assert (
        main(
            ["train", "--model", "sincut", "--data", str(data), "--out", str(tmp_path / "y"), "--val-every", "1", *TINY]
        )
        == 2
    )
    assert "val split" in capsys.readouterr().err
