"""One training step of ours computes what one step of the official CUT code computes.

tests/fixtures/official_step/ holds what the official code (taesungp/contrastive-unpaired-translation)
did from given initial weights on given batches, with its random draws (patch locations, FastCUT's
flip): its losses and weight updates after 1 and 3 steps, computed in float64 so that float rounding
does not hide a difference (its README says how it was made). Our step replays it here, with the
same draws handed to ``train_step``, and must agree to rounding: no official checkout needed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from conftest import TINY

import unpaired
from unpaired.amp import Precision
from unpaired.methods import build_model
from unpaired.training.step import TrainStep

FIXTURE = Path(__file__).parent / "fixtures" / "official_step" / "official_step.pt"
NETS = ("G", "D", "F")


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


def tiny_like(s: dict) -> dict:
    """Our settings for the fixture's official options."""
    return {
        "data.batch_size": s["batch_size"],
        "model.ngf": s["ngf"],
        "model.ndf": s["ndf"],
        "model.n_blocks": s["n_blocks"],
        "model.num_patches": s["num_patches"],
        "model.projector_dim": s["nc"],
    }


def unflat(vector: torch.Tensor, net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A fixture's vector (a network's tensors, concatenated in named_parameters order) as tensors."""
    out, at = {}, 0
    for k, p in net.named_parameters():
        out[k] = vector[at : at + p.numel()].reshape(p.shape).double()
        at += p.numel()
    assert at == vector.numel()
    return out


def replay(fx: dict, mode: str):
    """Our model from the fixture's initial weights, stepped in float64 with the official draws:
    (losses per step, {steps: {net: {name: update}}})."""
    s = fx["settings"]
    cfg = unpaired.preset(mode.lower(), crop_size=s["size"], **tiny_like(s))
    with default_dtype(torch.float64):
        model = build_model(cfg).double()
        for n in NETS:
            net = getattr(model, n)
            assert [k for k, _ in net.named_parameters()] == fx["names"][n]  # the official names, in order
            missing, unexpected = net.load_state_dict(unflat(fx["initial"][n], net), strict=False)
            assert not unexpected and all(k.endswith("filt") for k in missing)
        start = {n: {k: v.detach().clone() for k, v in getattr(model, n).named_parameters()} for n in NETS}
        optimizers = model.make_optimizers(s["lr"], (0.5, 0.999), s["adam_eps"])
        step = TrainStep(model, optimizers, Precision("fp32", torch.device("cpu")))
        losses, updates = [], {}
        for i, pixels in enumerate(fx["pixels"]):
            batch = {k: v.double() / 127.5 - 1 for k, v in pixels.items()}
            out = step(batch, flipped=fx[mode]["flips"][i], patch_ids=fx[mode]["patch_ids"][i]).losses
            losses.append({k: v.item() for k, v in out.items()})
            if i + 1 in fx[mode]["updates"]:
                updates[i + 1] = {
                    n: {k: v.detach() - start[n][k] for k, v in getattr(model, n).named_parameters()} for n in NETS
                }
    return losses, updates


@pytest.fixture(scope="module")
def fx() -> dict:
    return torch.load(FIXTURE, weights_only=True)


@pytest.mark.parametrize("mode", ["CUT", "FastCUT"])
def test_our_step_computes_the_official_step(fx, mode):
    losses, updates = replay(fx, mode)
    official = fx[mode]
    probe = build_model(unpaired.preset("cut", crop_size=fx["settings"]["size"], **tiny_like(fx["settings"])))
    initial = {n: unflat(fx["initial"][n], getattr(probe, n)) for n in NETS}
    assert official["flips"] == ([True, False, True] if mode == "FastCUT" else [False] * 3)
    for i, (mine, theirs) in enumerate(zip(losses, official["losses"], strict=True), 1):
        assert set(theirs) <= set(mine)
        for k, v in theirs.items():  # the official float64 losses, to float64 rounding
            assert mine[k] == pytest.approx(v, rel=1e-9), f"step {i}, loss {k}"
    assert sorted(updates) == [1, 3]
    for k, nets in official["updates"].items():
        for n in NETS:
            null = set(fx["biases_before_instance_norm"][n])
            theirs_all = unflat(nets[n], getattr(probe, n))
            assert set(theirs_all) == set(updates[k][n])
            for p, theirs in theirs_all.items():
                mine = updates[k][n][p]
                if p in null:
                    # a conv bias that instance norm subtracts again: its gradient is 0 in exact
                    # arithmetic; float64 rounding moves it by < 2e-6 (1% of lr 2e-4) in both, a gradient by ~lr
                    assert mine.abs().max() < 2e-6 and theirs.abs().max() < 2e-6, (k, n, p)
                    continue
                # every update (w after - w before, stored in float32: 7 digits) ...
                assert relative(mine, theirs) < 1e-5, (k, n, p, relative(mine, theirs))
                # ... and so every weight (the criterion)
                before = initial[n][p]
                assert relative(before + mine, before + theirs) < 1e-5, (k, n, p)


def test_given_draws_replace_the_random_ones():
    """train_step(flipped=, patch_ids=) makes a step independent of the random state; bad ids are refused."""
    cfg = unpaired.preset("fastcut", crop_size=32, **TINY)
    torch.manual_seed(0)
    model = build_model(cfg)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    batch = {k: torch.rand(1, 3, 32, 32) * 2 - 1 for k in "AB"}
    sizes = [38 * 38, 32 * 32, 16 * 16, 8 * 8]  # the NCE layers' locations at 32 px
    ids = {"NCE": [torch.randperm(s)[:16] for s in sizes]}

    def run(seed, **draws):
        model.load_state_dict(init)
        step = TrainStep(model, model.make_optimizers(2e-4, (0.5, 0.999)), Precision("fp32", torch.device("cpu")))
        torch.manual_seed(seed)
        return {k: v.item() for k, v in step(batch, **draws).losses.items()}

    given = run(1, flipped=True, patch_ids=ids)
    assert run(2, flipped=True, patch_ids=ids) == given
    assert run(1, flipped=False, patch_ids=ids)["NCE"] != given["NCE"]  # the flip is the one given
    other = {"NCE": [torch.randperm(s)[:16] for s in sizes]}
    assert run(1, flipped=True, patch_ids=other)["NCE"] != given["NCE"]  # and so are the locations
    assert run(1) != run(2)  # without them, the draws depend on the random state
    with pytest.raises(ValueError, match="one per NCE layer"):
        run(1, patch_ids={"NCE": ids["NCE"][:2]})
    with pytest.raises(ValueError, match="NCE"):
        run(1, patch_ids={"NCE_Y": ids["NCE"]})
