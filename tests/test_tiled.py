import numpy as np
import pytest
import torch
from PIL import Image

from unpaired.cli import main
from unpaired.nets.stylegan2 import NoiseInjection, StyleGAN2Generator
from unpaired.tiling import translate_any, translate_tiled


def test_blending_is_exact_for_identity():
    x = torch.rand(1, 3, 157, 243)
    for tile, overlap in ((64, 16), (96, 40), (128, 96)):
        torch.testing.assert_close(translate_tiled(torch.nn.Identity(), x, tile, overlap), x, atol=1e-6, rtol=0)


def test_tiled_equals_untiled_for_sincut_generator():
    torch.manual_seed(0)
    G = StyleGAN2Generator(ngf=4, crop_size=64).eval()
    for m in G.modules():  # make the noise matter
        if isinstance(m, NoiseInjection):
            m.weight.data.fill_(0.5)
    x = torch.rand(1, 3, 300, 420) * 2 - 1
    with torch.no_grad():
        full = G(x)
    # overlap 128: 48 px discarded per interior tile edge, more than the generator's ~41 px
    # receptive-field radius, so tiles never use their own zero padding: equal up to float rounding
    tiled = translate_tiled(G, x, tile=192, overlap=128)
    assert float((tiled - full).abs().max()) < 1e-4
    coarse = translate_tiled(G, x, tile=128, overlap=32)  # margin below the radius: visibly different
    assert float((coarse - full).abs().max()) > 1e-3


def test_translate_cli_forces_tiles(tmp_path):
    from unpaired import checkpoint as ckpt_io
    from unpaired.config import resolve
    from unpaired.methods import build_model, preset

    cfg = resolve(preset("sincut"))
    cfg.model.ngf = 4
    model = build_model(cfg)
    ckpt_io.save_atomic(
        {
            "format": 1,
            "config": cfg.to_dict(),
            "model": model.state_dict(),
            "progress": {"epoch": 0, "batch": 0, "iteration": 0},
        },
        tmp_path / "c.pt",
    )
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 230, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    for extra, out in ((["--tile", "64", "--overlap", "24"], "t"), ([], "u")):
        assert (
            main(
                [
                    "translate",
                    str(tmp_path / "c.pt"),
                    "--input",
                    str(tmp_path / "a.png"),
                    "--output",
                    str(tmp_path / out),
                    "--quiet",
                    *extra,
                ]
            )
            == 0
        )
        assert Image.open(tmp_path / out / "a.png").size == (230, 150)
    t = np.asarray(Image.open(tmp_path / "t" / "a.png"), dtype=float)
    u = np.asarray(Image.open(tmp_path / "u" / "a.png"), dtype=float)
    assert np.abs(t - u).mean() < 1.0  # 8-bit levels
    with pytest.raises(ValueError, match="multiple of 4"):
        translate_any(torch.nn.Identity(), torch.rand(1, 3, 8, 8), tile=30)
    with pytest.raises(ValueError, match="1.25 x the overlap"):
        translate_any(torch.nn.Identity(), torch.rand(1, 3, 8, 8), tile=128, overlap=128)
