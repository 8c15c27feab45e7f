"""A 4-trial grid sweep on tiny settings: trials complete or are pruned, a killed worker's trial is
retried after a restart against the same storage, and the best trial gets a test score."""

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time

import pytest
from test_evaluation import split_dir  # noqa: F401  (fixture)
from test_metrics import needs_inception

from unpaired import checkpoint as ckpt_io

optuna = pytest.importorskip("optuna")


def median_rule_step(values: dict[int, float], completed: list) -> int | None:
    """The first step at which the sweep's pruner (median rule, pruning from the first completed
    trial on, no warm-up) stops a trial reporting ``values``: its best value so far is worse than
    the median of the completed trials' values at that step. None if it never does."""
    if not completed:
        return None
    best = math.inf
    for step in sorted(values):
        best = min(best, values[step])
        others = [c.intermediate_values[step] for c in completed if step in c.intermediate_values]
        if others and best > statistics.median(others):
            return step
    return None


@needs_inception
def test_sweep_survives_kill_and_reports_best(split_dir, tmp_path):  # noqa: F811
    out = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "unpaired",
        "sweep",
        "--model",
        "cut-focal",
        "--data",
        str(split_dir),
        "--out",
        str(out),
        "--param",
        "focal_gamma=0,2",
        "--param",
        "focal_alpha=0.5,1.0",
        "--heartbeat",
        "1",
        "--quiet",
        "--set",
        "data.crop_size=32",
        "--set",
        "model.ngf=8",
        "--set",
        "model.ndf=8",
        "--set",
        "model.n_blocks=2",
        "--set",
        "model.nce_layers=[0,4,8,12]",
        "--set",
        "model.projector_dim=32",
        "--set",
        "data.num_workers=0",
        "--set",
        "train.epochs=2",
        "--set",
        "train.epochs_decay=1",
        "--set",
        "train.save_every=2",
        "--set",
        "train.log_every=1",
    ]
    env = {**os.environ, "UNPAIRED_CACHE": str(tmp_path / "cache")}
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    deadline = time.time() + 240
    # kill the worker in the middle of a trial, once that trial has written a checkpoint
    while not list((out / "trials").glob("*/checkpoints/latest.pt")) if (out / "trials").exists() else True:
        assert first.poll() is None and time.time() < deadline, first.communicate()[1][-2000:]
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    # the dead trial's checkpoint and its log up to it (each line carries its wall-clock time)
    (dead,) = [p.parents[1] for p in (out / "trials").glob("*/checkpoints/latest.pt")]
    saved = ckpt_io.load(dead)["progress"]["iteration"]
    logged = []
    for line in (dead / "metrics.jsonl").read_text().splitlines():
        if not line.endswith("}") or json.loads(line)["iter"] > saved:  # past the checkpoint, or torn by the kill
            break
        logged.append(line)
    assert saved >= 2 and len(logged) >= saved
    time.sleep(2.5)  # past the heartbeat grace period: the trial is stale
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((out / "sweep.json").read_text())
    states = [t["state"] for t in result["trials"]]
    assert states.count("COMPLETE") + states.count("PRUNED") == 4 and states.count("FAIL") >= 1
    # each trial was pruned exactly when, and at the step where, the median rule says so
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'sweep.db'}")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4
    for t in finished:
        # trials ran one after another: the pruner saw the trials completed before this one started
        before = [c for c in finished if c.state.name == "COMPLETE" and c.datetime_complete < t.datetime_start]
        step = median_rule_step(t.intermediate_values, before)
        if t.state.name == "PRUNED":
            assert step == max(t.intermediate_values), (t.number, step)  # stopped where the rule fired
        else:
            assert step is None, (t.number, step)
    done = {tuple(sorted(t["params"].items())) for t in result["trials"] if t["state"] in ("COMPLETE", "PRUNED")}
    assert len(done) == 4  # every grid point, the killed one retried
    # ... and its retry resumed the dead trial's checkpoint: the lines up to it were not written again
    assert (dead / "metrics.jsonl").read_text().splitlines()[: len(logged)] == logged
    assert json.loads((dead / "summary.json").read_text())["iteration"] > saved
    assert [t["run_dir"] for t in result["trials"]].count(str(dead)) == 2  # the failed trial and its retry
    best = result["best"]
    complete = [t for t in result["trials"] if t["state"] == "COMPLETE"]
    assert best["val_fid"] == min(t["value"] for t in complete) and best["test_fid"] > 0
    md = (out / "sweep.md").read_text()
    assert "Best: trial" in md and md.count("| COMPLETE |") + md.count("| PRUNED |") == 4


@needs_inception
def test_a_diverging_trial_is_recorded_and_the_sweep_goes_on(split_dir, tmp_path, capsys, monkeypatch):  # noqa: F811
    from unpaired.cli import main

    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    assert (
        main(
            [
                "sweep",
                "--model",
                "fastcut",
                "--data",
                str(split_dir),
                "--out",
                str(out),
                "--param",
                "lr=0.0002,1e30",
                "--quiet",
                "--set",
                "data.crop_size=32",
                "--set",
                "model.ngf=8",
                "--set",
                "model.ndf=8",
                "--set",
                "model.n_blocks=2",
                "--set",
                "model.nce_layers=[0,4,8,12]",
                "--set",
                "model.projector_dim=32",
                "--set",
                "data.num_workers=0",
                "--set",
                "train.iters=4",
                "--set",
                "train.epochs=1",
                "--set",
                "train.epochs_decay=0",
                "--set",
                "train.log_every=2",
            ]
        )
        == 0
    )
    result = json.loads((out / "sweep.json").read_text())
    by_lr = {str(t["params"]["lr"]): t for t in result["trials"]}  # as written on the command line
    assert by_lr["1e30"]["state"] == "DIVERGED" and "training diverged" in by_lr["1e30"]["diverged"]
    assert by_lr["0.0002"]["state"] == "COMPLETE" and result["best"]["params"] == {"lr": 0.0002}
    assert "diverged; recorded as DIVERGED, the sweep goes on" in capsys.readouterr().err
    assert "| DIVERGED |" in (out / "sweep.md").read_text()


def test_a_grid_point_handed_out_twice_runs_once(tmp_path):
    """Two processes can be handed one grid point at once (GridSampler re-deals a started, unfinished
    point once every point is started): the later trial yields before training, is marked a
    duplicate, and neither the trial count nor the results count it."""
    from unpaired.experiments.sweep import SweepPlan, collect_results, make_objective, study_counts

    space = {"focal_gamma": [0, 2]}
    plan = SweepPlan("cut-focal", tmp_path, tmp_path, space, "grid", "fid", 60, 0, [], None, False)
    trained = []
    objective = make_objective(plan, lambda *a: trained.append(a), {}, [])
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space, seed=0))
    first, second = study.ask(), study.ask()  # both points started (in other processes)
    for t in (first, second):
        t.suggest_categorical("focal_gamma", space["focal_gamma"])
    third = study.ask()  # the grid is exhausted: the sampler re-deals a running point
    point = third.suggest_categorical("focal_gamma", space["focal_gamma"])
    earlier = first if first.params["focal_gamma"] == point else second
    with pytest.raises(optuna.TrialPruned):
        objective(third)
    assert trained == [] and study.trials[third.number].user_attrs["duplicate"] is True
    study.tell(third, state=optuna.trial.TrialState.PRUNED)
    assert study_counts(study) == {"COMPLETE": 0, "PRUNED": 0, "RUNNING": 2, "WAITING": 0}
    assert [t["number"] for t in collect_results(study, plan)["trials"]] == [first.number, second.number]
    # a running trial does not yield to a later one of its point; the later one yields to it
    from unpaired.experiments.storage import yield_if_taken

    study.enqueue_trial({"focal_gamma": point})
    fourth = study.ask()
    fourth.suggest_categorical("focal_gamma", space["focal_gamma"])
    yield_if_taken(study, earlier, lambda t: t.params == earlier.params)
    with pytest.raises(optuna.TrialPruned):
        objective(fourth)
    study.tell(fourth, state=optuna.trial.TrialState.PRUNED)
    study.tell(earlier, 5.0)  # once it finished, a later trial of its point yields to it
    study.enqueue_trial({"focal_gamma": point})
    late = study.ask()
    late.suggest_categorical("focal_gamma", space["focal_gamma"])
    with pytest.raises(optuna.TrialPruned):
        objective(late)
    assert trained == []
