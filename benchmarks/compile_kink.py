"""Why CUT's compiled step differs from the eager one on the CPU (issue 23): a ReLU kink.

At the networks of ``compile_bisect.py`` (32 px, ngf 8, 2 blocks) one ReLU input in the encoder pass
over G's identity output lies within float rounding of 0. G's output image computed by inductor's
SIMD kernels differs from eager PyTorch's by ~1e-7, which is enough to put that input on the other
side of 0; the ReLU's gate for that one unit flips, InstanceNorm's backward spreads the change over
its channel, and G's weight gradients move by about 1%. This script shows it with the eager step
alone: it compiles G's ``forward_with_features`` once to get the SIMD output image, then runs the
eager step twice, with G's own output and with the compiled one's values substituted (a forward
hook; gradients still flow through G), and prints

- the largest difference of the two output images,
- every ReLU input in the encoder pass over the output whose sign differs between the two runs
  (module, index, the two values),
- G's largest relative weight-gradient difference.

    TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 .venv/bin/python benchmarks/compile_kink.py   # 2-5 min (compiling)
"""

from __future__ import annotations

import torch
from compile_bisect import SIZE, gradients

from unpaired.nets import resnet


def compiled_output_image() -> torch.Tensor:
    """G's output for the step's batch, from inductor's kernels (fallback_random as CompiledStep)."""
    import torch._inductor.config as inductor_config  # noqa: PLC0415 - slow import

    inductor_config.fallback_random = True
    captured = {}
    original = resnet.ResnetGenerator.forward_with_features

    def capture(self, x, layers):
        fake, keys = torch.compile(original)(self, x, layers)
        captured["fake"] = fake.detach().clone()
        return fake, keys

    resnet.ResnetGenerator.forward_with_features = capture
    try:
        gradients("cut", None)
    finally:
        resnet.ResnetGenerator.forward_with_features = original
    return captured["fake"]


def eager_step(substitute: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """G's gradients after one eager step, the ReLU inputs of the encoder passes, and G's output;
    with ``substitute``, G's output takes those values (its gradient still flows into G)."""
    original = resnet.ResnetGenerator.forward_with_features
    relu_inputs: list[torch.Tensor] = []
    out = {}

    def patched(self, x, layers):
        fake, keys = original(self, x, layers)
        if substitute is not None:
            fake = fake + (substitute - fake.detach())
        out["fake"] = fake.detach().clone()
        return fake, keys

    relu_forward = torch.nn.ReLU.forward

    def record(self, x):
        if x.dim() == 4 and x.shape[0] == 2:  # the batch-2 passes over [G(A), G(B)]
            relu_inputs.append(x.detach().clone())
        return relu_forward(self, x)

    resnet.ResnetGenerator.forward_with_features = patched
    torch.nn.ReLU.forward = record
    try:
        grads = gradients("cut", None)
    finally:
        resnet.ResnetGenerator.forward_with_features = original
        torch.nn.ReLU.forward = relu_forward
    return grads, relu_inputs, out["fake"]


def main() -> None:
    print(f"torch {torch.__version__}, CUT at {SIZE} px, one step, fp32, CPU", flush=True)
    simd = compiled_output_image()
    ref, relu_ref, fake = eager_step(None)
    got, relu_got, _ = eager_step(simd)
    print(f"G's output image: compiled vs eager, largest difference {(simd - fake).abs().max().item():.2e}")
    # the passes come in the same order: G's own forward, then the encoder pass over its output
    for n, (a, b) in enumerate(zip(relu_ref, relu_got)):
        flips = ((a > 0) != (b > 0)).nonzero().tolist()
        for i in flips:
            print(
                f"ReLU call {n} {tuple(a.shape)}: input at {i} is {a[tuple(i)].item():+.2e} eagerly, "
                f"{b[tuple(i)].item():+.2e} with the compiled output image"
            )
    worst = max(
        (((got[k] - ref[k]).norm() / ref[k].norm()).item(), k) for k in ref if k.startswith("G.") and ref[k].dim() > 1
    )
    print(f"eager step, G's weight gradients with the compiled output image: {worst[0]:.2e} ({worst[1]})")


if __name__ == "__main__":
    main()
