"""The Trainer's collaborators on their own: build_parts (shared with profile), the divergence checks
and the metrics logger's averages."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import TINY

import unpaired
from unpaired.amp import Precision
from unpaired.runs import RunFolder
from unpaired.training.divergence import non_finite_losses, non_finite_sums, non_finite_weight
from unpaired.training.logging import MetricsLogger
from unpaired.training.parts import build_parts, seed_everything
from unpaired.training.step import StepResult


def _cfg(**train):
    cfg = unpaired.preset("fastcut", **TINY)
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def test_build_parts_schedules_decay_linearly_to_zero():
    cfg = _cfg(epochs=2, epochs_decay=3, lr=0.01, compile="off")
    parts = build_parts(cfg, Precision("fp32", torch.device("cpu")), log=lambda line: None)
    assert set(parts.optimizers) == set(parts.schedulers) and parts.step.name == "eager"
    lrs = []
    for _ in range(5):
        lrs.append(parts.lr())
        for s in parts.schedulers.values():
            s.step()
    # 1 for 2 epochs, then 1 - k / (3 + 1) for the k-th decay epoch
    assert lrs == pytest.approx([0.01, 0.01, 0.0075, 0.005, 0.0025])
    for o in parts.optimizers.values():
        assert o.param_groups[0]["lr"] == pytest.approx(0.0)


def test_build_parts_builds_the_same_model_for_the_same_seed_and_restores_it():
    cfg = _cfg(compile="off")
    precision = Precision("fp32", torch.device("cpu"))
    seed_everything(3)
    a = build_parts(cfg, precision, log=lambda line: None)
    seed_everything(3)
    b = build_parts(cfg, precision, log=lambda line: None)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    seed_everything(4)
    c = build_parts(cfg, precision, log=lambda line: None)
    assert not all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), c.model.state_dict().values()))
    c.load_state_dict(a.state_dict(), "a.pt", "the model")
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), c.model.state_dict().values()))
    broken = a.state_dict()
    del broken["optimizers"]["G"]
    with pytest.raises(unpaired.UnpairedError, match=r"a.pt: its optimizer state does not fit"):
        c.load_state_dict(broken, "a.pt", "the model")


def test_non_finite_losses_and_weights_are_named():
    assert non_finite_losses({"G": 1.0, "D": 0.5}) is None
    assert non_finite_losses({"G": 1.0, "D": math.nan}) == "loss D = nan"
    assert non_finite_losses({"G": math.inf, "D": math.nan}) == "losses G = inf, D = nan"
    sums = {"G": torch.tensor(3.0), "nce": torch.tensor(float("-inf"))}
    assert non_finite_sums(sums) == "loss nce = -inf"
    assert non_finite_sums({"G": torch.tensor(3.0)}) is None and non_finite_sums({}) is None
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    assert non_finite_weight(net) is None
    with torch.no_grad():
        net[1].running_var[0] = float("nan")
    assert non_finite_weight(net) == "1.running_var"


def test_logged_records_are_means_over_the_interval(tmp_path):
    run = RunFolder(tmp_path)
    logger = MetricsLogger(run, main=True)
    logger.writer = None
    logger.bar = type("Bar", (), {"update": lambda self, n: None, "set_postfix": lambda self, *a, **k: None})()
    for g, d in ((1.0, 4.0), (2.0, 6.0), (6.0, 2.0)):
        logger.add(StepResult({"G": torch.tensor(g), "D": torch.tensor(d)}, {"acc": torch.tensor(g / 10)}))
    record = logger.interval(iteration=3, epoch=0, lr=0.5)
    assert record["loss"] == pytest.approx({"G": 3.0, "D": 4.0}) and record["stats"] == pytest.approx({"acc": 0.3})
    assert run.read_metrics() == [json.loads(json.dumps(record))]
    logger.next_interval(record)
    logger.add(StepResult({"G": torch.tensor(5.0), "D": torch.tensor(1.0)}, {}))
    assert logger.interval(iteration=4, epoch=1, lr=0.5)["loss"] == pytest.approx({"G": 5.0, "D": 1.0})
    assert [r["iter"] for r in run.read_metrics()] == [3, 4] and len(logger.times) == 2
