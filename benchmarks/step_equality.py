"""Does a fast training step compute what the eager step does? Runs the same N iterations (same
initial weights, batches and random numbers) with ``--compile off`` and with each other mode, and
prints the largest loss and weight differences. Used by benchmarks/gpu_check.sh; runs anywhere:

    .venv/bin/python benchmarks/step_equality.py --device cpu     # compile, 32 px, float64: 4-5 min
    .venv/bin/python benchmarks/step_equality.py --device cpu --dtype float32 \
        --modes eager-1-thread eager-perturbed compile             # float32 against rounding alone
    python3 benchmarks/step_equality.py --device cuda            # compile and cudagraphs at 256 px

The tensors are float64 unless ``--dtype float32``: the step is a non-smooth function (ReLU gates),
and float32 rounding can put a ReLU input near 0 on either side, after which two correct
evaluations part (eager PyTorch on 1 thread against 2 is 4.5e-5 apart after 5 CUT steps; see
docs/measured/speed.md). In float64 rounding stays far from the gates, so a difference is a
difference in what is computed. Adam's epsilon is raised to 1 so that the update is linear in the
gradient: float rounding in a gradient whose true value is 0 (a bias before instance norm) could
otherwise flip an update's sign.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import unpaired
from unpaired.amp import Precision
from unpaired.devices import select_device
from unpaired.methods import build_model
from unpaired.training.step import build_step

# --tiny (the default off CUDA): networks that compile in a minute on 2 CPU cores
SMALL = {"model.ngf": 8, "model.ndf": 8, "model.n_blocks": 2}
SMALL_EXTRA = {
    "cut": {"model.nce_layers": [0, 4, 8, 12], "model.projector_dim": 32},
    "fastcut": {"model.nce_layers": [0, 4, 8, 12], "model.projector_dim": 32},
    # its blocks are its NCE layers (the preset's), discriminator tiles are powers of two that
    # divide the crop, and batch 2, not its preset's 16 crops
    "sincut": {
        "model.ngf": 8,
        "model.ndf": 8,
        "model.d_tile_size": 16,
        "model.projector_dim": 32,
        "data.batch_size": 2,
    },
}


# not step modes: the eager step again, on 1 thread or with every input pixel times 1 +- 2**-24,
# to show how far float rounding alone moves a run (the yardstick for float32)
ROUNDING_PROBES = ("eager-1-thread", "eager-perturbed")


def run(model_name: str, mode: str, device: torch.device, size: int, precision: str, steps: int, tiny: bool):
    overrides = {**(SMALL if model_name != "sincut" else {}), **SMALL_EXTRA.get(model_name, {})} if tiny else {}
    cfg = unpaired.preset(model_name, crop_size=size, **overrides)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    step = build_step(
        model,
        model.make_optimizers(2e-4, (0.5, 0.999), 1.0),
        Precision(precision, device),
        "off" if mode in ROUNDING_PROBES else mode,
        log=lambda line: print("   ", line),
    )
    g = torch.Generator().manual_seed(1)
    shape = (cfg.data.batch_size, cfg.data.channels, size, size)
    batches = [{k: torch.rand(shape, generator=g) * 2 - 1 for k in "AB"} for _ in range(steps)]
    if mode == "eager-perturbed":
        signs = torch.Generator().manual_seed(5)
        for b in batches:
            for k, x in b.items():
                b[k] = x * (1 + (torch.randint(0, 2, x.shape, generator=signs) * 2 - 1) * 2.0**-24)
    batches = [{k: x.to(device) for k, x in b.items()} for b in batches]
    threads = torch.get_num_threads()
    if mode == "eager-1-thread":
        torch.set_num_threads(1)
    torch.manual_seed(2)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(2)
    t0 = time.perf_counter()
    try:
        losses = [{k: float(v) for k, v in step(b).losses.items()} for b in batches]
    finally:
        torch.set_num_threads(threads)
    # conv and linear weights (a bias before instance norm has gradient 0: it holds rounding only)
    weights = {
        k: v.detach().cpu()
        for k, v in model.state_dict().items()
        if torch.is_tensor(v) and v.is_floating_point() and v.dim() > 1
    }
    name = mode if mode in ROUNDING_PROBES else step.name
    return losses, weights, name, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--models", nargs="+", default=["cut", "fastcut", "cyclegan", "sincut"])
    p.add_argument(
        "--modes",
        nargs="+",
        help=f"default: compile, and cudagraphs on CUDA; {' and '.join(ROUNDING_PROBES)} show what rounding alone does",
    )
    p.add_argument("--size", type=int, help="crop size (default 256 on CUDA, 32 elsewhere)")
    p.add_argument("--precision", default="fp32", help="autocast precision (fp32: none)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"], help="of weights and batches")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--tiny", action="store_true", help="small networks (default off CUDA)")
    args = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # into a file under gpu_check's timeout: each line as it comes
    device = select_device(args.device)
    cuda = device.type == "cuda"
    modes = args.modes or (["compile", "cudagraphs"] if cuda else ["compile"])
    size = args.size or (256 if cuda else 32)
    tiny = args.tiny or not cuda
    torch.set_default_dtype(getattr(torch, args.dtype))
    print(
        f"device {device}, torch {torch.__version__}, {size} px, {args.dtype}, {args.precision}, {args.steps} steps"
        + (", small networks" if tiny else "")
    )
    for model_name in args.models:
        ref_losses, ref_w, _, t_ref = run(model_name, "off", device, size, args.precision, args.steps, tiny)
        for mode in modes:
            try:
                losses, w, ran, t = run(model_name, mode, device, size, args.precision, args.steps, tiny)
            except Exception as e:  # noqa: BLE001 - report and go on with the next mode
                print(f"{model_name:9} {mode:11} FAILED: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                continue
            # relative, losses about 0 (a saturated discriminator's) from 1e-3 up; each weight tensor as a whole
            dloss = max(abs(a[k] - b[k]) / max(1e-3, abs(a[k])) for a, b in zip(ref_losses, losses) for k in a)
            diffs = {k: ((w[k] - ref_w[k]).norm() / ref_w[k].norm()).item() for k in ref_w}
            worst = max(diffs, key=diffs.get)
            dw = diffs[worst]
            ok = ran == mode and dloss < 1e-5 and dw < 1e-5
            print(
                f"{model_name:9} {mode:15} ran as {ran:15} max relative loss difference {dloss:.2e}, max relative "
                f"weight difference {dw:.2e} ({worst}) -> {'EQUAL (1e-5)' if ok else 'DIFFERENT'} "
                f"({t:.1f} s incl. compile, eager {t_ref:.1f} s)"
            )


if __name__ == "__main__":
    main()
