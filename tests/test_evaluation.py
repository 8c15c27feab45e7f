"""Validation during training, `evaluate run`, `profile` and `report` on a tiny CUT run."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import write_images
from PIL import Image
from test_metrics import needs_inception

from unpaired import checkpoint as ckpt_io
from unpaired.cli import main
from unpaired.evaluate import run_features
from unpaired.metrics.fid import fid_from_features
from unpaired.metrics.paired import pair_metrics


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    for seed, (split, n) in enumerate((("train", 6), ("val", 4), ("test", 5))):
        # a fixed seed per split (hash(split) changed with PYTHONHASHSEED)
        write_images(root / f"{split}A", n, size=(40, 40), seed=seed)
        (root / f"{split}B").mkdir()
        for i in range(n):  # B: bright images with a dark square, unlike the noise of A
            im = Image.new("RGB", (40, 40), (230, 230, 230))
            im.paste((20, 20, 20), (5 + i, 5, 25 + i, 25))
            im.save(root / f"{split}B" / f"{i:03d}.png")
    return root


@needs_inception
def test_validation_best_checkpoint_evaluate_and_report(split_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    runs = []
    for model in ("cut", "fastcut-focal"):
        run = tmp_path / model
        assert (
            main(
                [
                    "train",
                    "--model",
                    model,
                    "--data",
                    str(split_dir),
                    "--out",
                    str(run),
                    "--size",
                    "32",
                    "--iters",
                    "9",
                    "--val-every",
                    "1",
                    "--val-unit",
                    "epoch",
                    "--num-workers",
                    "0",
                    "--quiet",
                    "--sample-every",
                    "3",
                    "--set",
                    "train.log_every=1",
                    "--set",
                    "model.ngf=16",
                ]
            )
            == 0
        )
        runs.append(run)
    capsys.readouterr()
    run = runs[0]
    val = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    assert [v["iter"] for v in val] == [6, 9]  # end of epoch 1 (6 images), then the final value
    assert all(v["val"]["n_fake"] == 4 and v["val"]["fid"] > 0 for v in val)
    summary = json.loads((run / "summary.json").read_text())["validation"]
    best = min(val, key=lambda v: v["val"]["fid"])
    assert summary["best"]["fid"] == best["val"]["fid"] and summary["best"]["iteration"] == best["iter"]
    assert summary["final"]["iteration"] == 9
    best_ckpt = ckpt_io.load(run / "checkpoints" / "best.pt")
    assert best_ckpt["progress"]["iteration"] == best["iter"] and "optimizers" not in best_ckpt

    names = [f"{i:03d}.png" for i in range(5)]
    for r in runs:
        assert main(["evaluate", "run", str(r), "--data", str(split_dir), "--json", "--device", "cpu"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["n_fake"] == 5 and result["n_real"] == 5 and result["checkpoint"] == "best.pt"
        assert sorted(p.name for p in (r / "eval" / "test").iterdir()) == names
        assert Image.open(r / "eval" / "test" / "000.png").size == (32, 32)
        # bootstrap intervals over the test images
        assert result["fid_ci"]["n_boot"] == 1000 and result["fid_ci"]["low"] < result["fid_ci"]["high"]
        assert result["kid_ci"]["low"] < result["kid_ci"]["high"] and result["kid_subset_size"] == 2
        # the split keeps pairs (testA/000.png <-> testB/000.png): paired metrics, per image by file name
        paired = result["paired"]
        assert paired["n_pairs"] == 5 and paired["tolerance"] == 10 and sorted(paired["per_image"]) == names
        fake = np.asarray(Image.open(r / "eval" / "test" / "003.png").convert("RGB"))
        target = np.asarray(Image.open(split_dir / "testB" / "003.png").convert("RGB").resize((32, 32), Image.BICUBIC))
        assert paired["per_image"]["003.png"] == pytest.approx(pair_metrics(fake, target))
        assert paired["ssim"] == pytest.approx(np.mean([v["ssim"] for v in paired["per_image"].values()]))
        # the translations' Inception features, and where the real ones come from: FID without Inception
        feats = np.load(r / "eval" / "test_features.npy")
        assert feats.shape == (5, 2048) and feats.dtype == np.float32
        assert result["features"]["real"] == {
            "dir": str((split_dir / "testB").resolve()),
            "size": 32,
            "limit": None,
            "n": 5,
        }
        real, fake_feats = run_features(r, "test")
        assert fid_from_features(real, fake_feats) == pytest.approx(result["fid"], rel=1e-4)
    # --which latest (--checkpoint latest before 0.3, still accepted with a note)
    for which in ("--which", "--checkpoint"):
        argv = ["evaluate", "run", str(runs[0]), "--data", str(split_dir), which, "latest", "--no-ci", "--json"]
        assert main([*argv, "--device", "cpu"]) == 0
        captured = capsys.readouterr()
        latest = json.loads(captured.out)
        assert latest["checkpoint"] == "latest.pt"
        assert ("--checkpoint' is deprecated; write --which latest" in captured.err) == (which == "--checkpoint")
        assert "fid_ci" not in latest and "kid_ci" not in latest  # --no-ci: no bootstrap intervals
    # --pixel-tolerance: pixel accuracy within 60 levels instead of 10, per image as pair_metrics says
    argv = ["evaluate", "run", str(runs[0]), "--data", str(split_dir), "--which", "latest", "--no-ci", "--json"]
    assert main([*argv, "--pixel-tolerance", "60", "--device", "cpu"]) == 0
    wide = json.loads(capsys.readouterr().out)["paired"]
    assert wide["tolerance"] == 60 and latest["paired"]["tolerance"] == 10
    fake = np.asarray(Image.open(runs[0] / "eval" / "test" / "001.png").convert("RGB"))
    target = np.asarray(Image.open(split_dir / "testB" / "001.png").convert("RGB").resize((32, 32), Image.BICUBIC))
    assert wide["per_image"]["001.png"] == pytest.approx(pair_metrics(fake, target, tolerance=60))
    assert wide["pixel_acc"] > latest["paired"]["pixel_acc"] and wide["l1"] == pytest.approx(latest["paired"]["l1"])
    assert main(["evaluate", "run", str(runs[0]), "--data", str(split_dir), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("95% bootstrap over images (1000 resamples): FID [")
    assert lines[3].startswith("paired (5 pairs): L1 ") and "(tolerance 10/255)" in lines[3]

    out = tmp_path / "report"
    assert main(["report", *map(str, runs), "--out", str(out)]) == 0
    md = (out / "results.md").read_text()
    assert "| CUT - CE | cut |" in md and "| FastCUT - Focal (gamma 2, alpha 0.25) | fastcut-focal |" in md
    assert "**The 5 worst** test translations (largest L1 error against the paired target)" in md
    rows = list(csv.DictReader(open(out / "results.csv")))
    tests = [json.loads((r / "eval" / "test.json").read_text()) for r in runs]
    assert [float(row["FID"]) for row in rows] == pytest.approx([t["fid"] for t in tests])
    assert all(float(row["sec_per_iter"]) > 0 and float(row["memory_GiB"]) > 0 for row in rows)
    for png in ("losses.png", "fid.png", "nce_positive.png"):
        im = Image.open(out / png)
        assert im.size[0] > 300 and len(set(im.convert("L").getdata())) > 10  # a real plot, not a blank
    html = (out / "gallery.html").read_text()
    # 3 plots, then per run 5 test triptychs and its 5 worst (all 5 test images, ranked by paired L1)
    assert html.count("<figure>") == 23 and len(re.findall(r"src='data:image/png;base64,", html)) == 23
    for heading, test in zip(["CUT - CE (cut)", "FastCUT - Focal (gamma 2, alpha 0.25) (fastcut-focal)"], tests):
        l1 = sorted(((v["l1"], k) for k, v in test["paired"]["per_image"].items()), reverse=True)
        start = html.index(f"<h3>{heading}</h3>")
        at = [html.index(f"<figcaption>{Path(k).stem}: L1 {v:.3f}</figcaption>", start) for v, k in l1]
        assert at == sorted(at)  # worst first
    assert "<strong>The 5 worst</strong>" in html and "**" not in html
    assert "http" not in html  # self-contained
    # --worst 2: the two largest L1 errors per run, nothing else
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "report2"), "--worst", "2"]) == 0
    html = (tmp_path / "report2" / "gallery.html").read_text()
    assert html.count("<figure>") == 3 + 2 * (5 + 2) and "<strong>The 2 worst</strong>" in html
    sections = html.split("<h3>")[1:]  # one per run: its triptychs (no L1 captions), then its worst
    assert len(sections) == 2
    for section, test in zip(sections, tests):
        l1 = sorted(((v["l1"], k) for k, v in test["paired"]["per_image"].items()), reverse=True)
        shown = re.findall(r"<figcaption>([0-9]+): L1 ([0-9.]+)</figcaption>", section)
        assert shown == [(Path(k).stem, f"{v:.3f}") for v, k in l1[:2]]


def test_profile_json(capsys):
    assert (
        main(
            [
                "profile",
                "--model",
                "fastcut",
                "--size",
                "32",
                "--iters",
                "2",
                "--warmup",
                "1",
                "--json",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)
    assert r["sec_per_iter"] > 0 and 0 < r["peak_memory_bytes"] <= r["peak_memory_oneoff_bytes"]
    assert r["params"] == {"G": 11_378_179, "D": 2_764_737, "F": 560_384}


def test_evaluate_run_without_split_explained(tmp_path, capsys, split_dir):
    run = tmp_path / "r"
    assert (
        main(
            [
                "train",
                "--model",
                "fastcut",
                "--data",
                str(split_dir),
                "--out",
                str(run),
                "--size",
                "32",
                "--iters",
                "1",
                "--num-workers",
                "0",
                "--quiet",
                "--set",
                "model.ngf=8",
            ]
        )
        == 0
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "run", str(run), "--data", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "testA does not exist" in err and "data split" in err
