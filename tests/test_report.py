"""The report of an experiment with seeds: per-row mean ± std over seeds, and paired comparisons of
rows that differ only in their loss settings, computed from the runs' saved features."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from unpaired.experiments import report
from unpaired.methods import preset
from unpaired.metrics.fid import fid_from_features
from unpaired.metrics.uncertainty import paired_difference, paired_metric_difference


def _fake_run(folder: Path, name: str, seed: int, fid: float, kid: float, paired: dict | None = None) -> Path:
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
                **({"paired": paired} if paired else {}),
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


def test_paired_metrics_aa_row_and_too_few_seeds(tmp_path, monkeypatch):
    """Per-image L1/SSIM are compared with verdicts; a row of the same method with other seeds is an
    A/A comparison paired in seed order; a row with one seed says "too few seeds"."""
    rng = np.random.default_rng(1)
    real = rng.normal(size=(30, 8))
    names = [f"p{i}.png" for i in range(30)]
    difficulty = rng.uniform(0.1, 0.3, 30)
    feats, rows, per_image = {}, {"cut-ce": [], "cut-focal": [], "cut-ce-aa": [], "cut-one": []}, {}
    plan = [("cut-ce", "cut", 0.0, (0, 1, 2)), ("cut-focal", "cut-focal", -0.05, (0, 1, 2))]
    plan += [("cut-ce-aa", "cut", 0.0, (100, 101, 102)), ("cut-one", "fastcut", 0.0, (0,))]
    for row, name, shift, seeds in plan:
        for seed in seeds:
            l1 = difficulty + shift + rng.normal(0, 0.01) + rng.normal(0, 0.01, 30)
            values = {n: {"l1": float(v), "ssim": float(1 - v)} for n, v in zip(names, l1)}
            paired = {"l1": float(l1.mean()), "ssim": float(1 - l1.mean()), "per_image": values}
            d = _fake_run(tmp_path / row / f"seed{seed}", name, seed, 100.0 + seed, 0.1, paired)
            feats[d.resolve()], per_image[d.resolve()] = rng.normal(size=(30, 8)), values
            rows[row].append(d)
    monkeypatch.setattr(report, "run_features", lambda run_dir, split="test": (real, feats[Path(run_dir).resolve()]))
    out = tmp_path / "report"
    report.write_report(rows, out)
    comps = {(c["a"], c["b"]): c for c in json.loads((out / "comparisons.json").read_text())}
    focal = comps[("cut-ce", "cut-focal")]
    want = paired_metric_difference(
        [{n: v["l1"] for n, v in per_image[d.resolve()].items()} for d in rows["cut-ce"]],
        [{n: v["l1"] for n, v in per_image[d.resolve()].items()} for d in rows["cut-focal"]],
        metric="l1",
    )
    assert focal["l1"]["difference"] == pytest.approx(want["difference"]) == pytest.approx(-0.05, abs=0.02)
    assert focal["l1"]["ci"] == pytest.approx(list(want["ci"])) and focal["l1"]["verdict"] == "better"
    assert focal["ssim"]["verdict"] == "better" and focal["ssim"]["difference"] > 0  # higher SSIM is better
    assert {"fid", "kid", "l1", "ssim"} <= set(focal)
    aa = comps[("cut-ce", "cut-ce-aa")]
    assert aa["differs_in"] == [] and aa["seeds"] == ["0/100", "1/101", "2/102"] and "seed order" in aa["note"]
    assert aa["l1"]["ci"][0] < aa["l1"]["difference"] < aa["l1"]["ci"][1]
    md = (out / "results.md").read_text()
    assert "| cut-focal vs cut-ce | model.focal_alpha, model.focal_gamma | 0, 1, 2 | L1 |" in md
    assert "| cut-focal vs cut-ce | model.focal_alpha, model.focal_gamma | 0, 1, 2 | SSIM (higher is better) |" in md
    assert "| cut-ce-aa vs cut-ce | nothing (A/A: other seeds) | 0/100, 1/101, 2/102 | FID |" in md
    one = next(line for line in md.splitlines() if line.startswith("| FastCUT"))
    assert "| cut-one | 1 | 100.00 | too few seeds |" in one


def test_collapsed_column_says_at_which_iteration(tmp_path):
    """The report's "collapsed" column: "at iteration N" for a run whose validation found it collapsed
    (summary.json's collapse.collapsed_at), "no" for one validated without a collapse."""
    runs = [_fake_run(tmp_path / name, "cut", 0, fid, 0.1) for name, fid in (("healthy", 90.0), ("fell", 180.0))]
    summary = json.loads((runs[1] / "summary.json").read_text())
    summary["collapse"] = {"collapsed_at": 504, "reason": "60% of the translations are nearly constant"}
    (runs[1] / "summary.json").write_text(json.dumps(summary))
    report.write_report(runs, tmp_path / "report", compare=False)
    md = (tmp_path / "report" / "results.md").read_text()
    lines = {name: next(line for line in md.splitlines() if f"| {name} |" in line) for name in ("healthy", "fell")}
    assert lines["fell"].endswith("| at iteration 504 |") and lines["healthy"].endswith("| no |")
    rows = {r["run"]: r for r in csv.DictReader(open(tmp_path / "report" / "results.csv"))}
    assert rows["fell"]["collapsed_at"] == "504" and rows["healthy"]["collapsed_at"] == ""


def test_curves_of_a_row_of_seeds_are_their_mean_with_the_min_max_band():
    """A row of several seeds is one curve: at each x the mean of the seeds that logged it, and
    their min and max; a row of one run is that run, labelled with the run's name."""

    def run(row, name, points):
        return {
            "row": row,
            "name": name,
            "method": "CUT - CE",
            "losses": [{"iter": x, "loss": {"G": y}} for x, y in points],
        }

    runs = [
        run("cut", "cut/seed0", [(1, 2.0), (2, 4.0), (3, 1.0)]),
        run("cut", "cut/seed1", [(1, 6.0), (2, 1.0)]),  # stopped early: x = 3 has one seed
        run("cut", "cut/seed2", [(1, 1.0), (2, 4.0)]),
        run("focal", "focal/seed0", [(1, 5.0), (2, 3.0)]),
    ]
    curves = report.row_curves(runs, lambda r: [(rec["iter"], rec["loss"]["G"]) for rec in r["losses"]])
    assert [c["label"] for c in curves] == ["CUT - CE (cut)", "CUT - CE (focal/seed0)"]
    cut, focal = curves
    assert cut["x"] == [1, 2, 3] and cut["seeds"] == 3
    assert cut["mean"] == pytest.approx([3.0, 3.0, 1.0])
    assert cut["lo"] == [1.0, 1.0, 1.0] and cut["hi"] == [6.0, 4.0, 1.0]
    assert focal["mean"] == focal["lo"] == focal["hi"] == [5.0, 3.0] and focal["seeds"] == 1
