"""Ctrl-C in `experiment` and `sweep` (README, Experiments): the first press stops the current run
after its iteration with a checkpoint; the same command resumes that run (experiment) or the
re-queued trial with the same parameters (sweep). The press is a real SIGINT to this process,
raised after a chosen iteration, so the Trainer's own handler takes it."""

import json
import signal

import pytest
import yaml
from test_evaluation import split_dir  # noqa: F401  (fixture)
from test_metrics import needs_inception

from unpaired import checkpoint as ckpt_io
from unpaired.cli import main
from unpaired.training.callbacks import GracefulInterrupt

TINY = {
    "data.crop_size": 32,
    "model.ngf": 8,
    "model.ndf": 8,
    "model.n_blocks": 2,
    "model.nce_layers": [0, 4, 8, 12],
    "model.projector_dim": 32,
    "data.num_workers": 0,
    "train.log_every": 1,
}


@pytest.fixture
def ctrl_c_after(monkeypatch):
    """``ctrl_c_after(n)``: one SIGINT to this process after the first iteration >= n of any run;
    returns the list that receives the iteration it was sent at."""

    def arm(n):
        sent = []

        def on_step_end(self, trainer):
            if not sent and trainer.iteration >= n:
                sent.append(trainer.iteration)
                signal.raise_signal(signal.SIGINT)

        monkeypatch.setattr(GracefulInterrupt, "on_step_end", on_step_end)
        return sent

    return arm


def records(run) -> dict[int, str]:
    """metrics.jsonl's training lines by iteration (each line carries its wall-clock time)."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    out = {}
    for line in lines:
        r = json.loads(line)
        if "loss" in r:
            assert r["iter"] not in out, f"iteration {r['iter']} logged twice"
            out[r["iter"]] = line
    return out


@needs_inception
def test_ctrl_c_stops_an_experiment_and_resumes(split_dir, tmp_path, monkeypatch, capsys, ctrl_c_after):  # noqa: F811
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    exp = tmp_path / "exp.yaml"
    tiny = {**TINY, "train.epochs": 1, "train.epochs_decay": 1, "train.val_every": 1}  # 6 images: 12 iterations
    exp.write_text(yaml.safe_dump({"rows": [{"name": "cut", "model": "cut"}], "scales": {"tiny": {"set": tiny}}}))
    cmd = ["experiment", str(exp), "--data", str(split_dir), "--out", str(tmp_path / "out")]
    cmd += ["--scale", "tiny", "--device", "cpu", "--quiet"]
    run = tmp_path / "out" / "cut"
    sent = ctrl_c_after(4)
    assert main(cmd) == 130
    assert sent == [4]
    err = capsys.readouterr().err
    assert "interrupted: cut stopped at iteration 4 of 12; the same command resumes it" in err
    assert ckpt_io.load(run)["progress"]["iteration"] == 4  # saved at the press, not at an earlier save
    assert not (run / "eval" / "test.json").exists() and not (tmp_path / "out" / "report").exists()
    before = records(run)
    assert sorted(before) == [1, 2, 3, 4]

    assert main(cmd) == 0
    assert "[1/1] cut: resuming" in capsys.readouterr().err
    after = records(run)
    assert sorted(after) == list(range(1, 13))
    assert all(after[i] == before[i] for i in before)  # resumed: the first 4 iterations were not run again
    assert json.loads((run / "summary.json").read_text())["finished"]
    assert (run / "eval" / "test.json").is_file() and (tmp_path / "out" / "report" / "results.md").is_file()


@needs_inception
def test_ctrl_c_stops_a_sweep_and_requeues_the_trial(split_dir, tmp_path, monkeypatch, capsys, ctrl_c_after):  # noqa: F811
    """Also the TPE sampler (--sampler tpe --trials 2) and --metric kid: a trial's value is its run's
    best validation KID."""
    optuna = pytest.importorskip("optuna")
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    samplers = []
    create_study = optuna.create_study

    def spy(*args, **kwargs):
        samplers.append(kwargs["sampler"])
        return create_study(*args, **kwargs)

    monkeypatch.setattr(optuna, "create_study", spy)
    out = tmp_path / "sweep"
    cmd = ["sweep", "--model", "fastcut", "--data", str(split_dir), "--out", str(out), "--param", "lr=0.0002,0.0001"]
    cmd += ["--sampler", "tpe", "--trials", "2", "--metric", "kid", "--seed", "3", "--quiet"]
    for k, v in {**TINY, "train.iters": 6, "train.epochs": 1, "train.epochs_decay": 0}.items():
        cmd += ["--set", f"{k}={v}"]
    sent = ctrl_c_after(3)
    assert main(cmd) == 130
    assert sent == [3] and "interrupted: trial 0 stopped at iteration 3" in capsys.readouterr().err
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'sweep.db'}")
    (first, requeued) = study.get_trials()
    assert first.state.name == "FAIL" and requeued.state.name == "WAITING" and requeued.params == first.params
    run = out / "trials" / next(p.name for p in (out / "trials").iterdir())
    assert first.user_attrs["run_dir"] == str(run) and ckpt_io.load(run)["progress"]["iteration"] == 3
    before = records(run)

    assert main(cmd) == 0
    assert all(type(s) is optuna.samplers.TPESampler for s in samplers) and len(samplers) == 2
    result = json.loads((out / "sweep.json").read_text())
    assert result["metric"] == "kid"
    trials = {t["number"]: t for t in result["trials"]}
    assert trials[0]["state"] == "FAIL" and trials[1]["run_dir"] == str(run)
    assert sum(t["state"] in ("COMPLETE", "PRUNED") for t in result["trials"]) == 2  # --trials 2
    after = records(run)
    assert sorted(after) == list(range(1, 7)) and all(after[i] == before[i] for i in before)  # resumed
    for t in result["trials"]:
        if t["state"] == "COMPLETE":
            best = json.loads((out / "trials" / t["run_dir"].split("/")[-1] / "summary.json").read_text())
            best = best["validation"]["best"]
            assert t["value"] == pytest.approx(best["kid"]) and best["kid"] != pytest.approx(best["fid"])
    assert trials[1]["state"] == "COMPLETE"  # the first to finish: nothing to prune it against
