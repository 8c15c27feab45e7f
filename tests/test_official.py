"""Generators saved by the official CUT / SinCUT / CycleGAN code load with the official outputs.

The fixtures (tests/fixtures/official, see its README) were written by the official code itself
through benchmarks/official_checkpoints.py, with the official netG's outputs beside them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import unpaired
from unpaired.checkpoint import CheckpointError
from unpaired.inference.generator import open_generator

FIXTURES = Path(__file__).parent / "fixtures" / "official"
VARIANTS = {
    "cut": ("latest_net_G.pth", "cut", {"model.g_antialias": True, "model.g_norm": "instance"}),
    "fastcut_no_antialias_batchnorm": (
        "latest_net_G.pth",
        "cyclegan",  # no train_opt.txt: no anti-aliasing reads as the CycleGAN repository generator
        {"model.g_antialias": False, "model.g_antialias_up": False, "model.g_norm": "batch", "model.ngf": 2},
    ),
    "cut_nonorm_no_antialias_up_dataparallel": (
        "latest_net_G.pth",
        "cut",
        {"model.g_antialias": True, "model.g_antialias_up": False, "model.g_norm": "none"},
    ),
    "cyclegan_repo_dropout": ("latest_net_G_A.pth", "cyclegan", {"model.g_dropout": True, "model.n_blocks": 6}),
    "sincut": ("latest_net_G.pth", "sincut", {"model.generator": "stylegan2", "model.ngf": 2, "model.n_blocks": 6}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_official_generator_gives_the_official_output(variant):
    file, method, arch = VARIANTS[variant]
    G, cfg, about = open_generator(FIXTURES / variant / file)
    assert cfg.model.name == method and about["format"] == "official"
    for key, value in arch.items():
        assert about["official"]["settings"][key] == value, key
    saved = torch.load(FIXTURES / variant / "inputs.pt", weights_only=True)
    sizes = [k[2:] for k in saved if k.startswith("x_")]
    assert len(sizes) == 2
    for size in sizes:
        with torch.no_grad():
            y = G(saved[f"x_{size}"])
        assert (y - saved[f"y_{size}"]).abs().max().item() <= 1e-5, (variant, size)


def test_translator_from_an_official_folder():
    t = unpaired.load(FIXTURES / "cut", device="cpu")
    assert t.info["format"] == "official" and t.info["name"] == "cut (latest_net_G.pth)"
    assert t.info["display_name"] == "CUT"
    saved = torch.load(FIXTURES / "cut" / "inputs.pt", weights_only=True)
    y = t.translate_tensor(saved["x_32x48"])
    assert (y - saved["y_32x48"]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name,what", [("latest_net_D.pth", "discriminator"), ("latest_net_F.pth", "projection head")])
def test_discriminator_or_projector_is_refused_in_one_line(name, what):
    with pytest.raises(CheckpointError) as e:
        unpaired.load(FIXTURES / "cut" / name, device="cpu")
    msg = str(e.value)
    assert what in msg and "latest_net_G.pth" in msg and "\n" not in msg


def test_garbage_state_dict_is_still_not_a_checkpoint(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="not a network of the official"):
        unpaired.load(tmp_path / "x.pth", device="cpu")


def test_export_of_an_official_file(tmp_path):
    from unpaired.inference.export import export_generator  # noqa: PLC0415 - keeps collection light

    shutil.copytree(FIXTURES / "cut", tmp_path / "off")
    meta = export_generator(tmp_path / "off" / "latest_net_G.pth", tmp_path / "g.safetensors", check=True)
    assert meta["official"]["method"] == "cut" and max(meta["check"].values()) <= 1e-4
    t = unpaired.load(tmp_path / "g.safetensors", device="cpu")
    saved = torch.load(FIXTURES / "cut" / "inputs.pt", weights_only=True)
    assert (t.translate_tensor(saved["x_32x48"]) - saved["y_32x48"]).abs().max().item() <= 1e-5
