import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY_NETS

from unpaired import checkpoint as ckpt_io
from unpaired.cli import main
from unpaired.inference.generator import load_generator

FAST = ["--size", "32", "--num-workers", "0", "--quiet", "--sample-every", "0"]


def train(data, out, model="cut", *extra):
    return main(["train", "--model", model, "--data", str(data), "--out", str(out), *FAST, *extra])


def logged_losses(run):
    return [loss for _, _, loss in logged(run)]


@pytest.mark.parametrize("model", ["cut", "fastcut", "cut-focal"])
def test_models_train_and_checkpoint_loads(dataset_dir, tmp_path, model):
    run = tmp_path / model
    assert train(dataset_dir, run, model, "--iters", "3", "--set", "train.log_every=1", *TINY_NETS) == 0
    losses = logged_losses(run)
    assert len(losses) == 3
    expected = {"D_real", "D_fake", "G_GAN", "NCE", "G"} | ({"NCE_Y"} if model.startswith("cut") else set())
    assert set(losses[0]) == expected
    assert all(math.isfinite(v) for entry in losses for v in entry.values())
    state = ckpt_io.load(run)
    assert state["progress"]["iteration"] == 3 and state["config"]["model"]["name"] == model
    assert set(state["optimizers"]) == {"G", "D", "F"} and "rng" in state
    G, cfg = load_generator(run)
    assert cfg.model.name == model
    assert G(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iteration"] == 3 and summary["params"]["G"] == sum(p.numel() for p in G.parameters())


def logged(run):
    """(iteration, learning rate, losses) of every metrics.jsonl line."""
    return [(r["iter"], r["lr"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


@pytest.mark.parametrize(
    "model, precision, workers",
    [
        ("fastcut", "fp32", (0, 0, 0, 0)),
        ("cut", "bf16", (2, 1, 2, 0)),  # loader processes of the straight run, then of each resumed piece
    ],
)
def test_exact_resume_is_bit_identical(dataset_dir, tmp_path, model, precision, workers):
    """9 iterations straight, and 2 + 3 + 4 with two resumes, give the same weights, optimizer
    states, learning rates and logged losses. 5 A images at batch 2 are 3 batches per epoch; with 1
    constant and 2 decay epochs the first resume runs across the start of the decay phase (after
    iteration 3: the first LR step, and images resized straight to the crop) and the second across
    the next LR step (after iteration 6), down to LR 0 at the end."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = [
        "--batch-size",
        "2",
        "--epochs",
        "1",
        "--epochs-decay",
        "2",
        "--precision",
        precision,
        "--set",
        "train.log_every=1",
        *TINY_NETS,
    ]
    assert train(dataset_dir, straight, model, "--iters", "9", "--num-workers", str(workers[0]), *args) == 0
    for stop, n, progress in ((2, workers[1], (0, 2)), (5, workers[2], (1, 2)), (9, workers[3], (3, 0))):
        assert train(dataset_dir, resumed, model, "--iters", str(stop), "--num-workers", str(n), *args) == 0
        assert ckpt_io.load(resumed)["progress"] == {
            "epoch": progress[0],
            "batch": progress[1],
            "iteration": stop,
            "processes": 1,
        }
    a, b = ckpt_io.load(straight), ckpt_io.load(resumed)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for name, opt in a["optimizers"].items():
        for index, state in opt["state"].items():
            for k, v in state.items():
                assert torch.equal(v, b["optimizers"][name]["state"][index][k]), (name, index, k)
    assert a["schedulers"] == b["schedulers"]
    # the reference's linear policy, by epoch after each iteration: 1 for epoch 0, then 2/3, 1/3, 0
    assert [lr for _, lr, _ in logged(straight)] == pytest.approx([2e-4 * (1 - (i // 3) / 3) for i in range(1, 10)])
    assert logged(straight) == logged(resumed)  # also: no duplicated or missing log lines
    x = torch.rand(1, 3, 40, 52) * 2 - 1
    ga, gb = load_generator(straight)[0], load_generator(resumed)[0]
    assert torch.equal(ga(x), gb(x))


def test_different_config_is_refused(dataset_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(dataset_dir, run, "cut", "--iters", "1", *TINY_NETS) == 0
    assert train(dataset_dir, run, "cut", "--iters", "2", "--set", "model.lambda_nce=2", *TINY_NETS) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "model.lambda_nce: 1.0 -> 2.0" in err
    assert ckpt_io.load(run)["progress"]["iteration"] == 1  # untouched


def test_resume_from_run_dir_alone_and_nothing_to_do(dataset_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(dataset_dir, run, "fastcut", "--iters", "2", *TINY_NETS) == 0
    assert main(["train", "--out", str(run), "--iters", "3", "--quiet", "--num-workers", "0"]) == 0
    assert ckpt_io.load(run)["progress"]["iteration"] == 3
    assert main(["train", "--out", str(run), "--iters", "3", "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().err


def test_grayscale_end_to_end(dataset_dir, tmp_path):
    run = tmp_path / "gray"
    assert train(dataset_dir, run, "cut", "--iters", "2", "--set", "data.channels=1", *TINY_NETS) == 0
    G, cfg = load_generator(run)
    assert cfg.data.channels == 1 and G(torch.zeros(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_samples_and_tensorboard_written(dataset_dir, tmp_path):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "fastcut",
                "--data",
                str(dataset_dir),
                "--out",
                str(run),
                "--size",
                "32",
                "--num-workers",
                "1",
                "--quiet",
                "--iters",
                "4",
                "--sample-every",
                "2",
                *TINY_NETS,
            ]
        )
        == 0
    )
    from PIL import Image

    names = sorted(p.name for p in (run / "samples").glob("*.png"))
    assert names == ["iter_0000002.png", "iter_0000004.png"]
    assert Image.open(run / "samples" / names[0]).size == (3 * 32, 32)  # real_A | fake_B | real_B
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_bf16_trains_finite(dataset_dir, tmp_path):
    run = tmp_path / "bf16"
    assert (
        train(
            dataset_dir,
            run,
            "cut-focal",
            "--iters",
            "2",
            "--precision",
            "bf16",
            "--set",
            "train.log_every=1",
            *TINY_NETS,
        )
        == 0
    )
    assert all(math.isfinite(v) for entry in logged_losses(run) for v in entry.values())


def test_fp16_on_cpu_is_refused_with_advice(dataset_dir, tmp_path, capsys):
    assert train(dataset_dir, tmp_path / "x", "cut", "--iters", "1", "--precision", "fp16", "--device", "cpu") == 2
    assert "bf16" in capsys.readouterr().err


def test_dry_run_json(capsys):
    assert main(["train", "--model", "fastcut-focal", "--dry-run", "--json", "--size", "64"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == {"G": 11_378_179, "D": 2_764_737, "F": 560_384}
    assert info["config"]["model"]["focal_gamma"] == 2.0 and info["config"]["data"]["load_size"] == 72


def test_missing_data_is_explained(tmp_path, capsys):
    assert main(["train", "--model", "cut", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r"), *FAST]) == 2
    assert "trainA" in capsys.readouterr().err


def test_ctrl_c_saves_and_resumes(dataset_dir, tmp_path):
    """Ctrl-C saves and stops; the same command resumes, and the result is the uninterrupted run's:
    the same weights, optimizer states and logged losses."""
    total = 40

    def command(run):
        return [
            sys.executable,
            "-m",
            "unpaired",
            "train",
            "--model",
            "fastcut",
            "--data",
            str(dataset_dir),
            "--out",
            str(run),
            *FAST,
            "--num-workers",
            "1",
            "--iters",
            str(total),
            "--set",
            "train.log_every=1",
            *TINY_NETS,
        ]

    run, straight = tmp_path / "run", tmp_path / "straight"
    # its own process group, signalled as a whole like a terminal's Ctrl-C (loader worker included)
    proc = subprocess.Popen(
        command(run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < 3:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    it = ckpt_io.load(run)["progress"]["iteration"]
    assert 3 <= it < total and f"stopped at iteration {it}" in out
    # the same command resumes (in a process of the same thread count as the uninterrupted run's)
    for folder in (run, straight):
        res = subprocess.run(command(folder), capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-2000:]
    a, b = ckpt_io.load(straight), ckpt_io.load(run)
    assert a["progress"] == b["progress"] and a["progress"]["iteration"] == total
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for name, opt in a["optimizers"].items():
        for index, state in opt["state"].items():
            for k, v in state.items():
                assert torch.equal(v, b["optimizers"][name]["state"][index][k]), (name, index, k)
    assert logged(straight) == logged(run)  # every iteration logged once, with the same losses
