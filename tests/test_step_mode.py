"""--compile: which step auto chooses, which networks a compiled step compiles, and the reasons it logs."""

import torch

import unpaired
from unpaired.amp import Precision
from unpaired.methods import build_model
from unpaired.training.step import build_step, choose_mode, compile_networks


def test_auto_is_eager_without_a_measurement_and_says_why():
    for device in ("cpu", "cuda"):
        mode, why = choose_mode("auto", torch.device(device))
        assert mode == "off"
        assert why.startswith(f"auto on {device}:") and len(why) > 40
    assert "gpu_check" in choose_mode("auto", torch.device("cuda"))[1]
    assert choose_mode("compile", torch.device("cpu")) == ("compile", "asked for")


def test_compile_leaves_a_network_differentiated_twice_eager_and_says_so():
    """SinCUT's R1 differentiates D's gradient, which torch.compile cannot do: D stays eager, G is
    compiled (before, the whole compiled step failed on its first call and fell back to eager)."""
    for name, eager in (("sincut", ["D"]), ("cut", [])):
        cfg = unpaired.preset(name, crop_size=32, **{"model.ngf": 4, "model.ndf": 4, "model.d_tile_size": 16})
        model = build_model(cfg)
        lines = []
        step = build_step(
            model,
            model.make_optimizers(2e-4, (0.5, 0.999)),
            Precision("fp32", torch.device("cpu")),
            "compile",
            log=lines.append,
        )
        assert step.name == "compile" and step.compiled == [n for n in ("G", "D") if n not in eager]
        assert ("forward" in model.D.__dict__) == (not eager)  # the instance's forward is the compiled one
        assert "forward_with_features" in model.G.__dict__
        assert ("D stays eager (R1 differentiates its gradient" in lines[0]) == bool(eager), lines


def test_compiled_networks_run_compiled_in_training_mode_only(monkeypatch):
    """Samples and validation (eval mode) call the networks' own forward: their many image and tile
    sizes would each be a recompilation."""
    calls = []

    def recording_compile(fn, **options):
        def compiled(*args, **kwargs):
            calls.append(fn.__name__)
            return fn(*args, **kwargs)

        return compiled

    monkeypatch.setattr(torch, "compile", recording_compile)
    model = build_model(unpaired.preset("cut", crop_size=32, **{"model.ngf": 4, "model.ndf": 4}))
    assert compile_networks(model) == (["G", "D"], {})
    x = torch.rand(1, 3, 32, 32)
    model.train()
    model.G(x), model.D(x), model.G.encode(x, [0, 4])
    assert calls == ["forward", "forward", "encode"]
    calls.clear()
    model.eval()
    model.G(x), model.D(x), model.G.encode(x, [0, 4])
    assert calls == []
