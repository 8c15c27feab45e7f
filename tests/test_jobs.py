"""--jobs: several experiment rows or sweep trials at once, one process each (tiny CPU settings)."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_evaluation import split_dir  # noqa: F401  (fixture)
from test_metrics import needs_inception

from unpaired.cli import main
from unpaired.experiments.jobs import Job, JobPool, threads_per_job

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
    "train.val_every": 1,
}


def weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["model"]


@needs_inception
def test_experiment_rows_in_parallel(split_dir, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    exp = tmp_path / "exp.yaml"
    # 'broken' fails only once it trains (fp16 needs a CUDA GPU); the rows after it still run
    exp.write_text(
        json.dumps(
            {
                "name": "tiny",
                "scales": {"tiny": {"set": TINY}},
                "rows": [
                    {"name": "cut", "model": "cut"},
                    {"name": "broken", "model": "cut", "set": {"train.precision": "fp16"}},
                    {"name": "fastcut", "model": "fastcut"},
                ],
            }
        )
    )
    out = tmp_path / "out"
    args = [
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
        "--jobs",
        "2",
        "--quiet",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "error: 1 of 3 rows failed: broken (exit 2)" in err and "fp16 training needs a CUDA GPU" in err
    assert re.search(r"^cut: ok, ", err, re.M) and re.search(r"^fastcut: ok, ", err, re.M)
    assert not (out / "report").exists()
    for row in ("cut", "fastcut"):
        run = out / row
        assert (run / "checkpoints" / "latest.pt").is_file() and (run / "checkpoints" / "best.pt").is_file()
        assert json.loads((run / "summary.json").read_text())["finished"]
        log = (run / "experiment.log").read_text()
        threads = os.environ.get("OMP_NUM_THREADS", str(threads_per_job(2)))
        assert f"--only {row} " in log and f"OMP_NUM_THREADS={threads})" in log and "test FID" in log
    assert "fp16 training needs a CUDA GPU" in (out / "broken" / "experiment.log").read_text()

    # the finished rows are skipped (no process started), and the report is the sequential one
    assert main(args + ["--only", "cut", "fastcut"]) == 0
    assert "finished and scored, skipping" in capsys.readouterr().err
    rows = list(csv.DictReader(open(out / "report" / "results.csv")))
    assert [r["run"] for r in rows] == ["cut", "fastcut"]
    for r in rows:
        test = json.loads((out / r["run"] / "eval" / "test.json").read_text())
        assert float(r["FID"]) == pytest.approx(test["fid"], rel=1e-12) and float(r["KID"]) == pytest.approx(
            test["kid"]
        )

    # a row process computes what the sequential path computes with the same number of threads
    # (CPU runs are bit-identical at a fixed thread count; oneDNN sums convolution weight gradients
    # in a thread-count-dependent order, so compare with the threads the row processes had)
    env = {**os.environ, "PYTHONPATH": SRC}
    env.setdefault("OMP_NUM_THREADS", str(threads_per_job(2)))
    seq = tmp_path / "seq"
    res = subprocess.run(
        [sys.executable, "-m", "unpaired", *args[:5], str(seq), *args[6:10], "--jobs", "1", "--quiet", "--only", "cut"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = weights(out / "cut"), weights(seq / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (
        json.loads((seq / "cut" / "eval" / "test.json").read_text())["fid"]
        == json.loads((out / "cut" / "eval" / "test.json").read_text())["fid"]
    )


@needs_inception
def test_sweep_with_two_workers(split_dir, tmp_path, monkeypatch, capsys):  # noqa: F811
    pytest.importorskip("optuna")
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    sets = [
        f"{k}={json.dumps(v).replace(' ', '')}"
        for k, v in {**TINY, "train.device": "cpu"}.items()
        if k != "train.val_every"
    ]
    assert (
        main(
            [
                "sweep",
                "--model",
                "cut-focal",
                "--data",
                str(split_dir),
                "--out",
                str(out),
                "--param",
                "focal_gamma=0,2",
                "--jobs",
                "2",
                "--quiet",
                *[a for s in sets for a in ("--set", s)],
            ]
        )
        == 0
    )
    result = json.loads((out / "sweep.json").read_text())
    assert len(result["trials"]) == 2  # both grid points, none run twice
    assert sorted(t["params"]["focal_gamma"] for t in result["trials"]) == [0, 2]
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in result["trials"])
    assert result["best"]["test_fid"] > 0
    md = (out / "sweep.md").read_text()
    assert md.count("| COMPLETE |") + md.count("| PRUNED |") == 2 and "Best: trial" in md
    log = (out / "workers" / "worker1.log").read_text()
    # the worker joined the same study; whether it also got one of the two trials depends on how fast
    # it started (the parent may finish its tiny trial and take the second one first): that the
    # processes share trials, each run once, is tested with slower trials in test_shared_storage.py
    assert "--worker 1" in log and "Using an existing study" in log, log
    assert "1 worker process(es)" in capsys.readouterr().err


PROBE = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGINT, lambda *a: (print('SIGINT', flush=True), sys.exit(3)))\n"
    "print('ready', os.environ.get('CUDA_VISIBLE_DEVICES'), os.environ['OMP_NUM_THREADS'], flush=True)\n"
    "time.sleep(float(sys.argv[1]))\n"
)


def test_pool_spreads_over_gpus_and_splits_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")  # more entries than devices: the first 3 count
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("unpaired.experiments.jobs.cpu_count", lambda: 8)
    pool = JobPool(4, "cuda", parent_gpu=True)  # like a sweep: this process trains on the first GPU
    assert pool.gpus == ["4", "5", "6"] and pool.threads == 2
    jobs = [Job(f"j{i}", [sys.executable, "-c", PROBE, str(0.05 * i)], tmp_path / f"j{i}.log") for i in range(4)]
    # the least busy GPU first, the first one on ties: 5, 6, then 4 (shared with this process), 5 again
    done = pool.run(jobs)
    assert all(j.ok for j in done)
    assert [j.log.read_text().splitlines()[-1] for j in jobs] == ["ready 5 2", "ready 6 2", "ready 4 2", "ready 5 2"]
    assert JobPool(2, "cpu").gpus == [] and JobPool(2, "cuda:1").gpus == []
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's setting is kept
    assert JobPool(2, "cpu").env(None)["OMP_NUM_THREADS"] == "3"


def test_ctrl_c_is_forwarded_to_children_and_awaited(tmp_path):
    """The parent (its own session, like a terminal's foreground job) gets SIGINT alone: each running
    child gets it once, the parent waits for them and starts no further job."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys\nfrom pathlib import Path\nfrom unpaired.experiments.jobs import Job, JobPool\n"
        f"probe = {PROBE!r}\n"
        "out = Path(sys.argv[1])\n"
        "jobs = [Job(f'j{i}', [sys.executable, '-c', probe, '60'], out / f'j{i}.log') for i in range(3)]\n"
        "pool = JobPool(2, 'cpu')\n"
        "with pool:\n"
        "    done = pool.run(jobs)\n"
        "print(sorted((j.name, j.returncode) for j in done), pool.interrupts, flush=True)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        start_new_session=True,
    )
    deadline = time.time() + 60
    while sum("\nready " in p.read_text() for p in tmp_path.glob("j*.log")) < 2:  # both children up
        assert parent.poll() is None and time.time() < deadline
        time.sleep(0.1)
    os.kill(parent.pid, signal.SIGINT)
    out, _ = parent.communicate(timeout=30)
    assert out.strip() == "[('j0', 3), ('j1', 3)] 1"
    assert not (tmp_path / "j2.log").exists()
    assert all(p.read_text().splitlines()[-1] == "SIGINT" for p in tmp_path.glob("j*.log"))
