"""Sweeps sharing a study through a real (throw-away) PostgreSQL server, and the storage URL's
password kept secret: masked in every file under OUT, absent from every worker's command line, and
taken from UNPAIRED_STORAGE."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from postgres_server import PASSWORD, postgres  # noqa: F401  (fixture)
from test_evaluation import split_dir  # noqa: F401  (fixture)
from test_metrics import needs_inception

from unpaired.cli import main
from unpaired.experiments.storage import mask_text, mask_url, storage_url

optuna = pytest.importorskip("optuna")
SRC = str(Path(__file__).resolve().parents[1] / "src")
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
    "train.device": "cpu",
}
SETS = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v).replace(' ', '')}")]


def test_mask_url_hides_only_the_password(monkeypatch):
    assert mask_url("postgresql://me:pa@ss:w@db-host:5432/unpaired") == "postgresql://me:***@db-host:5432/unpaired"
    assert mask_url("postgresql+psycopg2://me:x@h/d") == "postgresql+psycopg2://me:***@h/d"
    for plain in ("postgresql://me@h/d", "sqlite:////tmp/a:b@c.db", "sqlite:///sweep.db", None):
        assert mask_url(plain) == plain
    assert mask_text("FATAL for postgresql://me:hunter22@h/d (hunter22)", "postgresql://me:hunter22@h/d") == (
        "FATAL for postgresql://me:***@h/d (***)"
    )
    monkeypatch.setenv("UNPAIRED_STORAGE", "postgresql://a:b@h/d")
    assert storage_url(None) == "postgresql://a:b@h/d" and storage_url("sqlite:///x") == "sqlite:///x"


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


@needs_inception
def test_sweep_on_postgres_keeps_the_password_secret(postgres, split_dir, tmp_path):  # noqa: F811
    """--jobs 2 with the URL in UNPAIRED_STORAGE: both trials run once, in the server's study; the
    password is in no file under OUT and on no worker's command line (watched while they run)."""
    out = tmp_path / "sweep"
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "UNPAIRED_CACHE": str(tmp_path / "cache"),
        "UNPAIRED_STORAGE": postgres.url(),
    }
    cmd = [sys.executable, "-m", "unpaired", "sweep", "--model", "cut-focal", "--data", str(split_dir)]
    cmd += ["--out", str(out), "--param", "focal_gamma=0,2", "--jobs", "2", "--quiet", "--heartbeat", "2", *SETS]
    parent = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: dict[int, bytes] = {}
    while parent.poll() is None:
        for pid in descendants(parent.pid):
            try:
                seen.setdefault(pid, Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:
                pass
        time.sleep(0.05)
    log = parent.stdout.read().decode(errors="replace")
    assert parent.returncode == 0, log
    workers = [c for c in seen.values() if b"--worker" in c]
    assert workers, f"no worker process seen: {seen}"
    assert not [c for c in seen.values() if PASSWORD.encode() in c]
    assert PASSWORD not in log
    for f in out.rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f
    result = json.loads((out / "sweep.json").read_text())
    assert result["storage"] == postgres.url().replace(PASSWORD, "***")
    assert sorted(t["params"]["focal_gamma"] for t in result["trials"]) == [0, 2]
    study = optuna.load_study(study_name=result["study"], storage=postgres.url())
    assert sorted(t.state.name for t in study.trials) in (["COMPLETE"] * 2, ["COMPLETE", "PRUNED"])
    assert "Trial " in (out / "workers" / "worker1.log").read_text()  # the worker ran a trial


def test_wrong_password_and_url_say_one_line_without_the_password(postgres, split_dir, tmp_path, capsys):  # noqa: F811
    wrong = postgres.url(password="not-the-Pa55word")
    for url, expect in ((wrong, "password"), (postgres.url().replace("127.0.0.1", "no-such-host.invalid"), "")):
        code = main(
            ["sweep", "--model", "cut-focal", "--data", str(split_dir), "--out", str(tmp_path / "s")]
            + ["--param", "focal_gamma=0,2", "--storage", url, "--quiet", *SETS]
        )
        err = capsys.readouterr().err
        assert code != 0
        assert "cannot open the sweep storage" in err and expect in err, err
        assert "not-the-Pa55word" not in err and PASSWORD not in err
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    # the same for a shared experiment, and --jobs with a storage said in one line
    exp = tmp_path / "exp.yaml"
    exp.write_text(json.dumps({"scales": {"tiny": {"set": TINY}}, "rows": [{"name": "ce", "model": "fastcut"}]}))
    base = ["experiment", str(exp), "--data", str(split_dir), "--out", str(tmp_path / "e"), "--scale", "tiny"]
    for extra, expect in (
        (["--storage", wrong], "cannot open the experiment storage"),
        (["--storage", postgres.url().replace("127.0.0.1", "no-such-host.invalid")], "cannot open the experiment"),
        (["--storage", postgres.url(), "--jobs", "2"], "--jobs with --storage"),
    ):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert expect in err and "not-the-Pa55word" not in err and PASSWORD not in err, err
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err


# ---------------------------------------------------------------- independent processes, one killed
HEARTBEAT, GRACE = "1", "8"  # seconds: short for the tests, with room for an overloaded 2-core machine
EXP_TINY = {
    **TINY,
    "train.epochs": 1,
    "train.epochs_decay": 1,  # 12 iterations of 6 images
    "train.save_every": 2,
    "train.log_every": 1,
    "train.sample_every": 0,
}


def launch(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``python -m unpaired ARGS`` as an independent process (its own session), output in ``log``."""
    with open(log, "w") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "unpaired", *args],
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def process_env(tmp_path: Path, url: str) -> dict:
    # one thread each: three processes on two cores, and runs that equal a --jobs 1 run bit for bit
    return {
        **os.environ,
        "PYTHONPATH": SRC,
        "UNPAIRED_CACHE": str(tmp_path / "cache"),
        "UNPAIRED_STORAGE": url,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def checkpoint_iteration(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)["progress"]["iteration"]


def kill_mid_run(procs: list[subprocess.Popen], url: str, prefix: str, run_dir_of, timeout: float = 1800):
    """SIGKILL the first process once the trial it runs (in the study whose name starts with ``prefix``)
    has a checkpoint and is not finished; returns
    (the killed trial's number, its run folder, the checkpoint's iteration, the time of the kill)."""
    victim, who = procs[0], None
    storage = optuna.storages.RDBStorage(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert victim.poll() is None, "the process to kill ended before it had a checkpoint"
        try:
            [name] = [s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith(prefix)]
            study = optuna.load_study(study_name=name, storage=storage)
        except (KeyError, ValueError):  # not created yet
            time.sleep(0.2)
            continue
        for t in study.get_trials(deepcopy=False):
            process = t.user_attrs.get("process", "")
            if t.state.name != "RUNNING" or not process.endswith(f":{victim.pid}") or not t.params:
                continue
            run = run_dir_of(t)
            ckpt = run / "checkpoints" / "latest.pt"
            summary = run / "summary.json"
            if ckpt.is_file() and not summary.is_file():
                iteration = checkpoint_iteration(run)
                os.killpg(victim.pid, signal.SIGKILL)
                killed_at = time.time()
                victim.wait()
                who = (t.number, run, iteration, killed_at)
                break
        if who:
            return who
        time.sleep(0.1)
    raise AssertionError("no run of the first process reached a checkpoint in time")


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    for p, log in zip(procs, logs):
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                if q.poll() is None:
                    os.killpg(q.pid, signal.SIGKILL)
            raise AssertionError(f"timed out; {log}:\n{log.read_text()[-3000:]}") from None


def logged_iterations(run_dir: Path) -> list[int]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    return [r["iter"] for r in records if "loss" in r]  # the training records (one per iteration here)


def retry_of(study, number: int):
    """The trial that retried trial ``number`` (Optuna's RetryFailedTrialCallback marks it)."""
    [t] = [t for t in study.trials if t.system_attrs.get("failed_trial") == number]
    return t


@needs_inception
def test_sweep_three_independent_workers_one_killed(postgres, split_dir, tmp_path):  # noqa: F811
    """Three `unpaired sweep --storage` processes on one study; the first is SIGKILLed mid-trial. Every
    grid point is finished exactly once, the killed trial is retried after the grace period by
    another process and resumes its checkpoint (its metrics show each iteration once), the table
    lists every trial."""
    out, study_name = tmp_path / "sweep", "killed-sweep"
    env = process_env(tmp_path, postgres.url())
    sets = [a for k, v in EXP_TINY.items() for a in ("--set", f"{k}={json.dumps(v).replace(' ', '')}")]
    args = ["sweep", "--model", "fastcut-focal", "--data", str(split_dir), "--out", str(out)]
    args += ["--param", "focal_gamma=0,1,2", "--study-name", study_name, "--quiet", *sets]
    args += ["--set", "train.val_every=2", "--heartbeat", HEARTBEAT, "--grace", GRACE]  # one validation, at the end
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    procs = [launch(args, env, log) for log in logs]
    try:
        number, run, iteration, killed_at = kill_mid_run(
            procs, postgres.url(), study_name, lambda t: Path(t.user_attrs["run_dir"])
        )
        wait_all(procs[1:], logs[1:])
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    for p, log in zip(procs[1:], logs[1:]):
        assert p.returncode == 0, log.read_text()[-3000:]
    study = optuna.load_study(study_name=study_name, storage=postgres.url())
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert sorted(t.params["focal_gamma"] for t in finished) == [0, 1, 2]  # each point once
    assert study.trials[number].state.name == "FAIL"
    retry = retry_of(study, number)
    assert retry.state.name in ("COMPLETE", "PRUNED") and retry.params == study.trials[number].params
    assert 0 < iteration <= retry.user_attrs["resumed_from"][run.name] < 12  # its checkpoint, not a fresh start
    assert logged_iterations(run) == list(range(1, 13))  # each iteration logged once, to the end
    waited = retry.datetime_start.timestamp() - killed_at
    print(
        f"\nsweep: trial {number} killed at iteration >= {iteration}, retried as trial {retry.number} by "
        f"{retry.user_attrs['process']} {waited:.1f} s later (grace {GRACE} s), resumed from iteration "
        f"{retry.user_attrs['resumed_from'][run.name]}"
    )
    assert waited >= int(GRACE) - 1  # not before the grace period
    result = json.loads((out / "sweep.json").read_text())  # the table: every trial, the killed one FAIL
    assert sorted((t["number"], t["state"]) for t in result["trials"]) == sorted(
        (t.number, t.state.name) for t in study.trials
    )
    assert "best" in result


def experiment_file(tmp_path: Path) -> Path:
    """2 rows x 2 seeds of tiny FastCUT runs, 12 iterations each, a checkpoint every 2."""
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        json.dumps(
            {
                "name": "tiny",
                "scales": {"tiny": {"set": EXP_TINY}},
                "seeds": [0, 1],
                "rows": [{"name": "ce", "model": "fastcut"}, {"name": "focal", "model": "fastcut-focal"}],
            }
        )
    )
    return exp


def numbers(csv_path: Path) -> list[dict]:
    """The report table's rows without the columns of time and memory (they differ between runs)."""
    rows = list(csv.DictReader(open(csv_path)))
    timing = ("sec", "iter/s", "memory", "GiB", "time")
    return [{k: v for k, v in r.items() if not any(w in k for w in timing)} for r in rows]


@needs_inception
def test_experiment_three_independent_processes_one_killed(postgres, split_dir, tmp_path):  # noqa: F811
    """Three `unpaired experiment --storage` processes share 2 rows x 2 seeds; the first is SIGKILLed
    mid-run. Every run is trained once (one finished trial per run; its metrics show each iteration
    once), the killed run is retried after the grace period and resumes its checkpoint, OUT/report is
    written by exactly one process and equals the report of `--jobs 1` without a storage."""
    exp, out = experiment_file(tmp_path), tmp_path / "shared"
    env = process_env(tmp_path, postgres.url())
    args = ["experiment", str(exp), "--data", str(split_dir), "--out", str(out), "--scale", "tiny"]
    args += ["--device", "cpu", "--quiet", "--heartbeat", HEARTBEAT, "--grace", GRACE]
    logs = [tmp_path / f"process{i}.log" for i in range(3)]
    procs = []
    try:
        for log in logs:
            procs.append(launch(args, env, log))
        number, run, iteration, killed_at = kill_mid_run(
            procs, postgres.url(), "experiment-tiny-tiny-shared-", lambda t: out / t.params["run"]
        )
        wait_all(procs[1:], logs[1:])
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    texts = [log.read_text() for log in logs[1:]]
    for p, text in zip(procs[1:], texts):
        assert p.returncode == 0, text[-3000:]
    assert sum("wrote " in t for t in texts) == 1 and sum("is written by" in t for t in texts) == 1, texts
    [name] = [
        s.study_name
        for s in optuna.get_all_study_summaries(postgres.url())
        if s.study_name.startswith("experiment-tiny-tiny-shared-")
    ]
    study = optuna.load_study(study_name=name, storage=postgres.url())
    keys = ["ce/seed0", "ce/seed1", "focal/seed0", "focal/seed1"]
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["run"] for t in done) == keys  # one finished record per run
    assert all(t.user_attrs["finished"] for t in done)
    assert study.trials[number].state.name == "FAIL"
    retry = retry_of(study, number)
    assert retry.state.name == "COMPLETE" and retry.params == study.trials[number].params
    assert 0 < iteration <= retry.user_attrs["resumed_from"] < 12  # the dead run's checkpoint, not a fresh start
    resumed_once = [t for t in done if t.user_attrs["resumed_from"]]
    assert resumed_once == [retry]  # no other run was trained twice
    for key in keys:
        assert logged_iterations(out / key) == list(range(1, 13)), key
    waited = retry.datetime_start.timestamp() - killed_at
    print(
        f"\nexperiment: {study.trials[number].params['run']} killed at iteration >= {iteration}, retried as "
        f"trial {retry.number} by {retry.user_attrs['process']} {waited:.1f} s later (grace {GRACE} s), "
        f"resumed from iteration {retry.user_attrs['resumed_from']}"
    )
    assert waited >= int(GRACE) - 1

    # the same experiment with --jobs 1 and no storage: the same table
    seq = tmp_path / "seq"
    env.pop("UNPAIRED_STORAGE")
    res = subprocess.run(
        [sys.executable, "-m", "unpaired", *args[:5], str(seq), *args[6:10], "--jobs", "1", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert numbers(out / "report" / "results.csv") == numbers(seq / "report" / "results.csv")
    # and by hand: `unpaired report OUT` writes the same report again
    (out / "report" / "results.csv").unlink()
    assert main(["report", str(out)]) == 0
    assert numbers(out / "report" / "results.csv") == numbers(seq / "report" / "results.csv")


@needs_inception
def test_experiment_database_goes_away_mid_run(postgres, split_dir, tmp_path):  # noqa: F811
    """The server stops while a run trains: the process ends with one clear line (no traceback, no
    password), the run's files stay on disk, and once the server is back the same command finishes
    the experiment, resuming that run's checkpoint (each iteration logged once)."""
    exp, out = tmp_path / "exp.yaml", tmp_path / "lost"
    exp.write_text(
        json.dumps(
            {"name": "lost", "scales": {"tiny": {"set": EXP_TINY}}, "rows": [{"name": "ce", "model": "fastcut"}]}
        )
    )
    env = process_env(tmp_path, postgres.url())
    args = ["experiment", str(exp), "--data", str(split_dir), "--out", str(out), "--scale", "tiny"]
    args += ["--device", "cpu", "--quiet", "--heartbeat", HEARTBEAT, "--grace", GRACE]
    log = tmp_path / "first.log"
    proc = launch(args, env, log)
    run = out / "ce"
    try:
        deadline = time.monotonic() + 1800
        while not (run / "checkpoints" / "latest.pt").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        postgres.stop()
        stopped_at = checkpoint_iteration(run)
        proc.wait(timeout=1800)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        postgres.start()
    text = log.read_text()
    assert proc.returncode == 3, text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost the experiment storage" in errors[0], text[-3000:]
    assert "run the same command again" in errors[0] and "127.0.0.1" in errors[0]
    assert "Traceback" not in text and PASSWORD not in text
    assert checkpoint_iteration(run) >= stopped_at  # nothing lost on disk

    res = subprocess.run(
        [sys.executable, "-m", "unpaired", *args], env=env, capture_output=True, text=True, timeout=1800
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "report" / "results.csv").is_file()
    [summary] = [
        s for s in optuna.get_all_study_summaries(postgres.url()) if s.study_name.startswith("experiment-lost-")
    ]
    study = optuna.load_study(study_name=summary.study_name, storage=postgres.url())
    [first] = [t for t in study.trials if t.state.name == "FAIL"]  # failed after the grace period
    retry = retry_of(study, first.number)
    assert retry.state.name == "COMPLETE" and retry.user_attrs["resumed_from"] >= stopped_at
    assert logged_iterations(run) == list(range(1, 13))


def test_shared_experiment_lists_a_failed_run_and_a_rerun_retries_it(postgres, split_dir, tmp_path, capsys):  # noqa: F811
    """A run that fails (not a dead process) is recorded with its error and not retried in that
    session; the command ends in one line naming it, writes no report, and a rerun tries it again."""
    exp, out = tmp_path / "exp.yaml", tmp_path / "failing"
    exp.write_text(
        json.dumps(
            {
                "name": "failing",
                "scales": {"tiny": {"set": TINY}},
                "rows": [{"name": "fp16", "model": "fastcut", "set": {"train.precision": "fp16"}}],
            }
        )
    )
    args = ["experiment", str(exp), "--data", str(split_dir), "--out", str(out), "--scale", "tiny", "--device", "cpu"]
    args += ["--storage", postgres.url(), "--quiet", "--heartbeat", "1"]
    for attempt in (1, 2):
        assert main(args) == 1
        err = capsys.readouterr().err
        [line] = [x for x in err.splitlines() if x.startswith("error:")]
        assert "1 of 1 runs failed: fp16: " in line and "fp16 training needs a CUDA GPU" in line, err
        assert PASSWORD not in err and not (out / "report").exists()
        assert "fp16 training needs a CUDA GPU" in (out / "fp16" / "error.log").read_text()
        [name] = [s.study_name for s in optuna.get_all_study_summaries(postgres.url()) if "failing" in s.study_name]
        trials = optuna.load_study(study_name=name, storage=postgres.url()).trials
        assert [t.state.name for t in trials] == ["FAIL"] * attempt  # once per command: no retry loop
