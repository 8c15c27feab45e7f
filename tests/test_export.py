"""unpaired export: safetensors, TorchScript and ONNX files that translate as the run does."""

import copy
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import spread_generator_outputs
from PIL import Image

import unpaired
from unpaired import checkpoint as ckpt_io
from unpaired.cli import main
from unpaired.config import resolve
from unpaired.inference.artifacts import read_metadata
from unpaired.inference.export import export_generator, with_two_pass_norms
from unpaired.methods import build_model, preset
from unpaired.nets.stylegan2 import NoiseInjection
from unpaired.tiling import pad_to_multiple

METHODS = ["cut", "fastcut", "cyclegan", "sincut"]
# small widths keep the suite fast; the architecture (layers, norms, resampling, noise) is the real one
TINY = {
    "cut": {"ngf": 8, "ndf": 8, "n_blocks": 2, "nce_layers": [0, 4, 8], "projector_dim": 32},
    "fastcut": {"ngf": 8, "ndf": 8, "n_blocks": 2, "nce_layers": [0, 4, 8], "projector_dim": 32},
    "cyclegan": {"ngf": 8, "ndf": 8, "n_blocks": 2},
    "sincut": {"ngf": 4, "n_blocks": 4, "projector_dim": 32},
}
SIZES = [(256, 256), (211, 317)]  # (H, W): 256x256 and 317x211, the second padded as translate pads


def has_onnx() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


needs_onnx = pytest.mark.skipif(
    not has_onnx(), reason="onnx/onnxruntime not installed (pip install 'unpaired[export]')"
)


def make_checkpoint(method: str, path, iteration: int = 37):
    cfg = resolve(preset(method))
    for k, v in TINY[method].items():
        setattr(cfg.model, k, v)
    torch.manual_seed(METHODS.index(method))  # FastCUT's generator is CUT's: other weights
    model = build_model(cfg)
    for m in model.modules():  # SinCUT's noise weights start at 0: make the noise matter
        if isinstance(m, NoiseInjection):
            m.weight.data.fill_(0.5)
    if method != "sincut":  # at initialisation outputs are flat grey (std 0.014): make them span the range
        spread_generator_outputs(model.state_dict(), model.GENERATOR_PREFIX, 40.0)
    ckpt_io.save_atomic(
        {
            "format": ckpt_io.FORMAT_VERSION,
            "config": cfg.to_dict(),
            "model": model.state_dict(),
            "progress": {"epoch": 1, "batch": 0, "iteration": iteration},
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {m: make_checkpoint(m, root / f"{m}.pt") for m in METHODS}


@pytest.fixture(scope="module")
def exports(checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    formats = {"safetensors": ".safetensors", "torchscript": ".pt"}
    if has_onnx():
        formats["onnx"] = ".onnx"
    out = {}
    for m, ckpt in checkpoints.items():
        for fmt, ext in formats.items():
            out[m, fmt] = root / f"{m}{ext}"
            export_generator(ckpt, out[m, fmt], fmt)
    return out


def inputs(channels: int = 3):
    gen = torch.Generator().manual_seed(1)
    return [torch.rand(1, channels, h, w, generator=gen) * 2 - 1 for h, w in SIZES]


def run_raw(kind: str, path, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """The export run without this package's loaders, padded by the documented recipe."""
    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, multiple)
    if kind == "torchscript":
        with torch.no_grad():
            y = torch.jit.load(str(path))(xp)
    else:
        import onnxruntime as ort

        y = torch.from_numpy(
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["output"], {"image": xp.numpy()})[
                0
            ]
        )
    return y[..., :h, :w]


@pytest.mark.parametrize("method", METHODS)
def test_safetensors_and_torchscript_match_pytorch(method, checkpoints, exports):
    run = unpaired.load(checkpoints[method], device="cpu")
    multiple = 2 if method == "sincut" else 4
    for x in inputs():
        ref = run(x)
        assert torch.equal(unpaired.load(exports[method, "safetensors"], device="cpu")(x), ref)
        assert float((run_raw("torchscript", exports[method, "torchscript"], x, multiple) - ref).abs().max()) <= 1e-4
        assert torch.equal(unpaired.load(exports[method, "torchscript"], device="cpu")(x), ref)


@needs_onnx
@pytest.mark.parametrize("method", METHODS)
def test_onnx_matches_pytorch(method, checkpoints, exports):
    run = unpaired.load(checkpoints[method], device="cpu")
    multiple = 2 if method == "sincut" else 4
    for x in inputs():
        ref = run(x)
        assert float((run_raw("onnx", exports[method, "onnx"], x, multiple) - ref).abs().max()) <= 1e-4
        assert float((unpaired.load(exports[method, "onnx"], device="cpu")(x) - ref).abs().max()) <= 1e-4


def test_description_and_translator_info(checkpoints, exports):
    keys = {"method", "display_name", "iterations", "source", "input_multiple", "channels"}
    for (method, fmt), path in exports.items():
        meta = read_metadata(path)
        assert meta["method"] == method and meta["iterations"] == 37 and meta["channels"] == {"in": 3, "out": 3}
        assert meta["input_multiple"] == (2 if method == "sincut" else 4) and meta["origin_input"] == (
            method == "sincut"
        )
        assert meta["train_size"] == resolve(preset(method)).data.crop_size
        assert meta["package_version"] == unpaired.__version__
        assert meta["normalisation"]["layers"] == ("none" if method == "sincut" else "instance")
        info = unpaired.load(path, device="cpu").info
        run_info = unpaired.load(checkpoints[method], device="cpu").info
        assert keys <= set(info) and {k: info[k] for k in keys - {"source"}} == {
            k: run_info[k] for k in keys - {"source"}
        }
        assert info["format"] == fmt and run_info["format"] == "checkpoint" and info["source"] == str(path)
    assert unpaired.load(exports["fastcut", "safetensors"], device="cpu").info["display_name"] == "FastCUT"


def test_translate_cli_reads_exports(checkpoints, exports, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(64, 64), (45, 77)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / f"{i}.png")
    outs = {}
    for name, path in [
        ("run", checkpoints["cut"]),
        ("safetensors", exports["cut", "safetensors"]),
        ("torchscript", exports["cut", "torchscript"]),
    ] + ([("onnx", exports["cut", "onnx"])] if has_onnx() else []):
        assert (
            main(
                [
                    "translate",
                    str(path),
                    "--input",
                    str(src),
                    "--output",
                    str(tmp_path / name),
                    "--device",
                    "cpu",
                    "--quiet",
                ]
            )
            == 0
        )
        outs[name] = [np.asarray(Image.open(tmp_path / name / f"{i}.png"), dtype=int) for i in range(2)]
    for name, images in outs.items():
        for a, b in zip(images, outs["run"]):
            assert a.shape == b.shape and np.abs(a - b).max() <= (1 if name == "onnx" else 0), name


@needs_onnx
def test_sincut_exports_take_tile_origins(checkpoints, exports):
    """Tiled translation feeds each tile's origin to the exports' second input: same as PyTorch's tiles."""
    x = torch.rand(1, 3, 150, 230) * 2 - 1
    ref = unpaired.load(checkpoints["sincut"], device="cpu", tile=64, overlap=24)(x)
    for fmt in ("torchscript", "onnx"):
        tiled = unpaired.load(exports["sincut", fmt], device="cpu", tile=64, overlap=24)(x)
        assert float((tiled - ref).abs().max()) <= 1e-4, fmt
    whole = unpaired.load(checkpoints["sincut"], device="cpu", tile=0)(x)
    assert float((whole - ref).abs().max()) > 1e-3  # the origin matters: tiles are not whole-image calls


@needs_onnx
def test_onnx_instance_norm_keeps_digits_where_means_are_large(tmp_path):
    """onnxruntime's InstanceNormalization (and one ReduceMean over all pixels) lose float32 digits
    when a channel's mean is large against its spread; the exported form stays near float64."""
    import onnxruntime as ort

    norm = with_two_pass_norms(torch.nn.Sequential(torch.nn.InstanceNorm2d(2)))
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in norm.modules())
    path = tmp_path / "norm.onnx"
    torch.onnx.export(
        norm,
        (torch.rand(1, 2, 16, 16),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {2: "h", 3: "w"}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 2, 256, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.01 + 1
    exact = torch.nn.functional.instance_norm(x, eps=1e-5)
    y = torch.from_numpy(session.run(None, {"x": x.float().numpy()})[0]).double()
    assert float((y - exact).abs().max()) < 2e-5  # the native InstanceNormalization: 6e-5 here


def test_failed_check_leaves_no_file(checkpoints, tmp_path, monkeypatch, capsys):
    """An export whose network differs a little from the run's (one weight of the first convolution
    off by 0.001) is refused, and nothing is written; the
    check compares the file written with the run's generator, not the file with itself."""
    import unpaired.inference.export as export

    fmt = "safetensors"  # the check is the same for every format
    write = export.WRITERS[fmt]

    def write_slightly_wrong(G, meta, path):
        G = copy.deepcopy(G)
        conv = next(m for m in G.modules() if isinstance(m, torch.nn.Conv2d))
        with torch.no_grad():
            conv.weight[0, 0, 0, 0] += 0.001
        write(G, meta, path)

    monkeypatch.setitem(export.WRITERS, fmt, write_slightly_wrong)
    monkeypatch.setattr(export, "CHECK_SIZES", ((64, 64), (45, 67)))  # small: the check's logic is tested
    out = tmp_path / f"g{export.FORMATS[fmt]}"
    assert main(["export", str(checkpoints["cut"]), "--format", fmt, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "differ from PyTorch's" in err and "(> 0.0001)" in err
    worst = float(re.search(r"by up to ([0-9.e+-]+)", err).group(1))
    assert worst > 1e-4
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setitem(export.WRITERS, fmt, write)  # the faithful writer passes the same check
    meta = export_generator(checkpoints["cut"], out, fmt)
    assert out.exists() and 0 <= max(meta["check"].values()) <= 1e-4


def test_export_cli_reports_and_errors(checkpoints, tmp_path, capsys, monkeypatch):
    out = tmp_path / "g.pt"
    assert main(["export", str(checkpoints["sincut"]), "--format", "torchscript", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SinCUT (sincut, 37 iterations" in text and "multiples of 2" in text and "checked against PyTorch" in text
    assert (
        main(["export", str(checkpoints["cut"]), "--out", str(tmp_path / "j.safetensors"), "--json", "--no-check"]) == 0
    )
    meta = json.loads(capsys.readouterr().out)
    assert meta["method"] == "cut" and "check" not in meta
    # a run folder: --which picks its checkpoint (latest by default); --checkpoint best, its spelling
    # before 0.3, still works and says so
    run = tmp_path / "run"
    make_checkpoint("cut", run / "checkpoints" / "latest.pt", iteration=37)
    make_checkpoint("cut", run / "checkpoints" / "best.pt", iteration=12)
    for which, iterations, note in (
        ([], 37, False),
        (["--which", "best"], 12, False),
        (["--checkpoint", "best"], 12, True),
    ):
        assert main(["export", str(run), *which, "--out", str(tmp_path / "r.safetensors"), "--json", "--no-check"]) == 0
        captured = capsys.readouterr()
        assert json.loads(captured.out)["iterations"] == iterations
        assert ("'unpaired export --checkpoint' is deprecated; write --which best" in captured.err) == note
    # a safetensors file that no export wrote
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    assert (
        main(
            [
                "translate",
                str(tmp_path / "other.safetensors"),
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "has no unpaired description" in capsys.readouterr().err
    # traced exports run in fp32 only: said, not silently ignored
    assert (
        main(
            [
                "translate",
                str(out),
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
                "--precision",
                "bf16",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "runs in fp32 only" in capsys.readouterr().err
    # without the optional packages: one line saying what to install
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", str(checkpoints["cut"]), "--format", "onnx", "--out", str(tmp_path / "g.onnx")]) == 2
    assert "pip install 'unpaired[export]'" in capsys.readouterr().err
    assert not (tmp_path / "g.onnx").exists()


GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "inference.md"


def documented_export_example() -> str:
    text = GUIDE.read_text()
    section = text[text.index("## Export") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@needs_onnx
def test_documented_onnx_recipe_runs_as_written(exports, tmp_path, monkeypatch):
    """The documented numpy + onnxruntime recipe (docs/guides/inference.md, padding included) gives
    translate's output."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copy(exports["cut", "onnx"], tmp_path / "h2z.onnx")
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (45, 77, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    exec(compile(documented_export_example(), str(GUIDE), "exec"), {})
    ours = unpaired.load(tmp_path / "h2z.onnx", device="cpu")(Image.open(tmp_path / "photo.jpg"))
    recipe = np.asarray(Image.open(tmp_path / "translated.png"), dtype=int)
    assert recipe.shape == (45, 77, 3) and np.abs(recipe - np.asarray(ours, dtype=int)).max() == 0


def test_export_never_overwrites_its_source(tmp_path, capsys):
    ckpt = make_checkpoint("cut", tmp_path / "c.pt")
    before = ckpt.read_bytes()
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(ckpt)]) == 2
    assert "is the checkpoint being exported" in capsys.readouterr().err and ckpt.read_bytes() == before
