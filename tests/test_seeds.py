"""Several training seeds per experiment row or sweep trial (--seeds), on tiny CPU settings."""

import csv
import json
import re
import statistics
from pathlib import Path

import pytest
import torch
import yaml
from test_evaluation import split_dir  # noqa: F401  (fixture)
from test_metrics import needs_inception

from unpaired.cli import main
from unpaired.config import ConfigError
from unpaired.experiments.experiment import load_experiment, row_config
from unpaired.experiments.report import group_runs, load_run

TINY = {
    "data.crop_size": 32,
    "model.ngf": 8,
    "model.ndf": 8,
    "model.n_blocks": 2,
    "model.nce_layers": [0, 4, 8, 12],
    "model.projector_dim": 32,
    "data.num_workers": 0,
    "train.epochs": 1,
    "train.epochs_decay": 1,
    "train.val_every": 1,
}
ROWS = [{"name": "cut", "model": "cut"}, {"name": "focal", "model": "cut-focal", "set": {"model.focal_gamma": 3.0}}]


def weights(run) -> dict:
    return torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["model"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def write_experiment(path, **extra):
    path.write_text(yaml.safe_dump({"name": "tiny", "rows": ROWS, "scales": {"tiny": {"set": TINY}}, **extra}))
    return path


@pytest.fixture
def one_thread(monkeypatch):
    """Every run of the test (this process and --jobs children) on one CPU thread: CPU training is
    bit-identical only at a fixed thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    yield
    torch.set_num_threads(before)


def test_seed_settings_and_grouping(tmp_path):
    exp = write_experiment(tmp_path / "exp.yaml", seeds=[0, 1])
    spec = load_experiment(exp)
    assert spec["seeds"] == [0, 1]
    row = spec["rows"][1]
    assert row_config(spec, row, "tiny", tmp_path, "cpu").train.seed == 0  # the configured seed
    cfg = row_config(spec, row, "tiny", tmp_path, "cpu", seed=7)
    assert cfg.train.seed == 7 and cfg.model.focal_gamma == 3.0 and cfg.data.crop_size == 32
    for bad in ([], [0, 0], ["a"], 3, [True], [-1]):
        with pytest.raises(ConfigError, match="seeds"):
            load_experiment(write_experiment(tmp_path / "bad.yaml", seeds=bad))
    # an A/A row: the same method with seed_offset trains with seed k + offset
    aa = {"name": "cut-aa", "model": "cut", "seed_offset": 1000}
    assert row_config(spec, aa, "tiny", tmp_path, "cpu", seed=2).train.seed == 1002
    for bad in (-1, "5", True):
        path = tmp_path / "bad_offset.yaml"
        path.write_text(yaml.safe_dump({"rows": [{**aa, "seed_offset": bad}], "scales": {"tiny": {"set": TINY}}}))
        with pytest.raises(ConfigError, match="seed_offset"):
            load_experiment(path)
    # write_report's input: {row: [run folders]} kept in order; a plain list is one group per folder
    assert group_runs({"cut": ["o/cut/seed0", "o/cut/seed1"]}) == [("cut", [Path("o/cut/seed0"), Path("o/cut/seed1")])]
    assert [g for g, _ in group_runs(["x/a", "y/a", "b"])] == ["a", "a", "b"]


@needs_inception
def test_experiment_with_seeds(split_dir, tmp_path, monkeypatch, capsys, one_thread):  # noqa: F811
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    exp = write_experiment(tmp_path / "exp.yaml")
    out = tmp_path / "out"
    base = [
        "experiment",
        str(exp),
        "--data",
        str(split_dir),
        "--out",
        str(out),
        "--scale",
        "tiny",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(base + ["--seeds", "0", "1"]) == 0
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if re.match(r"\[\d/4\] ", line)]
    assert [line for line in progress if line.endswith(": training")] == [
        "[1/4] cut seed 0: training",
        "[2/4] cut seed 1: training",
        "[3/4] focal seed 0: training",
        "[4/4] focal seed 1: training",
    ]
    runs = {(row, k): out / row / f"seed{k}" for row in ("cut", "focal") for k in (0, 1)}
    for (row, k), run in runs.items():
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["train"]["seed"] == k and cfg["model"]["name"] == {"cut": "cut", "focal": "cut-focal"}[row]
        assert json.loads((run / "summary.json").read_text())["finished"] and (run / "eval" / "test.json").is_file()
    assert not (out / "cut" / "config.yaml").exists()  # the row folder only holds its seeds' runs
    for row in ("cut", "focal"):
        assert not same(weights(runs[row, 0]), weights(runs[row, 1]))

    # the report gets the grouping: one table row per run, named row/seed<k>, each run knowing its row and seed
    rows = list(csv.DictReader(open(out / "report" / "results.csv")))
    assert [r["run"] for r in rows] == ["cut/seed0", "cut/seed1", "focal/seed0", "focal/seed1"]
    for r, (row, k) in zip(rows, runs):
        assert float(r["FID"]) == pytest.approx(json.loads((runs[row, k] / "eval" / "test.json").read_text())["fid"])
        loaded = load_run(runs[row, k], row)
        assert (loaded["row"], loaded["seed"], loaded["name"]) == (row, k, f"{row}/seed{k}")
    assert "seeds 0, 1 (one run per row and seed)" in (out / "report" / "results.md").read_text()

    # one seed of a row == a plain `unpaired train --seed 1` with the row's settings
    plain = tmp_path / "plain"
    sets = [
        a
        for k, v in {**TINY, "model.focal_gamma": 3.0}.items()
        for a in ("--set", f"{k}={json.dumps(v).replace(' ', '')}")
    ]
    assert (
        main(
            [
                "train",
                "--model",
                "cut-focal",
                "--data",
                str(split_dir),
                "--out",
                str(plain),
                "--seed",
                "1",
                "--device",
                "cpu",
                "--quiet",
                *sets,
            ]
        )
        == 0
    )
    assert same(weights(plain), weights(runs["focal", 1]))
    assert yaml.safe_load((plain / "config.yaml").read_text()) == yaml.safe_load(
        (runs["focal", 1] / "config.yaml").read_text()
    )

    # rerun: every run is skipped; the file's seeds: act as the flag, and the flag wins over them
    capsys.readouterr()
    exp_seeds = write_experiment(tmp_path / "exp-seeds.yaml", seeds=[0, 1])
    assert main([base[0], str(exp_seeds), *base[2:]]) == 0
    err = capsys.readouterr().err
    assert err.count("finished, skipping training") == 4 and ": training" not in err and "test FID" not in err
    assert main([base[0], str(exp_seeds), *base[2:], "--seeds", "1", "--only", "focal"]) == 0
    assert "[1/1] focal seed 1: finished, skipping training" in capsys.readouterr().err
    # --jobs 2 on the same folder starts no process: all four are finished and scored
    assert main(base + ["--seeds", "0", "1", "--jobs", "2"]) == 0
    assert capsys.readouterr().err.count("finished and scored, skipping") == 4
    # the two layouts do not mix in one OUT
    assert main(base) == 2
    assert "holds runs of an experiment with seeds" in capsys.readouterr().err

    # --jobs 2: one process per (row, seed), the same weights and scores as one after the other
    out2 = tmp_path / "out2"
    assert (
        main(
            [
                "experiment",
                str(exp),
                "--data",
                str(split_dir),
                "--out",
                str(out2),
                "--scale",
                "tiny",
                "--device",
                "cpu",
                "--quiet",
                "--seeds",
                "0",
                "1",
                "--only",
                "cut",
                "--jobs",
                "2",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert re.search(r"^cut seed 0: ok, ", err, re.M) and re.search(r"^cut seed 1: ok, ", err, re.M)
    for k in (0, 1):
        run = out2 / "cut" / f"seed{k}"
        log = (run / "experiment.log").read_text()
        assert f"--only cut --seeds {k} " in log and "OMP_NUM_THREADS=1)" in log
        assert same(weights(run), weights(runs["cut", k]))
        assert (
            json.loads((run / "eval" / "test.json").read_text())["fid"]
            == json.loads((runs["cut", k] / "eval" / "test.json").read_text())["fid"]
        )
    assert [r["run"] for r in csv.DictReader(open(out2 / "report" / "results.csv"))] == ["cut/seed0", "cut/seed1"]


@needs_inception
def test_sweep_with_seeds(split_dir, tmp_path, monkeypatch, one_thread):  # noqa: F811
    pytest.importorskip("optuna")
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    sets = [
        a
        for k, v in {**TINY, "train.device": "cpu"}.items()
        if k != "train.val_every"
        for a in ("--set", f"{k}={json.dumps(v).replace(' ', '')}")
    ]
    cmd = [
        "sweep",
        "--model",
        "cut-focal",
        "--data",
        str(split_dir),
        "--out",
        str(out),
        "--param",
        "focal_gamma=2",
        "--quiet",
        *sets,
    ]
    assert main(cmd + ["--seeds", "0", "1"]) == 0
    trial_dir = out / "trials" / "focal_gamma=2"
    best_val, test_fid = [], []
    for k in (0, 1):
        run = trial_dir / f"seed{k}"
        assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == k
        best_val.append(json.loads((run / "summary.json").read_text())["validation"]["best"]["fid"])
        test_fid.append(json.loads((run / "eval" / "test.json").read_text())["fid"])  # each seed's best checkpoint
    assert not same(weights(trial_dir / "seed0"), weights(trial_dir / "seed1"))
    result = json.loads((out / "sweep.json").read_text())
    [trial] = result["trials"]
    assert trial["state"] == "COMPLETE" and trial["seed_values"] == {"0": best_val[0], "1": best_val[1]}
    assert trial["value"] == pytest.approx(statistics.fmean(best_val))
    assert trial["std"] == pytest.approx(statistics.stdev(best_val))
    best = result["best"]
    assert best["test_fid"] == pytest.approx(statistics.fmean(test_fid))
    assert best["test_fid_std"] == pytest.approx(statistics.stdev(test_fid))
    assert [s["seed"] for s in best["seeds"]] == [0, 1]
    md = (out / "sweep.md").read_text()
    assert "| val fid mean | std | seed 0 | seed 1 |" in md
    assert f"| {trial['value']:.4g} | {trial['std']:.4g} | {best_val[0]:.4g} | {best_val[1]:.4g} |" in md
    assert f"test FID {best['test_fid']:.2f} ± {best['test_fid_std']:.2f}" in md
    header = next(csv.reader(open(out / "sweep.csv")))
    assert header == ["trial", "state", "focal_gamma", "value", "std", "seed0", "seed1"]
    # the pruner saw the first seed's validation scores only
    import optuna

    [frozen] = optuna.load_study(study_name=result["study"], storage=result["storage"]).get_trials()
    val0 = [
        json.loads(line) for line in (trial_dir / "seed0" / "metrics.jsonl").read_text().splitlines() if '"val"' in line
    ]
    assert frozen.intermediate_values == {v["iter"]: v["val"]["fid"] for v in val0} and len(val0) == 2
    # the study remembers its seeds: continuing it with others is refused
    assert main(cmd + ["--seeds", "0"]) == 2
