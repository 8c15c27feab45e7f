"""Collapse detection: a generator that ignores its input is flagged, logged, and can stop the run."""

import json

import pytest
import torch
from test_evaluation import split_dir  # noqa: F401  (fixture)
from test_metrics import needs_inception

import unpaired
from unpaired import checkpoint as ckpt_io
from unpaired.experiments import report
from unpaired.inference import evaluation
from unpaired.methods import build_model
from unpaired.metrics.collapse import collapse_stats, discriminator_gap, judge

TINY = {
    "model.ngf": 8,
    "model.ndf": 8,
    "model.n_blocks": 2,
    "model.nce_layers": [0, 4, 8, 12],
    "model.projector_dim": 32,
}


def test_stats_tell_a_constant_translator_from_a_faithful_one():
    x = torch.rand(6, 3, 40, 40) * 2 - 1
    faithful = collapse_stats(x, x.flip(3))
    assert faithful["diversity_ratio"] == pytest.approx(1.0, rel=1e-5) and faithful["near_constant_share"] == 0
    assert judge(faithful) is None
    blank = collapse_stats(x, torch.ones_like(x))
    assert blank["near_constant_share"] == 1 and blank["diversity_ratio"] == 0
    assert "nearly constant" in judge(blank)
    # varied but barely: every output is the same image plus a little noise
    same = collapse_stats(x, x[:1].expand_as(x) + 0.01 * torch.randn_like(x))
    assert same["near_constant_share"] == 0 and same["diversity_ratio"] < 0.1
    assert "less than their inputs" in judge(same)


def checkerboards(amplitudes) -> torch.Tensor:
    """32x32 images (the size collapse_stats compares at) alternating 0.5 +- a on a 0..1 scale, in [-1, 1]:
    pixel standard deviation a * sqrt(n / (n - 1)) with n = 3 * 32 * 32."""
    sign = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2 - 1
    return torch.stack([(0.5 + a * sign).expand(3, 32, 32) for a in amplitudes]) * 2 - 1


def test_near_constant_threshold_at_both_sides():
    """A translation is nearly constant when its pixel std is below 0.02 (0..1 scale), not above."""
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    stats = collapse_stats(x, checkerboards([0.0195, 0.0195, 0.0205, 0.0205]))
    assert stats["near_constant_share"] == 0.5
    assert collapse_stats(x, checkerboards([0.0205] * 4))["near_constant_share"] == 0
    assert collapse_stats(x, checkerboards([0.0195] * 4))["near_constant_share"] == 1


@pytest.mark.parametrize(
    "share,ratio,collapsed",
    [
        (0.5, 1.0, "nearly constant"),  # half the translations flat: collapsed
        (0.49, 1.0, None),
        (0.0, 0.099, "less than their inputs"),  # a tenth of the inputs' variety: collapsed
        (0.0, 0.101, None),
        (0.49, 0.101, None),
        (0.0, None, None),  # fewer than 2 images: no ratio
    ],
)
def test_judge_thresholds_at_both_sides(share, ratio, collapsed):
    verdict = judge({"near_constant_share": share, "diversity_ratio": ratio})
    assert verdict is None if collapsed is None else collapsed in verdict


def test_discriminator_gap_for_lsgan_and_logits():
    assert discriminator_gap({"D_real_mean": 0.97, "D_fake_mean": 0.02}, "lsgan") == {
        "d_gap": 0.95,
        "d_saturated": True,
    }
    assert discriminator_gap({"D_real_mean": 0.6, "D_fake_mean": 0.4}, "lsgan")["d_saturated"] is False
    assert discriminator_gap({"D_real_mean": 6.0, "D_fake_mean": -6.0}, "nonsaturating")["d_saturated"] is True
    assert discriminator_gap({}, "lsgan") is None


@needs_inception
@pytest.mark.parametrize("stop", [False, True])
def test_a_collapsed_run_is_flagged_and_can_stop(split_dir, tmp_path, monkeypatch, capsys, stop):  # noqa: F811
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    # 6 training images: validation at iterations 3 (first epoch: not judged), 6, 9 and 12
    cfg = unpaired.preset(
        "cut",
        root=str(split_dir),
        crop_size=32,
        num_workers=0,
        iters=12,
        log_every=1,
        val_every=3,
        val_unit="iter",
        sample_every=0,
        stop_on_collapse=stop,
        **TINY,
    )
    model = build_model(cfg)
    # training goes through forward_with_features; translation (validation) calls the generator itself:
    # make the latter return a blank white image whatever its input
    model.G.forward = lambda x: torch.ones_like(x)
    summary = unpaired.Trainer(cfg, tmp_path / "run", model=model, show_progress=False).fit()
    assert summary["collapse"]["collapsed_at"] == 6 and "nearly constant" in summary["collapse"]["reason"]
    assert "collapsed at iteration 6" in capsys.readouterr().err
    val = [
        json.loads(line)["val"]
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if '"val"' in line
    ]
    assert val[0]["collapse"]["near_constant_share"] == 1.0
    if stop:
        assert summary["stop_reason"] == "collapsed" and summary["iteration"] == 6
        assert ckpt_io.load(tmp_path / "run")["progress"]["iteration"] == 6
    else:
        assert summary["stop_reason"] is None and summary["iteration"] == 12 and len(val) == 4


@needs_inception
def test_a_translator_that_keeps_its_inputs_apart_is_not_flagged(split_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    cfg = unpaired.preset(
        "cut",
        root=str(split_dir),
        crop_size=32,
        num_workers=0,
        iters=6,
        val_every=1,
        sample_every=0,
        stop_on_collapse=True,
        **TINY,
    )
    model = build_model(cfg)
    model.G.forward = lambda x: x.flip(3)  # stands for a generator that translates each input its own way
    summary = unpaired.Trainer(cfg, tmp_path / "run", model=model, show_progress=False).fit()
    assert summary["collapse"]["collapsed_at"] is None and summary["iteration"] == 6
    assert summary["collapse"]["last"]["diversity_ratio"] == pytest.approx(1.0, rel=1e-4)


@needs_inception
def test_a_run_without_validation_is_flagged_when_scored(split_dir, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    cfg = unpaired.preset("cut", root=str(split_dir), crop_size=32, num_workers=0, iters=2, sample_every=0, **TINY)
    unpaired.Trainer(cfg, tmp_path / "run", show_progress=False).fit()
    original = evaluation.open_generator

    def blank_generator(*args, **kwargs):
        G, c, about = original(*args, **kwargs)
        G.forward = lambda x: torch.ones_like(x)
        return G, c, about

    monkeypatch.setattr(evaluation, "open_generator", blank_generator)
    result = evaluation.evaluate_run(tmp_path / "run", split_dir, show_progress=False, ci=False)
    assert "100% of the test translations are nearly constant" in result["collapse"]["collapsed"]
    assert "looks collapsed" in capsys.readouterr().err
    report.write_report([tmp_path / "run"], tmp_path / "report", compare=False)
    assert "| at test (iteration 2) |" in (tmp_path / "report" / "results.md").read_text()
