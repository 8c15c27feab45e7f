"""Sweeps sharing a study through a real (throw-away) PostgreSQL server, and the storage URL's
password kept secret: masked in every file under OUT, absent from every worker's command line, and
taken from UNPAIRED_STORAGE."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
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
