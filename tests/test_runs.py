"""RunFolder: the names of a run folder's files are those 0.2.0 wrote, and reading and repairing its
files behaves as the Trainer, evaluation and reports rely on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

import unpaired  # noqa: F401 - registers the methods (own_model_options looks them up)
from unpaired.config import own_model_options
from unpaired.experiments.report import method_name
from unpaired.runs import RunFolder

HALF_RUN = Path(__file__).resolve().parent / "fixtures" / "v0_2_0" / "half_run"


def test_the_names_are_those_0_2_0_wrote():
    run = RunFolder(HALF_RUN)
    assert run.is_run()
    assert run.latest == HALF_RUN / "checkpoints" / "latest.pt" and run.latest.is_file()
    assert run.checkpoint("best") == run.best == HALF_RUN / "checkpoints" / "best.pt"
    written = sorted(p.relative_to(HALF_RUN).as_posix() for p in HALF_RUN.rglob("*") if p.is_file())
    named = sorted(p.relative_to(HALF_RUN).as_posix() for p in (run.config, run.latest, run.metrics, run.summary))
    assert written == named
    # the records are those of the file, in order
    lines = [json.loads(line) for line in (HALF_RUN / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert run.read_metrics() == lines and len(lines) > 0
    assert run.read_summary() == json.loads((HALF_RUN / "summary.json").read_text())
    assert run.read_config() == yaml.safe_load((HALF_RUN / "config.yaml").read_text())
    assert run.read_eval("test") is None  # never scored


def test_the_other_names(tmp_path):
    run = RunFolder(tmp_path / "r")
    assert run.sample(1234) == tmp_path / "r" / "samples" / "iter_0001234.png"
    assert run.eval_scores("val") == tmp_path / "r" / "eval" / "val.json"
    assert run.eval_features("test") == tmp_path / "r" / "eval" / "test_features.npy"
    assert run.eval_images("test") == tmp_path / "r" / "eval" / "test"
    assert run.tensorboard == tmp_path / "r" / "tensorboard"
    assert run.error_log == tmp_path / "r" / "error.log"
    assert not run.is_run() and run.read_summary() is None and run.read_metrics() == []
    assert RunFolder.of_checkpoint(run.latest).path == run.path
    assert RunFolder.of_checkpoint(tmp_path / "model.pt") is None


def test_truncate_metrics_keeps_records_up_to_the_checkpoint_and_drops_torn_lines(tmp_path):
    run = RunFolder(tmp_path)
    records = [{"iter": i, "loss": {"G": i / 10}} for i in (5, 10, 15, 20)]
    run.metrics.write_text(
        "".join(json.dumps(r) + "\n" for r in records[:3]) + '{"iter": 17, "lo\n' + json.dumps(records[3]) + "\n"
    )
    assert run.truncate_metrics(10) == 1
    assert run.read_metrics() == records[:2]
    assert run.truncate_metrics(0) == 0 and run.read_metrics() == []
    assert RunFolder(tmp_path / "none").truncate_metrics(5) == 0  # no file: nothing written
    assert not (tmp_path / "none").exists()


def test_read_metrics_refuses_a_damaged_line(tmp_path):
    run = RunFolder(tmp_path)
    run.metrics.write_text('{"iter": 1}\n{"iter": 2, "lo\n')
    with pytest.raises(ValueError):
        run.read_metrics()


def test_stale_temporaries_of_dead_writers_go_live_ones_stay(tmp_path):
    run = RunFolder(tmp_path)
    run.checkpoints.mkdir()
    dead = run.checkpoints / ".latest.pt.tmp-999999999"  # above any pid_max: no such process
    live = tmp_path / f".summary.json.tmp-{os.getppid()}"
    for p in (dead, live):
        p.write_text("x")
    assert run.remove_stale_temporaries() == [dead]
    assert not dead.exists() and live.exists()


def test_old_configs_lose_only_other_methods_options():
    # 0.1 configs held every method's options in model:
    cut = {"name": "cut", "focal_gamma": 2.0, "focal_alpha": 0.25, "lambda_identity": 0.5}
    cyclegan = {"name": "cyclegan", "ngf": 8, "focal_gamma": 0.0, "focal_alpha": 1.0, "lambda_identity": 0.5}
    assert own_model_options("cyclegan", {**cyclegan, "lambda_cycle": 5.0}) == {
        "name": "cyclegan",
        "ngf": 8,
        "lambda_cycle": 5.0,
    }
    assert "focal_gamma" in own_model_options("cut", cut)
    assert own_model_options("cut", {**cut, "someone_elses": 1})["someone_elses"] == 1  # unknown: kept
    assert method_name({"model": cut}) == "CUT - Focal (gamma 2, alpha 0.25)"
    assert method_name({"model": cyclegan}) == "CycleGAN"  # not 'CycleGAN - CE'
