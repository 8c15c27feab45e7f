"""--on-collapse restart: roll back to the last healthy validation with new random streams, at most
max_restarts times; recorded in the log, metrics.jsonl, summary.json and checkpoints; reproducible."""

import json

import pytest
import torch
from conftest import TINY
from test_evaluation import split_dir  # noqa: F401  (fixture)
from test_metrics import needs_inception

import unpaired
from unpaired import checkpoint as ckpt_io
from unpaired.config import ConfigError
from unpaired.experiments import report
from unpaired.methods import build_model
from unpaired.training.callbacks import Callback
from unpaired.training.recovery import restart_seed


def _config(root, **kw):
    # 6 training images: validation at iterations 3 (first epoch: not judged), 6, 9, 12
    settings = dict(root=str(root), crop_size=32, num_workers=0, iters=12, log_every=1, val_every=3)
    settings.update(val_unit="iter", sample_every=0, save_every=0, on_collapse="restart", max_restarts=2)
    return unpaired.preset("cut", **{**settings, **kw}, **TINY)


def _blank_model(cfg):
    """A CUT whose translations (validation) are blank white pages whatever the input: every
    judged validation finds a collapse; training (forward_with_features) is untouched."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg)
    model.G.forward = lambda x: torch.ones_like(x)
    return model


def _fit(cfg, run, callbacks=()):
    return unpaired.Trainer(cfg, run, model=_blank_model(cfg), callbacks=callbacks, show_progress=False).fit()


class StopAt(Callback):
    """Stops the run (as Ctrl-C does) at an iteration, after a given number of restarts."""

    def __init__(self, iteration, restarts):
        self.iteration, self.restarts = iteration, restarts

    def on_step_end(self, trainer):
        if trainer.iteration == self.iteration and len(trainer.recovery.restarts) == self.restarts:
            trainer.request_stop("interrupted")


def test_restart_seed_keeps_the_run_seed_first_and_changes_it_after():
    assert restart_seed(7, 0) == 7
    assert len({restart_seed(7, k) for k in range(5)}) == 5
    assert restart_seed(7, 1) == restart_seed(7, 1) != restart_seed(8, 1)
    with pytest.raises(ConfigError, match="contradicts"):
        unpaired.preset("cut", stop_on_collapse=True, on_collapse="restart")
    with pytest.raises(ConfigError, match="on_collapse"):
        unpaired.preset("cut", on_collapse="retry")


@needs_inception
def test_restarts_roll_back_record_and_reproduce(split_dir, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    cfg = _config(split_dir)
    summary = _fit(cfg, tmp_path / "a")
    err = capsys.readouterr().err
    # collapse at 6 -> back to 3 (restart 1) -> collapse at 6 -> back to 3 (restart 2) -> collapse at 6: stop
    assert [(r["restart"], r["collapsed_at"], r["resumed_from"]) for r in summary["restarts"]] == [(1, 6, 3), (2, 6, 3)]
    assert [r["seed"] for r in summary["restarts"]] == [restart_seed(0, 1), restart_seed(0, 2)]
    assert summary["stop_reason"] == "collapsed" and summary["iteration"] == 6
    assert "restart 1 of at most 2" in err and "restart 2 of at most 2" in err and "2 restart(s) used" in err
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [x["restart"]["restart"] for x in lines if "restart" in x] == [1, 2]
    # the log holds each iteration once, in order, after the rollbacks
    iters = [x["iter"] for x in lines if "loss" in x]
    assert iters == sorted(iters) and len(iters) == len(set(iters)) == 6
    state = ckpt_io.load(tmp_path / "a" / "checkpoints" / "latest.pt")
    assert [r["restart"] for r in state["recovery"]["restarts"]] == [1, 2]

    # the same command gives the same weights, also when stopped after its last restart and resumed
    _fit(cfg, tmp_path / "c", [StopAt(5, 2)])
    assert ckpt_io.load(tmp_path / "c" / "checkpoints" / "latest.pt")["progress"]["iteration"] == 5
    resumed = _fit(cfg, tmp_path / "c")
    assert resumed["restarts"] == summary["restarts"]
    weights = [ckpt_io.load(tmp_path / r / "checkpoints" / "latest.pt")["model"] for r in ("a", "c")]
    for k, v in weights[0].items():
        if torch.is_tensor(v):
            assert torch.equal(v, weights[1][k]), k
    report.write_report([tmp_path / "a"], tmp_path / "report", compare=False)
    assert (
        "restarted: collapsed at iteration 6, back to 3; then at iteration 6"
        in (tmp_path / "report" / "results.md").read_text()
    )
    # and the restarts changed the training: without them the weights at iteration 6 differ
    plain = _fit(_config(split_dir, on_collapse="stop"), tmp_path / "d")
    assert plain["iteration"] == 6 and not plain["restarts"]
    w = ckpt_io.load(tmp_path / "d" / "checkpoints" / "latest.pt")["model"]
    assert any(not torch.equal(v, weights[0][k]) for k, v in w.items() if k.startswith("G."))
