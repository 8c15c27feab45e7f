"""Is PyTorch's InstanceNorm backward right for a non-contiguous incoming gradient? Prints, per
device and batch size, the largest difference between ``nn.InstanceNorm2d``'s input gradient and
the gradient of a hand-written (x - mean) / sqrt(var + eps), in float64, when the gradient reaches
the norm's output through ``flatten(2).permute(0, 2, 1)`` (the official CUT code's patch sampling
does this) and when it arrives contiguous.

On torch 2.13 on the CPU, batch 1 with the permuted gradient is wrong (2026-12-05: difference 4.8 on
gradients of size 3.3; batch 2 and contiguous gradients agree to 2e-15). Our projector samples
patches without the permute (``nets/projector.py``); the official code at batch 1 on a CPU trains
its generator with these gradients (docs/measured/faithfulness.md).

    python benchmarks/instancenorm_backward.py [--device cuda]
"""

import argparse

import torch


def gradients(batch: int, permuted: bool, device: str) -> tuple[float, float]:
    """(largest difference from the hand-written norm's gradient, largest gradient) in float64."""
    gen = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, 8, 16, 16, dtype=torch.float64, generator=gen).to(device)
    g = torch.randn(batch, 16 * 16, 8, dtype=torch.float64, generator=gen).to(device)

    def grad(norm) -> torch.Tensor:
        xi = x.clone().requires_grad_(True)
        y = norm(xi)
        loss = (
            (y.flatten(2).permute(0, 2, 1) * g).sum()
            if permuted
            else (y * g.permute(0, 2, 1).reshape(y.shape).contiguous()).sum()
        )
        return torch.autograd.grad(loss, xi)[0]

    def by_hand(t: torch.Tensor) -> torch.Tensor:
        mean, var = t.mean((2, 3), keepdim=True), t.var((2, 3), unbiased=False, keepdim=True)
        return (t - mean) / torch.sqrt(var + 1e-5)

    want = grad(by_hand)
    return (grad(torch.nn.InstanceNorm2d(8)) - want).abs().max().item(), want.abs().max().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {args.device}, float64")
    print("| batch | incoming gradient | largest difference | largest gradient |")
    print("|---:|---|---:|---:|")
    for batch in (1, 2):
        for permuted in (True, False):
            diff, size = gradients(batch, permuted, args.device)
            print(f"| {batch} | {'permuted' if permuted else 'contiguous'} | {diff:.1e} | {size:.1f} |")


if __name__ == "__main__":
    main()
