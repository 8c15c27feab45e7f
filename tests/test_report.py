"""The report of an experiment with seeds: per-row mean ± std over seeds, and paired comparisons of
rows that differ only in their loss settings, computed from the runs' saved features."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from unpaired.experiments import report
from unpaired.methods import preset
from unpaired.metrics.fid import fid_from_features
from unpaired.metrics.uncertainty import paired_difference


def _fake_run(folder: Path, name: str, seed: int, fid: float, kid: float) -> Path:
    cfg = preset(name, seed=seed)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    (folder / "summary.json").write_text(
        json.dumps(
            {
                "iteration": 10,
                "total_iterations": 10,
                "sec_per_iter": 0.5,
                "device": "cpu",
                "collapse": {"collapsed_at": None},
            }
        )
    )
    (folder / "eval").mkdir()
    (folder / "eval" / "test.json").write_text(
        json.dumps(
            {
                "fid": fid,
                "kid": kid,
                "kid_std": 0.01,
                "checkpoint": "best.pt",
                "iteration": 10,
                "n_fake": 6,
                "fid_ci": {"low": fid - 5, "high": fid + 5},
                "real_dir": str(folder),
                "inputs": [],
            }
        )
    )
    return folder


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    """Two rows (CE, focal) x three seeds; the focal row's translations lie nearer the real features."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 8))
    feats, rows = {}, {"cut-ce": [], "cut-focal": []}
    for seed in range(3):
        for row, name, shift in (("cut-ce", "cut", 2.0), ("cut-focal", "cut-focal", 0.3)):
            fake = rng.normal(size=(40, 8)) + shift
            d = _fake_run(tmp_path / row / f"seed{seed}", name, seed, fid_from_features(real, fake), 0.1 * shift)
            feats[d.resolve()] = fake
            rows[row].append(d)
    monkeypatch.setattr(report, "run_features", lambda run_dir, split="test": (real, feats[Path(run_dir).resolve()]))
    return rows, real, feats


def test_seed_rows_and_comparison(tmp_path, experiment):
    rows, real, feats = experiment
    out = tmp_path / "report"
    report.write_report(rows, out)
    md = (out / "results.md").read_text()
    for row in rows:
        fids = [json.loads((d / "eval" / "test.json").read_text())["fid"] for d in rows[row]]
        assert f"| {row} | 3 | {np.mean(fids):.2f} ± {np.std(fids, ddof=1):.2f} |" in md
    comparisons = json.loads((out / "comparisons.json").read_text())
    assert len(comparisons) == 1
    c = comparisons[0]
    assert (c["a"], c["b"], c["differs_in"]) == ("cut-ce", "cut-focal", ["model.focal_alpha", "model.focal_gamma"])
    expected = paired_difference(
        {s: feats[rows["cut-ce"][s].resolve()] for s in range(3)},
        {s: feats[rows["cut-focal"][s].resolve()] for s in range(3)},
        real,
        metric="fid",
    )
    assert c["fid"]["difference"] == pytest.approx(expected["difference"]) and c["fid"]["verdict"] == "better"
    assert c["fid"]["ci"] == pytest.approx(list(expected["ci"]))
    assert "| cut-focal vs cut-ce | model.focal_alpha, model.focal_gamma | 0, 1, 2 |" in md
    html = (out / "gallery.html").read_text()
    assert "<h2>Comparisons</h2>" in html and "better" in html


def test_rows_of_different_methods_are_not_compared(tmp_path, experiment):
    rows, _, _ = experiment
    fast = [_fake_run(tmp_path / "fastcut" / f"seed{s}", "fastcut", s, 100.0 + s, 0.1) for s in range(3)]
    report.write_report({"cut-ce": rows["cut-ce"], "fastcut": fast}, tmp_path / "r2")
    assert not (tmp_path / "r2" / "comparisons.json").exists()
    assert "Comparisons" not in (tmp_path / "r2" / "results.md").read_text()
