"""The shipped configuration files load and resolve to what they say."""

import json
from pathlib import Path

import pytest

from unpaired.cli import main
from unpaired.experiments.experiment import load_experiment, row_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_example_config_through_cli(capsys):
    assert main(["train", "--config", str(CONFIGS / "example.yaml"), "--dry-run", "--json", "--set", "lr=1e-4"]) == 0
    cfg = json.loads(capsys.readouterr().out)["config"]
    assert cfg["model"]["name"] == "cut-focal" and cfg["model"]["focal_gamma"] == 3.0
    assert cfg["data"]["load_size"] == 143 and cfg["train"]["precision"] == "bf16" and cfg["train"]["lr"] == 1e-4
    assert main(["train", "--config", str(CONFIGS / "example.yaml"), "--model", "cut", "--dry-run"]) == 2
    assert "contradicts" in capsys.readouterr().err


@pytest.mark.parametrize("scale", ["full", "small"])
def test_thesis_table_rows_resolve(scale, tmp_path):
    spec = load_experiment(CONFIGS / "thesis_table51.yaml")
    rows = {r["name"]: row_config(spec, r, scale, tmp_path, "cpu") for r in spec["rows"]}
    assert len(rows) == 6
    assert rows["cut-focal-g3-a0.5"].model.focal_gamma == 3.0 and rows["cut-focal-g3-a0.5"].model.focal_alpha == 0.5
    assert rows["fastcut-focal-g2-a0.25"].model.lambda_nce == 10.0
    assert all(c.train.val_every > 0 for c in rows.values())
    if scale == "full":
        assert (rows["cut-ce"].train.epochs, rows["cyclegan"].train.epochs, rows["fastcut-ce"].train.epochs) == (
            200,
            100,
            150,
        )
        assert rows["cut-ce"].data.crop_size == 256
    else:
        assert all(c.data.crop_size == 64 and c.model.ngf == 16 and c.data.load_size == 72 for c in rows.values())
