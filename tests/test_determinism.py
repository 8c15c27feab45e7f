"""The same command gives the same weights in every process (CPU); train.deterministic reaches PyTorch."""

import hashlib
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, TINY_NETS

import unpaired
from unpaired import devices
from unpaired.nets.padding import reflect_pad_by_concat


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
            res = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "unpaired",
                    "train",
                    "--model",
                    "cut",
                    "--data",
                    str(dataset_dir),
                    "--out",
                    str(run),
                    "--size",
                    "32",
                    "--num-workers",
                    "0",
                    "--device",
                    "cpu",
                    "--iters",
                    "3",
                    "--quiet",
                    "--sample-every",
                    "0",
                    *TINY_NETS,
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": hashseed},
                timeout=300,
            )
        finally:
            if burner is not None:
                burner.kill()
        assert res.returncode == 0, res.stderr[-2000:]
        hashes.add(weights_hash(run))
    assert len(hashes) == 1


class TorchSettings(unpaired.Callback):
    """What the training step runs under: PyTorch's determinism settings at the start of fit()."""

    def on_fit_start(self, trainer):
        self.seen = (
            torch.are_deterministic_algorithms_enabled(),
            torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic,
            os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        )


def test_deterministic_flag_reaches_torch_and_changes_nothing_on_cpu(dataset_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")  # records the original, restored afterwards
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)  # as a CUDA run before it would leave it
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    runs, seen = {}, {}
    try:
        for flag in (False, True):
            cfg = unpaired.preset(
                "cut",
                root=str(dataset_dir),
                crop_size=32,
                num_workers=0,
                iters=2,
                sample_every=0,
                device="cpu",
                deterministic=flag,
                **TINY,
            )
            settings = TorchSettings()
            runs[flag] = tmp_path / f"deterministic_{flag}"
            unpaired.Trainer(cfg, runs[flag], callbacks=[settings], show_progress=False).fit()
            seen[flag] = settings.seen
    finally:
        torch.use_deterministic_algorithms(False)
    assert seen[False][0] is False
    assert seen[True] == (True, False, True, ":4096:8")
    assert weights_hash(runs[True]) == weights_hash(runs[False])  # the CPU kernels are deterministic already


@pytest.mark.parametrize("padding", [(3, 3, 3, 3), (1, 2, 0, 1)])
def test_reflect_pad_by_concat_equals_reflection_padding(padding):
    """The deterministic-mode padding (used on CUDA) gives F.pad's values and gradients."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 7, requires_grad=True)
    g = torch.randn(2, 3, 6 + padding[2] + padding[3], 7 + padding[0] + padding[1])
    want = F.pad(x, padding, "reflect")
    (grad_want,) = torch.autograd.grad(want, x, g)
    got = reflect_pad_by_concat(x, padding)
    (grad_got,) = torch.autograd.grad(got, x, g)
    assert torch.equal(got, want)
    torch.testing.assert_close(grad_got, grad_want)  # the border sums are added in another order
