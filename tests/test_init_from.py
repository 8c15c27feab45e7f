"""``unpaired train --init-from``: a run starts from the networks the official code saved.

The fixtures (tests/fixtures/official, see its README) were written by the official code itself."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

import unpaired
from unpaired import checkpoint as ckpt_io
from unpaired.cli import main
from unpaired.methods import build_model
from unpaired.models import official

FIXTURES = Path(__file__).parent / "fixtures" / "official"
FAST = ["--size", "32", "--num-workers", "0", "--quiet", "--sample-every", "0"]
STATS = ("running_mean", "running_var", "num_batches_tracked")


def official_state(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors as the official code saved them, without DataParallel's prefix."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k.removeprefix("module."): v for k, v in state.items()}


def assert_equal_to_file(module: torch.nn.Module, path: Path) -> None:
    theirs = official_state(path)
    ours = module.state_dict()
    assert set(ours) == {k for k in theirs if k in ours or not k.endswith(STATS)}, path
    for k, v in ours.items():
        assert torch.equal(v, theirs[k]), (path, k)


# variant, method given (None: from the files), our networks loaded -> official file
CASES = [
    ("cut", None, {"G": "latest_net_G.pth", "D": "latest_net_D.pth", "F": "latest_net_F.pth"}),
    ("fastcut_no_antialias_batchnorm", "fastcut", {"G": "latest_net_G.pth"}),
    ("cut_nonorm_no_antialias_up_dataparallel", None, {"G": "latest_net_G.pth"}),
    ("cyclegan_repo_dropout", None, {"G_A": "latest_net_G_A.pth"}),
]


@pytest.mark.parametrize("variant,method,networks", CASES, ids=[c[0] for c in CASES])
def test_networks_after_init_equal_the_official_files(variant, method, networks):
    cfg = unpaired.build_config(method, init_from=FIXTURES / variant, settings=[("test", {"data.crop_size": 32})])
    model = build_model(cfg)
    loaded = official.init_from_official(model, FIXTURES / variant)
    assert set(loaded) == set(networks)
    for ours, file in networks.items():
        assert_equal_to_file(getattr(model, ours), FIXTURES / variant / file)


def test_sincut_generator_is_loaded():
    cfg = unpaired.preset("sincut", init_from=FIXTURES / "sincut")
    assert cfg.model.generator == "stylegan2" and cfg.model.ngf == 2 and cfg.data.crop_size == 128
    model = build_model(cfg)
    assert official.init_from_official(model, FIXTURES / "sincut") == {"G": str(FIXTURES / "sincut/latest_net_G.pth")}
    saved = torch.load(FIXTURES / "sincut" / "inputs.pt", weights_only=True)
    with torch.no_grad():
        y = model.G.eval()(saved["x_32x48"])
    assert (y - saved["y_32x48"]).abs().max().item() <= 1e-5  # the official netG's output


def test_trainer_starts_from_the_official_networks_with_fresh_optimizers(dataset_dir, tmp_path):
    source = FIXTURES / "cut"
    cfg = unpaired.preset("cut", init_from=source, crop_size=32, root=str(dataset_dir), num_workers=0)
    assert (cfg.model.ngf, cfg.model.ndf, cfg.model.n_blocks, cfg.model.projector_dim) == (4, 4, 6, 16)
    trainer = unpaired.Trainer(cfg, tmp_path / "run", init_from=source, show_progress=False)
    trainer.setup()
    for name in ("G", "D", "F"):
        assert_equal_to_file(getattr(trainer.model, name), source / f"latest_net_{name}.pth")
    assert all(not opt.state for opt in trainer.parts.optimizers.values())
    record = json.loads((tmp_path / "run" / "init_from.json").read_text())
    assert record["source"] == str(source.resolve()) and set(record["networks"]) == {"G", "D", "F"}
    for name, entry in record["networks"].items():
        f = source / f"latest_net_{name}.pth"
        assert entry["file"] == str(f.resolve()) and entry["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def test_train_one_iteration_records_the_source_and_resume_does_not_reapply(dataset_dir, tmp_path, capsys, monkeypatch):
    run, source = tmp_path / "run", tmp_path / "official"
    shutil.copytree(FIXTURES / "cut", source)
    cmd = ["train", "--init-from", str(source), "--data", str(dataset_dir), "--out", str(run), *FAST]
    assert main([*cmd, "--iters", "1"]) == 0
    err = capsys.readouterr().err
    assert "started G, D, F from the official files latest_net_G.pth, latest_net_D.pth, latest_net_F.pth" in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "cut" and summary["iteration"] == 1  # method from train_opt.txt
    assert set(summary["init_from"]["networks"]) == {"G", "D", "F"}
    assert summary["init_from"] == json.loads((run / "init_from.json").read_text())
    assert ckpt_io.load(run)["init_from"] == summary["init_from"]
    after_one = ckpt_io.load(run)["model"]["G.model.1.weight"].clone()
    assert not torch.equal(after_one, official_state(source / "latest_net_G.pth")["model.1.weight"])  # trained

    def must_not_run(*args, **kwargs):
        raise AssertionError("resume applied --init-from again")

    monkeypatch.setattr(official, "init_from_official", must_not_run)
    assert main([*cmd, "--iters", "2"]) == 0
    assert "applied only when a run starts (this one started from it" in capsys.readouterr().err
    assert ckpt_io.load(run)["progress"]["iteration"] == 2
    assert json.loads((run / "summary.json").read_text())["init_from"] == summary["init_from"]


def one_line_error(capsys, *argv) -> str:
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_missing_source_is_one_line(tmp_path, capsys):
    err = one_line_error(capsys, "--init-from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), *FAST)
    assert f"--init-from {tmp_path / 'nowhere'} does not exist" in err
    assert not (tmp_path / "r").exists()


def test_discriminator_given_as_generator_is_one_line(tmp_path, capsys):
    d = FIXTURES / "cut" / "latest_net_D.pth"
    err = one_line_error(capsys, "--init-from", str(d), "--out", str(tmp_path / "r"), *FAST)
    assert "discriminator" in err and "not a generator" in err and "latest_net_G.pth" in err
    assert not (tmp_path / "r").exists()


def test_setting_that_contradicts_the_files_names_the_option(tmp_path, capsys):
    src = str(FIXTURES / "cut")
    err = one_line_error(capsys, "--init-from", src, "--out", str(tmp_path / "r"), "--set", "model.ngf=8", *FAST)
    assert "--set model.ngf" in err and "contradicts --init-from" in err and "4" in err
    with pytest.raises(unpaired.ConfigError, match="model.ngf is 4 in the official files but 64"):
        unpaired.Trainer(unpaired.preset("cut"), tmp_path / "r", init_from=src)
    assert not (tmp_path / "r").exists()


def test_projection_head_that_does_not_fit_names_nce_layers(tmp_path):
    source = tmp_path / "official"
    source.mkdir()
    for name in ("G", "D", "F"):  # no train_opt.txt: the NCE layers are not known
        shutil.copy(FIXTURES / "cut" / f"latest_net_{name}.pth", source)
    cfg = unpaired.build_config("cut", init_from=source, overrides=["model.nce_layers=[0,4,8]"])
    with pytest.raises(official.OfficialFileError, match=r"model\.nce_layers \[0, 4, 8\]") as e:
        official.init_from_official(build_model(cfg), source)
    assert "\n" not in str(e.value) and "latest_net_F.pth" in str(e.value)
