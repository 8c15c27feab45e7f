"""Does one training step of ours compute what one step of the official CUT code computes?

Builds the official CUT / FastCUT model from a checkout of taesungp/contrastive-unpaired-translation
(imported at run time, never copied; see benchmarks/official_cut.py) and ours with the same
architecture, copies the official initial weights into ours (F after the official
data-dependent initialisation), then runs the same steps on the same batches with the same random
draws: the official code's patch locations (np.random.permutation, recorded as it draws them) and
FastCUT's flip (np.random.random, scripted: flip, no flip, flip, ...) are handed to our
``train_step(..., flipped=, patch_ids=)``. Prints, per step, the relative difference of every loss
and, after 1 and ``--steps`` steps, per network the largest relative difference of a weight tensor
(max |ours - official| / max |official|) and of its update (max |dW_ours - dW_official| /
max |dW_official|), naming the worst tensor::

    .venv/bin/python benchmarks/official_step_equality.py                  # fp32, CUT and FastCUT
    .venv/bin/python benchmarks/official_step_equality.py --dtype fp64     # rounding-free view
    .venv/bin/python benchmarks/official_step_equality.py --fp64-reference # each fp32 step vs fp64
    .venv/bin/python benchmarks/official_step_equality.py --ngf 64 --ndf 64 --n-blocks 9 --size 64

``--write-fixture DIR`` also saves what the official code did (initial weights, batches, draws,
losses and weights after 1 and ``--steps`` steps) for tests/test_official_step.py, which replays
it without a checkout (tests/fixtures/official_step/README.md says how the fixture was made).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from official_cut import DEFAULT_CHECKOUT, _stub_torchvision

import unpaired
from unpaired.amp import Precision
from unpaired.methods import build_model
from unpaired.training.step import TrainStep

NETS = ("G", "D", "F")


def official_model(mode: str, a: argparse.Namespace, checkout: Path, workdir: str):
    """The official CUTModel (``mode``: CUT or FastCUT), built as its train.py builds it, on the CPU."""
    if not (checkout / "models" / "cut_model.py").is_file():
        raise SystemExit(f"no official CUT checkout in {checkout} (see benchmarks/official_cut.py)")
    _stub_torchvision()
    sys.path.insert(0, str(checkout))
    try:
        from models import create_model  # noqa: PLC0415 - the official package, from the checkout
        from options.train_options import TrainOptions  # noqa: PLC0415 - idem
    finally:
        sys.path.remove(str(checkout))
    args = (
        f"--dataroot unused --name stepeq_{mode} --model cut --CUT_mode {mode} --gpu_ids -1 "
        f"--load_size {a.size} --crop_size {a.size} --batch_size {a.batch_size} --ngf {a.ngf} --ndf {a.ndf} "
        f"--netF_nc {a.nc} --num_patches {a.num_patches} --checkpoints_dir {workdir}"
    )
    old_argv, sys.argv = sys.argv, ["train.py", *args.split()]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            opt = TrainOptions().parse()
    finally:
        sys.argv = old_argv
    opt.netG = f"resnet_{a.n_blocks}blocks"  # define_G knows 4, 6 and 9 (the option parser lists 6 and 9)
    opt.isTrain = True
    return create_model(opt), opt


def make_pixels(a: argparse.Namespace) -> list[dict[str, torch.Tensor]]:
    """8-bit images, as a data loader reads them (and small to store)."""
    g = torch.Generator().manual_seed(a.seed)
    shape = (a.batch_size, 3, a.size, a.size)
    return [{k: torch.randint(0, 256, shape, generator=g, dtype=torch.uint8) for k in "AB"} for _ in range(a.steps)]


def to_batch(pixels: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """uint8 images to [-1, 1] (x / 127.5 - 1, exact in float32 and float64)."""
    return {k: v.to(dtype) / 127.5 - 1 for k, v in pixels.items()}


def params(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def run_official(mode: str, a, batches, initial, flips, checkout: Path, workdir: str) -> dict:
    """Initialise the official model (data-dependent F), load ``initial`` weights if given, run the
    steps; returns its initial weights, draws, losses and weights after 1 and all steps."""
    net, opt = official_model(mode, a, checkout, workdir)
    with contextlib.redirect_stdout(io.StringIO()):
        net.data_dependent_initialize({**batches[0], "A_paths": ["a"], "B_paths": ["b"]})
        net.setup(opt)
    nets = {n: getattr(net, "net" + n) for n in NETS}
    if initial is None:  # the first mode's initial weights, rounded to float32 (storable exactly)
        initial = {n: {k: v.float() for k, v in params(nets[n]).items()} for n in NETS}
    for n in NETS:  # the same starting point for every mode
        nets[n].load_state_dict(initial[n], strict=False)  # parameters only: buffers are constants
        for group in getattr(net, "optimizer_" + n).param_groups:
            group["eps"] = a.adam_eps
    start = {n: params(nets[n]) for n in NETS}

    drawn: list[list[torch.Tensor]] = []
    forward = net.netF.forward

    def recording_forward(feats, num_patches=64, patch_ids=None):
        out, ids = forward(feats, num_patches, patch_ids)
        if patch_ids is None:  # a key pass: the locations the official code drew with numpy
            drawn.append([torch.as_tensor(i).clone() for i in ids])
        return out, ids

    net.netF.forward = recording_forward
    result = {"initial": start, "patch_ids": [], "losses": [], "after": {}}
    for i, batch in enumerate(batches):
        drawn.clear()
        uniform = 0.0 if flips[i] else 0.99  # forward(): flipped = np.random.random() < 0.5
        with mock.patch.object(np.random, "random", return_value=uniform):
            net.set_input({**batch, "A_paths": ["a"], "B_paths": ["b"]})
            net.optimize_parameters()
        terms = ["NCE", "NCE_Y"] if opt.nce_idt else ["NCE"]
        assert len(drawn) == len(terms), f"expected {len(terms)} PatchNCE key passes, saw {len(drawn)}"
        result["patch_ids"].append(dict(zip(terms, drawn)))
        result["losses"].append({k: float(torch.as_tensor(getattr(net, "loss_" + k)).detach()) for k in net.loss_names})
        if i + 1 in (1, len(batches)):
            result["after"][i + 1] = {n: params(nets[n]) for n in NETS}
    result["flips"] = [bool(f) and opt.flip_equivariance for f in flips]
    return result


def our_cfg(mode: str, a):
    return unpaired.preset(
        mode.lower(),
        crop_size=a.size,
        **{
            "data.batch_size": a.batch_size,
            "model.ngf": a.ngf,
            "model.ndf": a.ndf,
            "model.n_blocks": a.n_blocks,
            "model.num_patches": a.num_patches,
            "model.projector_dim": a.nc,
        },
    )


def run_ours(mode: str, a, batches, official: dict) -> dict:
    """Our model from the official initial weights, stepped with the official draws."""
    model = build_model(our_cfg(mode, a)).to(batches[0]["A"].dtype)
    for n in NETS:
        missing, unexpected = getattr(model, n).load_state_dict(official["initial"][n], strict=False)
        assert not unexpected and all(k.endswith("filt") for k in missing), (n, missing, unexpected)
    optimizers = model.make_optimizers(a.lr, (0.5, 0.999), a.adam_eps)
    step = TrainStep(model, optimizers, Precision("fp32", torch.device("cpu")))
    out = {"losses": [], "after": {}}
    for i, batch in enumerate(batches):
        losses = step(batch, flipped=official["flips"][i], patch_ids=official["patch_ids"][i]).losses
        out["losses"].append({k: float(v) for k, v in losses.items()})
        if i + 1 in official["after"]:
            out["after"][i + 1] = {n: params(getattr(model, n)) for n in NETS}
    return out


def biases_before_instance_norm(net: torch.nn.Module) -> set[str]:
    """Names of the conv biases that feed an instance norm: it subtracts them again, so their
    gradient is 0 in exact arithmetic and float rounding alone moves them (Adam's first steps
    turn any nonzero gradient into +-lr, whatever its size). Both implementations have them."""
    names = set()
    for prefix, module in net.named_modules():
        if isinstance(module, torch.nn.Sequential):
            for i, (m, nxt) in enumerate(zip(module, list(module)[1:])):
                if isinstance(m, torch.nn.Conv2d) and m.bias is not None and isinstance(nxt, torch.nn.InstanceNorm2d):
                    names.add(f"{prefix}.{i}.bias" if prefix else f"{i}.bias")
    return names


def flat(tensors: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    """The tensors ``names`` as one float32 vector."""
    return torch.cat([tensors[k].detach().reshape(-1) for k in names]).float()


def as_float64(run: dict) -> dict:
    after = {k: {n: {p: t.double() for p, t in ws[n].items()} for n in ws} for k, ws in run["after"].items()}
    return {"losses": run["losses"], "after": after}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (0 when both are 0; inf when either has a NaN, so that max() shows it)."""
    if not (a.isfinite().all() and b.isfinite().all()):
        return float("inf")
    scale = b.abs().max().item()
    diff = (a - b).abs().max().item()
    return diff / scale if scale > 0 else diff


def compare(official: dict, ours: dict, null: dict[str, set[str]]) -> dict:
    """Largest relative differences: per step of the losses; per network of the weights and of
    their updates, over all tensors but the ``null`` ones (biases before instance norm), of which
    the largest absolute value in each implementation is given instead."""
    report = {"losses": [], "weights": {}}
    for off, mine in zip(official["losses"], ours["losses"]):
        report["losses"].append(
            {
                k: abs(mine[k] - v) / max(abs(v), 1e-12) if math.isfinite(mine[k] - v) else math.inf
                for k, v in off.items()
            }
        )
    for k, nets in official["after"].items():
        for n in NETS:
            start, mine = official["initial"][n], ours["after"][k][n]
            rest = [p for p in nets[n] if p not in null[n]]
            w = max((relative(mine[p], nets[n][p]), p) for p in rest)
            upd = max((relative(mine[p] - start[p], nets[n][p] - start[p]), p) for p in rest)
            moved = [
                max((t[p] - start[p]).abs().max().item() for p in null[n]) if null[n] else 0.0 for t in (nets[n], mine)
            ]
            report["weights"][(k, n)] = (w, upd, moved)
    return report


def print_report(mode: str, official: dict, report: dict) -> None:
    print(f"{mode}: flips {official['flips']}")
    for i, (losses, values) in enumerate(zip(report["losses"], official["losses"]), 1):
        worst = max(losses.values())
        detail = ", ".join(f"{k} {values[k]:.5g} ({d:.1e})" for k, d in losses.items())
        print(f"  step {i} losses, max rel diff {worst:.1e}: {detail}")
    for (k, n), ((w, wp), (u, up), moved) in report["weights"].items():
        print(
            f"  after {k} step(s) {n}: weights {w:.1e} ({wp}), updates {u:.1e} ({up}); "
            f"biases before IN moved by at most {moved[0]:.1e} (official), {moved[1]:.1e} (ours)"
        )


def composite_instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
                            use_input_stats=True, momentum=0.1, eps=1e-5):  # fmt: skip
    """torch.nn.functional.instance_norm for the models here (statistics of the input, no running
    ones), in elementary autograd operations: no fused backward kernel involved."""
    dims = tuple(range(2, x.dim()))
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True, unbiased=False)
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        shape = (1, -1) + (1,) * len(dims)
        y = y * weight.view(shape) + bias.view(shape)
    return y


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkout", type=Path, default=DEFAULT_CHECKOUT)
    p.add_argument("--modes", nargs="+", default=["CUT", "FastCUT"])
    p.add_argument("--dtype", choices=["fp32", "fp64"], default="fp32")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--ngf", type=int, default=8)
    p.add_argument("--ndf", type=int, default=8)
    p.add_argument("--n-blocks", type=int, default=4, choices=[4, 6, 9])
    p.add_argument("--nc", type=int, default=32, help="width of F (netF_nc / model.projector_dim)")
    p.add_argument("--num-patches", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument(
        "--adam-eps",
        type=float,
        default=1e-8,
        help="Adam's epsilon in both (1e-8 as the official code; 1 makes the update linear in the gradient)",
    )
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fp64-reference",
        action="store_true",
        help="fp32: also compare each implementation's step with the float64 step (float32 rounding's size)",
    )
    p.add_argument(
        "--composite-instance-norm",
        action="store_true",
        help="both implementations normalise with a composite instance norm (mean/var in autograd) instead "
        "of torch's fused kernel: tells a difference caused by that kernel's backward from one in the step",
    )
    p.add_argument("--write-fixture", type=Path, metavar="DIR")
    a = p.parse_args()
    if a.composite_instance_norm:
        torch.nn.functional.instance_norm = composite_instance_norm  # nn.InstanceNorm2d calls F.instance_norm
    dtype = {"fp32": torch.float32, "fp64": torch.float64}[a.dtype]
    torch.set_default_dtype(dtype)  # both implementations build their weights and constants in it
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    pixels = make_pixels(a)
    batches = [to_batch(p, dtype) for p in pixels]
    flips = [i % 2 == 0 for i in range(a.steps)]  # flip, no flip, flip, ...
    print(
        f"{a.dtype}, {a.size} px, batch {a.batch_size}, ngf {a.ngf}, ndf {a.ndf}, {a.n_blocks} blocks, "
        f"F width {a.nc}, {a.num_patches} patches, {a.steps} steps, torch {torch.__version__}"
    )
    fixture = {"settings": {k: v for k, v in vars(a).items() if k not in ("checkout", "write_fixture")}}
    initial = None
    probe = build_model(our_cfg("CUT", a))  # names of the tensors whose gradient is 0 in exact arithmetic
    null = {n: biases_before_instance_norm(getattr(probe, n)) for n in NETS}
    null["G"] -= {f"model.{i}.bias" for i in probe.cfg.nce_layers}  # a tapped conv output: its bias counts
    names = {n: [k for k, _ in getattr(probe, n).named_parameters()] for n in NETS}
    with tempfile.TemporaryDirectory() as workdir:
        for mode in a.modes:
            official = run_official(mode, a, batches, initial, flips, a.checkout, workdir)
            initial = initial or {n: {k: v.float() for k, v in official["initial"][n].items()} for n in NETS}
            ours = run_ours(mode, a, batches, official)
            print_report(mode, official, compare(official, ours, null))
            if a.fp64_reference and dtype == torch.float32:
                # how far each float32 step is from the float64 result (ours in float64, which
                # equals the official one to ~1e-11): the size of float32 rounding here
                ours64 = run_ours(mode, a, [to_batch(p, torch.float64) for p in pixels], official)
                truth = {"initial": official["initial"], "losses": ours64["losses"], "after": ours64["after"]}
                truth["flips"] = official["flips"]
                for name, run in (("official fp32", official), ("ours fp32", ours)):
                    print(f"  -- {name} against the float64 step:")
                    print_report(mode, truth, compare(truth, as_float64(run), null))
            # the updates in float32 (7 significant digits), each network's tensors as one vector
            # in ``names`` order: the fixture stays small
            fixture[mode] = {k: official[k] for k in ("flips", "patch_ids", "losses")}
            fixture[mode]["updates"] = {
                k: {n: flat({p: w - initial[n][p] for p, w in ws[n].items()}, names[n]) for n in NETS}
                for k, ws in official["after"].items()
            }
    if a.write_fixture:
        a.write_fixture.mkdir(parents=True, exist_ok=True)
        fixture.update(
            names=names,
            initial={n: flat(initial[n], names[n]) for n in NETS},
            pixels=pixels,
            biases_before_instance_norm={n: sorted(v) for n, v in null.items()},
        )
        torch.save(fixture, a.write_fixture / "official_step.pt")
        print(f"wrote {a.write_fixture / 'official_step.pt'}")


if __name__ == "__main__":
    main()
