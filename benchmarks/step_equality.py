"""Does a fast training step compute what the eager step does? Runs the same N iterations (same
initial weights, batches and random numbers) with ``--compile off`` and with each other mode, and
prints the largest loss and weight differences. Used by benchmarks/gpu_check.sh; runs anywhere:

    .venv/bin/python benchmarks/step_equality.py --device cpu --modes compile --size 32
    python3 benchmarks/step_equality.py --device cuda            # compile and cudagraphs at 256 px

Adam's epsilon is raised to 1 so that the update is linear in the gradient: float rounding in a
gradient whose true value is 0 (a bias before instance norm) could otherwise flip an update's sign.
"""

from __future__ import annotations

import argparse
import time

import torch

import unpaired
from unpaired.amp import Precision
from unpaired.devices import select_device
from unpaired.methods import build_model
from unpaired.training.step import build_step


def run(model_name: str, mode: str, device: torch.device, size: int, precision: str, steps: int, tiny: bool):
    overrides = {"model.ngf": 8, "model.ndf": 8, "model.n_blocks": 2} if tiny else {}
    if tiny and model_name != "cyclegan":
        overrides.update({"model.nce_layers": [0, 4, 8, 12], "model.projector_dim": 32})
    cfg = unpaired.preset(model_name, crop_size=size, **overrides)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    step = build_step(
        model,
        model.make_optimizers(2e-4, (0.5, 0.999), 1.0),
        Precision(precision, device),
        mode,
        log=lambda line: print("   ", line),
    )
    g = torch.Generator().manual_seed(1)
    shape = (cfg.data.batch_size, cfg.data.channels, size, size)
    batches = [{k: (torch.rand(shape, generator=g) * 2 - 1).to(device) for k in "AB"} for _ in range(steps)]
    torch.manual_seed(2)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(2)
    t0 = time.perf_counter()
    losses = [{k: float(v) for k, v in step(b).losses.items()} for b in batches]
    return (
        losses,
        {k: v.float().cpu() for k, v in model.state_dict().items() if torch.is_tensor(v) and v.is_floating_point()},
        step.name,
        time.perf_counter() - t0,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--models", nargs="+", default=["cut", "fastcut", "cyclegan"])
    p.add_argument("--modes", nargs="+", help="default: compile, and cudagraphs on CUDA")
    p.add_argument("--size", type=int, help="crop size (default 256 on CUDA, 32 elsewhere)")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--tiny", action="store_true", help="small networks (default off CUDA)")
    args = p.parse_args()
    device = select_device(args.device)
    cuda = device.type == "cuda"
    modes = args.modes or (["compile", "cudagraphs"] if cuda else ["compile"])
    size = args.size or (256 if cuda else 32)
    tiny = args.tiny or not cuda
    print(
        f"device {device}, torch {torch.__version__}, {size} px, {args.precision}, {args.steps} steps"
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
            dloss = max(abs(a[k] - b[k]) / max(1e-8, abs(a[k])) for a, b in zip(ref_losses, losses) for k in a)
            diffs = {k: (w[k] - ref_w[k]).abs().max().item() for k in ref_w}
            worst = max(diffs, key=diffs.get)
            dw = diffs[worst]
            ok = ran == mode and dloss < 1e-3 and dw < 1e-5 * args.steps
            print(
                f"{model_name:9} {mode:11} ran as {ran:10} max relative loss difference {dloss:.2e}, max weight "
                f"difference {dw:.2e} ({worst}) -> {'EQUAL to float tolerance' if ok else 'DIFFERENT'} "
                f"({t:.1f} s incl. compile, eager {t_ref:.1f} s)"
            )


if __name__ == "__main__":
    main()
