"""`unpaired profile`: speed, images/s, steady-state and one-off memory, FLOPs, peak fraction.

Sizes are tiny and nothing here checks a timing (the machine may be shared): only that the figures
exist, are consistent with each other, and that the FLOP counter agrees with counts made by hand.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_NETS

from unpaired.cli import main
from unpaired.methods import method_names
from unpaired.training import memory
from unpaired.training import profile as prof

TINY = {  # small networks per family; the exact architecture is not what is tested here
    "cut": ["--set", "model.ngf=8", "--set", "model.ndf=8", *TINY_NETS[4:]],
    "cyclegan": ["--set", "model.ngf=8", "--set", "model.ndf=8", "--set", "model.n_blocks=2"],
    "sincut": ["--set", "model.ngf=4", "--set", "model.ndf=4", "--set", "model.d_tile_size=16"],
}
MODELS = ["cut", "fastcut", "cut-focal", "fastcut-focal", "sincut", "sincut-focal", "cyclegan"]


def run_profile(capsys, model: str, *extra: str, rc: int = 0) -> dict:
    family = "sincut" if model.startswith("sincut") else "cyclegan" if model == "cyclegan" else "cut"
    assert (
        main(
            [
                "profile",
                "--model",
                model,
                "--size",
                "32",
                "--batch-size",
                "2",
                "--iters",
                "2",
                "--warmup",
                "1",
                "--device",
                "cpu",
                "--json",
                *TINY[family],
                *extra,
            ]
        )
        == rc
    )
    return json.loads(capsys.readouterr().out) if rc == 0 else {}


def test_every_method_is_profiled():
    assert sorted(MODELS) == sorted(method_names())


@pytest.mark.parametrize("model", MODELS)
def test_every_model_profiles_at_batch_2_with_consistent_figures(capsys, model):
    r = run_profile(capsys, model)
    assert (r["model"], r["batch_size"], r["size"], r["step"], r["compile"]) == (model, 2, 32, "eager", "auto")
    assert r["sec_per_iter"] > 0 and r["images_per_sec"] == pytest.approx(2 / r["sec_per_iter"])
    # CPU: steady = largest current RSS after a timed iteration; one-off = the process's peak RSS
    assert r["memory_kind"] == "max process RSS after each timed iteration"
    assert 0 < r["peak_memory_bytes"] <= r["peak_memory_oneoff_bytes"]
    assert r["peak_memory_reserved_bytes"] is None
    assert r["flops"] > 0 and r["flops_counted_on"] == "eager step"
    assert r["tflops_per_sec"] == pytest.approx(r["flops"] / r["sec_per_iter"] / 1e12)
    # on the CPU no peak is assumed: no fraction unless --peak-tflops is given
    assert r["peak_tflops"] is None and r["peak_fraction"] is None and r["peak_tflops_dtype"] == "fp32"


def test_peak_tflops_flag_compile_flag_and_human_line(capsys):
    r = run_profile(capsys, "fastcut", "--peak-tflops", "0.5", "--compile", "off")
    assert r["compile"] == "off" and r["peak_tflops"] == 0.5 and r["peak_tflops_source"] == "--peak-tflops"
    assert r["peak_fraction"] == pytest.approx(r["tflops_per_sec"] / 0.5)
    family = TINY["cut"]
    assert (
        main(
            [
                "profile",
                "--model",
                "fastcut",
                "--size",
                "32",
                "--batch-size",
                "2",
                "--iters",
                "1",
                "--warmup",
                "1",
                "--device",
                "cpu",
                "--peak-tflops",
                "0.5",
                *family,
            ]
        )
        == 0
    )
    line = capsys.readouterr().out
    for part in ("s/iter", "images/s", "steady", "one-off", "GFLOP/iter", "TFLOP/s", "% of 0.5 TFLOP/s"):
        assert part in line, (part, line)
    assert (
        main(
            [
                "profile",
                "--model",
                "fastcut",
                "--size",
                "32",
                "--iters",
                "1",
                "--warmup",
                "0",
                "--device",
                "cpu",
                "--no-flops",
                "--json",
                *family,
            ]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)
    assert r["flops"] is None and r["tflops_per_sec"] is None


def test_compile_flag_is_validated(capsys):
    with pytest.raises(SystemExit) as e:
        main(["profile", "--model", "cut", "--compile", "fast"])
    assert e.value.code == 2  # argparse's usage error, not a crash or a success
    err = capsys.readouterr().err
    assert "--compile" in err and "'fast'" in err and "choose from" in err


def test_flop_counter_matches_a_count_by_hand():
    B, Cin, Cout, k, H = 2, 3, 5, 3, 17
    conv = torch.nn.Conv2d(Cin, Cout, k, stride=2, padding=1)
    x = torch.rand(B, Cin, H, H, requires_grad=True)
    Hout = (H + 2 * 1 - k) // 2 + 1
    forward = 2 * Cin * Cout * k * k * Hout * Hout * B
    assert conv(x).shape[-1] == Hout == 9
    assert prof.count_flops(lambda: conv(x)) == forward
    # backward: the input gradient and the weight gradient each cost one forward
    assert prof.count_flops(lambda: conv(x).sum().backward()) == 3 * forward
    lin = torch.nn.Linear(7, 4)
    assert prof.count_flops(lambda: lin(torch.rand(6, 7))) == 2 * 6 * 7 * 4


def test_generator_forward_flops_equal_the_sum_over_its_convolutions():
    """The counter against per-layer counts made with forward hooks on a whole (tiny) ResNet G,
    including the anti-aliasing blurs (depthwise convolutions with fixed filters)."""
    from unpaired.nets import ResnetGenerator
    from unpaired.nets.blurpool import Downsample, Upsample

    G = ResnetGenerator(3, 3, ngf=4, n_blocks=2)
    by_hand = []

    def conv_hook(m, inp, out):  # 2 * B * Cout * Hout * Wout * Cin/groups * k * k
        by_hand.append(2 * out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])

    def blur_hook(m, inp, out):
        x = inp[0]
        if isinstance(m, Downsample):  # depthwise 3x3, stride 2: per output pixel and channel
            by_hand.append(2 * out.numel() * m.filt.shape[-1] ** 2)
        else:  # depthwise 4x4 transposed: each pixel of the 1-padded input scatters a 4x4 filter
            n = x.shape[0] * x.shape[1] * (x.shape[2] + 2) * (x.shape[3] + 2)
            by_hand.append(2 * n * m.filt.shape[-1] ** 2)

    for m in G.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, (Downsample, Upsample)):
            m.register_forward_hook(blur_hook)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        G(x)
        total = sum(by_hand)
        assert prof.count_flops(lambda: G(x)) == total > 0


def test_peak_table_and_dtype():
    assert prof.table_peak_tflops("NVIDIA H200", "bf16") == (989.0, "H200")
    assert prof.table_peak_tflops("NVIDIA H100 80GB HBM3", "tf32") == (495.0, "H100")
    assert prof.table_peak_tflops("NVIDIA H100 PCIe", "bf16") == (756.0, "H100 PCIe")
    assert prof.table_peak_tflops("NVIDIA A100-SXM4-80GB", "fp32") == (19.5, "A100")
    assert prof.table_peak_tflops("NVIDIA GeForce RTX 3060", "fp32") is None
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [prof.peak_dtype(p, cpu) for p in ("fp32", "bf16")] == ["fp32", "bf16"]
    assert prof.peak_dtype("fp16", cuda) == "fp16"
    assert prof.peak_dtype("fp32", cuda) == ("tf32" if torch.backends.cudnn.allow_tf32 else "fp32")


class FakeAllocator:
    """torch.cuda's peak statistics, driven by hand."""

    def __init__(self):
        self.now = self.peak = self.reserved = 0

    def alloc(self, n):
        self.now += n
        self.peak = max(self.peak, self.now)
        self.reserved = max(self.reserved, self.now + 100)

    def reset(self, device=None):
        self.peak, self.reserved = self.now, self.now


def test_memory_meter_bookkeeping_on_cuda(monkeypatch):
    """Steady = largest peak of a sampled iteration after start_steady; one-off includes warm-up."""
    fake = FakeAllocator()
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: fake.peak)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: fake.reserved)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", fake.reset)
    meter = prof.MemoryMeter(torch.device("cuda"))
    fake.alloc(10)  # weights
    fake.alloc(90)
    fake.alloc(-90)  # warm-up iteration: algorithm search, first allocations
    meter.sample()
    meter.start_steady()
    for _ in range(3):
        fake.alloc(40)
        fake.alloc(-40)  # a training iteration
        meter.sample()
    fake.alloc(500)
    fake.alloc(-500)  # validation: kept out of the steady figure
    meter.skip()
    fake.alloc(45)
    fake.alloc(-45)
    meter.sample()
    assert meter.steady_bytes() == 55 and meter.oneoff_bytes() == 510 and meter.reserved_bytes() == 610
    assert prof.MemoryMeter(torch.device("cuda")).steady_bytes() is None


def test_memory_meter_on_cpu_reads_the_current_rss():
    meter = memory.MemoryMeter(torch.device("cpu"))
    meter.sample()
    assert meter.steady_bytes() is None
    meter.start_steady()
    keep = torch.ones(64, 2**20, dtype=torch.uint8)  # 64 MiB touched
    meter.sample()
    rss = memory.current_rss_bytes()
    assert rss is not None and meter.steady_bytes() >= 64 * 2**20 and keep.sum() > 0
    assert meter.steady_bytes() <= meter.oneoff_bytes() and meter.reserved_bytes() is None


def test_a_timed_iteration_that_compiles_is_run_again(capsys, monkeypatch):
    """A timed iteration during which torch.compile compiled a graph (a path the warm-up missed)
    is not timed: it runs again, and the note and recompiled_iters say so; a step that compiles
    every time is refused. The graph counter is scripted: (before, after) of each iteration."""
    readings = iter([0, 5, 5, 5, 5, 6, 6, 6])  # warm-up compiles; the 2nd timed iteration compiles
    monkeypatch.setattr(prof, "compiled_graphs", lambda: next(readings))
    r = run_profile(capsys, "cut", "--no-flops")
    assert (r["iters"], r["recompiled_iters"]) == (2, 1)
    assert any("1 timed iteration(s) compiled new code" in n and "run again" in n for n in r["step_notes"])
    timed = iter(range(100))  # every reading higher than the last: every iteration compiles
    monkeypatch.setattr(prof, "compiled_graphs", lambda: next(timed))
    run_profile(capsys, "cut", "--no-flops", rc=2)
    assert "error: every timed iteration compiled new code (4 of them)" in capsys.readouterr().err
    assert next(timed) == 2 * (1 + 2 * 2)  # warm-up 1 and at most 2 x iters timed: (before, after) each
