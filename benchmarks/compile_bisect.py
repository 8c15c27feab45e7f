"""Which layer of torch.compile changes a training step's gradients? (issue 23)

One step of a model at the networks of ``step_equality.py`` (32 px, ngf 8, 2 blocks), eagerly and
with the networks compiled by each ``torch.compile`` backend in turn; prints, per backend and
network, the largest relative difference (norm of the difference / norm) of a weight's gradient
from the eager one, naming the weight. Biases are left out: those of convolutions before instance
norm have a true gradient of 0, so their relative differences are rounding noise over noise.
The backends peel torch.compile apart layer by layer:

    eager                       dynamo's graph capture only
    aot_eager                   + AOT autograd (functionalization, joint graph, partitioner)
    aot_eager_decomp_partition  + inductor's decompositions and min-cut partitioner, run eagerly
    inductor                    + inductor's lowering and generated kernels (what --compile uses)
    inductor-vec-forward        inductor, its CPU kernels vectorized in the forward graphs only
    inductor-vec-backward       inductor, its CPU kernels vectorized in the backward graphs only
                                (the other graphs with cpp.simdlen=1: scalar C++ loops)

    .venv/bin/python benchmarks/compile_bisect.py --models cut --backends aot_eager inductor
    .venv/bin/python benchmarks/compile_bisect.py --backends inductor --inductor cpp.simdlen=1

``--inductor KEY=VALUE`` sets one of ``torch._inductor.config``'s switches (a Python literal) before
compiling, to rule a part of inductor in or out (run each in a fresh process with
TORCHINDUCTOR_FORCE_DISABLE_CACHES=1, so no cached kernel is reused).

Compiling is slow on a loaded 2-core machine (minutes per backend); each line is printed when ready.
"""

from __future__ import annotations

import argparse
import time

import torch

import unpaired
from unpaired.amp import Precision
from unpaired.methods import build_model
from unpaired.training.step import TrainStep, compile_networks

SIZE = 32


def vectorized_in(part: str):
    """A torch.compile backend: inductor with SIMD kernels in the ``part`` ('forward' or 'backward')
    graphs only, scalar loops elsewhere, to tell which graph's vectorized kernels differ."""
    import torch._inductor.config as inductor_config  # noqa: PLC0415 - slow import
    from torch._inductor.compile_fx import compile_fx, compile_fx_inner  # noqa: PLC0415

    def inner(gm, example_inputs, **kwargs):
        vectorize = bool(kwargs.get("is_backward", False)) == (part == "backward")
        with inductor_config.patch({"cpp.simdlen": None if vectorize else 1}):
            return compile_fx_inner(gm, example_inputs, **kwargs)

    return lambda gm, example_inputs: compile_fx(gm, example_inputs, inner_compile=inner)


def gradients(model_name: str, backend: str | None) -> dict[str, torch.Tensor]:
    overrides = {"model.ngf": 8, "model.ndf": 8, "model.n_blocks": 2}
    if model_name != "cyclegan":
        overrides.update({"model.nce_layers": [0, 4, 8, 12], "model.projector_dim": 32})
    cfg = unpaired.preset(model_name, crop_size=SIZE, **overrides)
    torch.manual_seed(0)
    model = build_model(cfg)
    if backend is not None:
        chosen = vectorized_in(backend.rsplit("-", 1)[1]) if str(backend).startswith("inductor-vec-") else backend
        compile_networks(model, backend=chosen)
    step = TrainStep(model, model.make_optimizers(2e-4, (0.5, 0.999), 1.0), Precision("fp32", torch.device("cpu")))
    g = torch.Generator().manual_seed(1)
    batch = {k: torch.rand((1, 3, SIZE, SIZE), generator=g) * 2 - 1 for k in "AB"}
    torch.manual_seed(2)
    step(batch)  # each update zeroes its networks' gradients first: what is left is this step's
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["cut"])
    p.add_argument("--backends", nargs="+", default=["aot_eager", "aot_eager_decomp_partition", "inductor"])
    p.add_argument("--inductor", nargs="*", default=[], metavar="KEY=VALUE", help="inductor config switches")
    args = p.parse_args()
    import ast  # noqa: PLC0415 - only for --inductor

    import torch._inductor.config as inductor_config  # noqa: PLC0415 - as CompiledStep does

    inductor_config.fallback_random = True
    for item in args.inductor:
        key, value = item.split("=", 1)
        *path, name = key.split(".")
        target = inductor_config
        for part in path:
            target = getattr(target, part)
        getattr(target, name)  # an unknown switch fails here, not silently
        setattr(target, name, ast.literal_eval(value))
        print(f"inductor config: {key} = {value}", flush=True)
    print(f"torch {torch.__version__}, {SIZE} px, one step, fp32, CPU", flush=True)
    for model_name in args.models:
        ref = gradients(model_name, None)
        for backend in args.backends:
            t0 = time.perf_counter()
            got = gradients(model_name, backend)
            nets = sorted({k.split(".")[0] for k in ref})
            parts = []
            for net in nets:
                rel = {
                    k: ((got[k] - ref[k]).norm() / ref[k].norm().clamp_min(1e-30)).item()
                    for k in ref
                    if k.startswith(net + ".") and ref[k].dim() > 1
                }
                worst = max(rel, key=rel.get)
                parts.append(f"{net} {rel[worst]:.1e} ({worst})")
            print(
                f"{model_name:9} {backend:27} " + ", ".join(parts) + f"  [{time.perf_counter() - t0:.0f} s]", flush=True
            )


if __name__ == "__main__":
    main()
