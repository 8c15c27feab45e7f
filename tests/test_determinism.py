"""The same command gives the same weights in every process (CPU)."""
import hashlib
import os
import subprocess
import sys

import torch

from unpaired import devices

from conftest import TINY_NETS


def test_vector_math_is_settled_before_the_first_parallel_op(monkeypatch):
    """MKL's VML picks its kernels at its first call without a lock (see devices.settle_vector_math):
    every command must make one serial call first. Here: it happens in select_device, on a tensor too
    small to be split across threads."""
    calls = []
    real_tanh = torch.tanh
    monkeypatch.setattr(torch, "tanh", lambda x, *a, **k: calls.append(x.numel()) or real_tanh(x, *a, **k))
    devices.select_device("cpu")
    assert calls == [1]


def weights_hash(run):
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["model"]
    h = hashlib.sha256()
    for k in sorted(state):
        if torch.is_tensor(state[k]):
            h.update(k.encode() + state[k].numpy().tobytes())
    return h.hexdigest()


def test_same_command_same_weights_in_every_process(dataset_dir, tmp_path):
    """Four launches of one command, with different hash seeds, two of them beside a CPU burner."""
    hashes = set()
    for i, (hashseed, busy) in enumerate([("0", False), ("1", True), ("2", True), ("random", False)]):
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            run = tmp_path / f"run{i}"
            res = subprocess.run([sys.executable, "-m", "unpaired", "train", "--model", "cut", "--data",
                                  str(dataset_dir), "--out", str(run), "--size", "32", "--num-workers", "0",
                                  "--device", "cpu", "--iters", "3", "--quiet", "--sample-every", "0", *TINY_NETS],
                                 capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": hashseed},
                                 timeout=300)
        finally:
            if burner is not None:
                burner.kill()
        assert res.returncode == 0, res.stderr[-2000:]
        hashes.add(weights_hash(run))
    assert len(hashes) == 1
