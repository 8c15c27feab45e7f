"""Official checkpoints load into unpaired with the official outputs: trains the official code a few
steps per variant, saves it the official way, loads the files with unpaired, and compares.

For every variant (CUT, FastCUT, SinCUT, CycleGAN-repo generators; with and without anti-aliased
resampling, 4, 6 or 9 blocks, instance / batch / no norm, dropout, a DataParallel ``module.``
prefix) this script

1. builds the official model from a checkout of the official CUT repository (never copied into the
   project; ``torchvision`` stubbed as in ``official_cut.py``), trains it ``--steps`` steps on
   random images and calls its ``save_networks('latest')``, which writes ``latest_net_G.pth`` (or
   ``G_A``/``G_B``), ``latest_net_D.pth``, ``latest_net_F.pth`` and ``train_opt.txt``;
2. runs the official ``netG`` in eval mode on random inputs of several sizes;
3. loads the saved generator with ``unpaired.inference.generator.open_generator`` (what translate,
   export, serve and ``unpaired.load`` use) and runs ours on the same inputs;
4. prints the largest absolute difference per variant and size (fp32; the bar is 1e-5).

The CycleGAN repository's ``ResnetGenerator`` is the same code as the CUT repository's with
``--no_antialias --no_antialias_up``; its variants are trained here with the CUT checkout's
``cycle_gan`` model, which builds its G_A/G_B with that code.

The official SinCUT generator injects fresh random noise in every forward pass, in eval mode too;
ours uses fixed noise in eval mode (``nets/noise.py``). To compare the deterministic rest, the
official noise layers are handed our noise tensors (the ``noise`` argument of the official
``NoiseInjection.forward``); nothing else of the official computation changes. Its decoder calls
``.cuda()`` on a tensor of ones, so on a machine without CUDA ``Tensor.cuda`` returns the tensor.

``--fixtures DIR`` writes the small variants (ngf 2-4, what tests/fixtures/official holds) with
``inputs.pt`` (the inputs and the official outputs) beside each.

    python benchmarks/official_checkpoints.py [--checkout .ref/cut] [--steps 3] [--sizes 32x48 64x64 96x128]
    python benchmarks/official_checkpoints.py --small --fixtures tests/fixtures/official
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_cut import DEFAULT_CHECKOUT, _stub_torchvision  # noqa: E402

from unpaired.inference.generator import open_generator  # noqa: E402
from unpaired.nets.noise import coordinate_noise  # noqa: E402

# name: (official model, its options, our networks to compare, whether to save with module.)
FULL = {
    "cut_9blocks": ("cut", "--CUT_mode CUT --ngf 16 --ndf 16 --netF_nc 64", False),
    "fastcut_6blocks": ("cut", "--CUT_mode FastCUT --netG resnet_6blocks --ngf 16 --ndf 16 --netF_nc 64", False),
    "cut_no_antialias": (
        "cut",
        "--CUT_mode CUT --no_antialias --no_antialias_up --ngf 16 --ndf 16 --netF_nc 64",
        False,
    ),
    "cut_no_antialias_up": ("cut", "--CUT_mode CUT --no_antialias_up --ngf 16 --ndf 16 --netF_nc 64", False),
    "cut_batchnorm": ("cut", "--CUT_mode CUT --normG batch --ngf 16 --ndf 16 --netF_nc 64", False),
    "cut_nonorm_dataparallel": ("cut", "--CUT_mode CUT --normG none --ngf 16 --ndf 16 --netF_nc 64", True),
    "cyclegan_repo": (
        "cycle_gan",
        "--no_antialias --no_antialias_up --ngf 16 --ndf 16 --netG resnet_9blocks --no_dropout False",
        False,
    ),
    "sincut": ("sincut", "--ngf 10 --ndf 8 --crop_size 64 --load_size 64 --batch_size 2", False),
    "smallsincut": ("sincut", "--netG smallstylegan2 --ngf 10 --ndf 8 --crop_size 64 --load_size 64", False),
}
# the fixtures: a few hundred KB in all
SMALL = {
    "cut": ("cut", "--CUT_mode CUT --netG resnet_6blocks --ngf 4 --ndf 4 --netF_nc 16", False),
    "fastcut_no_antialias_batchnorm": (
        "cut",
        "--CUT_mode FastCUT --netG resnet_6blocks --ngf 2 --ndf 4 --netF_nc 16 --no_antialias --no_antialias_up "
        "--normG batch",
        False,
    ),
    "cut_nonorm_no_antialias_up_dataparallel": (
        "cut",
        "--CUT_mode CUT --netG resnet_6blocks --ngf 2 --ndf 4 --netF_nc 16 --normG none --no_antialias_up",
        True,
    ),
    "cyclegan_repo_dropout": (
        "cycle_gan",
        "--netG resnet_6blocks --ngf 2 --ndf 4 --no_antialias --no_antialias_up --no_dropout False",
        False,
    ),
    "sincut": ("sincut", "--ngf 2 --ndf 2 --crop_size 128 --load_size 128 --batch_size 2", False),
}


def _official_modules(checkout: Path):
    if not (checkout / "models" / "cut_model.py").is_file():
        raise SystemExit(
            f"no official CUT checkout in {checkout} (git clone taesungp/contrastive-unpaired-translation)"
        )
    _stub_torchvision()
    sys.path.insert(0, str(checkout))
    try:
        from models import create_model  # noqa: PLC0415 - the official package, found at run time
        from options.train_options import TrainOptions  # noqa: PLC0415 - the official package
    finally:
        sys.path.remove(str(checkout))
    return create_model, TrainOptions


@contextlib.contextmanager
def _cpu_cuda_shim():
    """The official SinCUT decoder calls .cuda() on a tensor; without CUDA that returns the tensor."""
    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def train_official(name: str, model: str, options: str, steps: int, root: Path, checkout: Path, seed: int = 0):
    """The official model after ``steps`` training steps, saved into root/name the official way."""
    create_model, TrainOptions = _official_modules(checkout)
    torch.manual_seed(seed)
    argv = f"--dataroot unused --name {name} --model {model} --gpu_ids -1 --checkpoints_dir {root} {options}"
    old = sys.argv
    sys.argv = ["train.py", *argv.split()]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            opt = TrainOptions().parse()  # writes root/name/train_opt.txt
    finally:
        sys.argv = old
    opt.isTrain = True
    if not hasattr(opt, "amp"):  # the CUT checkout's cycle_gan model reads an option its parser lacks
        opt.amp = False
    size = min(opt.crop_size, opt.load_size) if model == "sincut" else 64

    def batch():
        shape = (opt.batch_size, 3, size, size)
        return {"A": torch.rand(shape) * 2 - 1, "B": torch.rand(shape) * 2 - 1, "A_paths": ["a"], "B_paths": ["b"]}

    with contextlib.redirect_stdout(io.StringIO()), _cpu_cuda_shim():
        net = create_model(opt)
        if model == "cycle_gan":
            net.data_dependent_initialize()
        else:
            net.data_dependent_initialize(batch())
        net.setup(opt)
        for _ in range(steps):
            net.set_input(batch())
            net.optimize_parameters()
        net.save_networks("latest")
    return net, opt


def official_noise(G_official, n_down: int) -> None:
    """Hand each official noise layer the noise ours uses in eval mode (see the module docstring)."""
    styled = [m for m in G_official.decoder.convs if hasattr(m, "noise")]
    for i, layer in enumerate(styled):
        inject = layer.noise
        original = inject.forward

        def forward(image, noise=None, _original=original, _seed=i):
            _, _, h, w = image.shape
            return _original(image, noise=coordinate_noise(None, h, w, _seed, image.device, image.dtype))

        inject.forward = forward


def add_module_prefix(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    torch.save({"module." + k: v for k, v in state.items()}, path)


def compare(name, spec, sizes, steps, root, checkout, fixtures: Path | None) -> list[dict]:
    model, options, dataparallel = spec
    net, opt = train_official(name, model, options, steps, root, checkout)
    folder = root / name
    G_off = net.netG_A if model == "cycle_gan" else net.netG
    G_off.eval()
    gfile = folder / ("latest_net_G_A.pth" if model == "cycle_gan" else "latest_net_G.pth")
    if dataparallel:
        add_module_prefix(gfile)
    if model == "sincut":
        official_noise(G_off, opt.stylegan2_G_num_downsampling)
    ours, cfg, about = open_generator(gfile)
    rows, saved = [], {}
    g = torch.Generator().manual_seed(1)
    for h, w in sizes:
        x = torch.rand(1, 3, h, w, generator=g) * 2 - 1
        with torch.no_grad(), _cpu_cuda_shim():
            y_off = G_off(x)
            y_ours = ours(x)
        diff = (y_off - y_ours).abs().max().item()
        rows.append(
            {
                "variant": name,
                "official": f"{model} {options}",
                "loaded_as": f"{cfg.model.name} ({about['official']['settings']})",
                "size": f"{h}x{w}",
                "max_abs_diff": diff,
                "output_range": float(y_off.abs().max()),
            }
        )
        saved[f"x_{h}x{w}"], saved[f"y_{h}x{w}"] = x, y_off
    if fixtures is not None:
        dest = fixtures / name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for f in folder.iterdir():
            if f.name == "train_opt.txt" or f.name.startswith("latest_net_"):
                if name != "cut" and f.name not in ("latest_net_G.pth", "latest_net_G_A.pth", "train_opt.txt"):
                    continue  # D and F of the CUT variant only (for --init-from): keeps the fixtures small
                shutil.copy(f, dest / f.name)
        if name.startswith("fastcut"):  # one variant without train_opt.txt: inferred from the weights alone
            (dest / "train_opt.txt").unlink()
        torch.save(saved, dest / "inputs.pt")
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", type=Path, default=DEFAULT_CHECKOUT)
    p.add_argument("--steps", type=int, default=3, help="official training steps before saving")
    p.add_argument("--sizes", nargs="+", help="HxW of the compared inputs (32x48 64x64 96x128; fixtures 32x48 20x28)")
    p.add_argument("--small", action="store_true", help="the small fixture variants instead of the full ones")
    p.add_argument("--only", nargs="+", help="variants to run")
    p.add_argument("--fixtures", type=Path, help="write the variants with their official outputs here")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sizes = args.sizes or (["32x48", "20x28"] if args.fixtures else ["32x48", "64x64", "96x128"])
    sizes = [tuple(int(v) for v in s.split("x")) for s in sizes]
    variants = SMALL if args.small or args.fixtures else FULL
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in variants.items():
            if args.only and name not in args.only:
                continue
            rows += compare(name, spec, sizes, args.steps, Path(tmp), args.checkout, args.fixtures)
            print(
                f"{name}: max abs diff {max(r['max_abs_diff'] for r in rows if r['variant'] == name):.2e}",
                file=sys.stderr,
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"torch {torch.__version__}, fp32, CPU, official code after {args.steps} training steps, netG in eval mode")
    print("\n| variant | official options | loaded as | size | max abs diff |\n|---|---|---|---|---|")
    for r in rows:
        opts = r["official"].split(" ", 1)
        print(
            f"| {r['variant']} | `--model {opts[0]} {opts[1] if len(opts) > 1 else ''}` "
            f"| {r['loaded_as'].split(' ')[0]} "
            f"| {r['size']} | {r['max_abs_diff']:.2e} |"
        )
    worst = max(r["max_abs_diff"] for r in rows)
    print(f"\nworst: {worst:.2e} ({'within' if worst <= 1e-5 else 'OVER'} 1e-5)")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
