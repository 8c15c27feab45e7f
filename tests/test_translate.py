import numpy as np
import pytest
from conftest import TINY_NETS, spread_generator_outputs
from PIL import Image

from unpaired.cli import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("t")
    from conftest import write_images

    write_images(root / "data" / "trainA", 2)
    write_images(root / "data" / "trainB", 2, seed=5)
    assert (
        main(
            [
                "train",
                "--model",
                "cut",
                "--data",
                str(root / "data"),
                "--out",
                str(root / "run"),
                "--size",
                "32",
                "--iters",
                "1",
                "--quiet",
                "--num-workers",
                "0",
                *TINY_NETS,
            ]
        )
        == 0
    )
    return root / "run"


def test_mixed_sizes_and_modes(tiny_run, tmp_path):
    src = tmp_path / "in"
    (src / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (131, 97), dtype=np.uint8), "L").save(src / "gray.png")
    Image.fromarray(rng.integers(0, 256, (200, 300, 4), dtype=np.uint8), "RGBA").save(src / "nested" / "alpha.png")
    Image.fromarray(rng.integers(0, 256, (768, 1024, 3), dtype=np.uint8), "RGB").save(src / "photo.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (3, 5, 3), dtype=np.uint8), "RGB").save(src / "tiny.bmp")
    out = tmp_path / "out"
    assert (
        main(
            [
                "translate",
                str(tiny_run),
                "--input",
                str(src),
                "--output",
                str(out),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    sizes = {p.relative_to(out).as_posix(): Image.open(p).size for p in out.rglob("*.png")}
    assert sizes == {
        "gray.png": (97, 131),
        "nested/alpha.png": (300, 200),
        "photo.png": (1024, 768),
        "tiny.png": (5, 3),
    }


def test_single_file_and_checkpoint_file(tiny_run, tmp_path):
    Image.new("RGB", (20, 30), (200, 10, 10)).save(tmp_path / "one.jpg")
    out = tmp_path / "out"
    assert (
        main(
            [
                "translate",
                str(tiny_run / "checkpoints" / "latest.pt"),
                "--input",
                str(tmp_path / "one.jpg"),
                "--output",
                str(out),
                "--quiet",
                "--format",
                "jpg",
            ]
        )
        == 0
    )
    assert [p.name for p in out.iterdir()] == ["one.jpg"] and Image.open(out / "one.jpg").size == (20, 30)


def test_bad_files_reported_others_written(tiny_run, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "good.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    assert main(["translate", str(tiny_run), "--input", str(src), "--output", str(out), "--quiet"]) == 1
    assert (out / "good.png").exists() and not (out / "broken.png").exists()
    assert "broken.jpg" in capsys.readouterr().err


def test_stem_collision_refused(tiny_run, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "a.png")
    Image.new("RGB", (8, 8)).save(src / "a.jpg")
    assert main(["translate", str(tiny_run), "--input", str(src), "--output", str(tmp_path / "o")]) == 2
    assert "would both be written" in capsys.readouterr().err


def test_missing_checkpoint_explained(tmp_path, capsys):
    assert main(["translate", str(tmp_path), "--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "no latest checkpoint" in capsys.readouterr().err


def write_mixed_folder(src, sizes, seed=0):
    rng = np.random.default_rng(seed)
    src.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / f"{i:02d}.png")


def test_batches_equal_batch_size_one(tiny_run, tmp_path):
    import torch

    import unpaired

    sizes = [(40, 48), (36, 52), (40, 48), (40, 48), (36, 52), (33, 27), (40, 48), (40, 48), (40, 48)]
    write_mixed_folder(tmp_path / "in", sizes)
    for n in (1, 4):
        assert (
            main(
                [
                    "translate",
                    str(tiny_run),
                    "--input",
                    str(tmp_path / "in"),
                    "--output",
                    str(tmp_path / f"b{n}"),
                    "--batch-size",
                    str(n),
                    "--device",
                    "cpu",
                    "--quiet",
                ]
            )
            == 0
        )
    for i, (h, w) in enumerate(sizes):
        one = np.asarray(Image.open(tmp_path / "b1" / f"{i:02d}.png"), dtype=int)
        four = np.asarray(Image.open(tmp_path / "b4" / f"{i:02d}.png"), dtype=int)
        assert one.shape == four.shape == (h, w, 3)
        # batched convolutions may take another oneDNN kernel: equal up to float rounding, which
        # can move a value sitting on an 8-bit rounding boundary by one level
        assert np.abs(one - four).max() <= 1 and (one != four).mean() < 1e-3
    t = unpaired.load(tiny_run, device="cpu")
    batch = torch.rand(5, 3, 40, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert float((t(batch) - torch.cat([t(b[None]) for b in batch])).abs().max()) < 1e-5
    ims = [Image.open(tmp_path / "in" / f"{i:02d}.png") for i in range(len(sizes))]
    batched, single = t.translate_images(ims, batch_size=4), t.translate_images(ims, batch_size=1)
    assert [im.size for im in batched] == [im.size for im in ims]  # in input order
    assert all(np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1 for a, b in zip(batched, single))


def test_precision(tiny_run, tmp_path, capsys):
    import torch

    import unpaired

    write_mixed_folder(tmp_path / "in", [(40, 48)])
    assert (
        main(
            [
                "translate",
                str(tiny_run),
                "--input",
                str(tmp_path / "in"),
                "--output",
                str(tmp_path / "o"),
                "--precision",
                "fp16",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "fp16 inference needs a GPU" in capsys.readouterr().err and not (tmp_path / "o").exists()
    # the 1-iteration generator's outputs are nearly flat (mean size 0.013): scaled so they span the range
    state = torch.load(tiny_run / "checkpoints" / "latest.pt", weights_only=False)
    spread_generator_outputs(state["model"], "G.", 40.0)
    spread = tmp_path / "spread.pt"
    torch.save(state, spread)
    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fp32 = unpaired.load(spread, device="cpu")(x)
    bf16 = unpaired.load(spread, device="cpu", precision="bf16")(x)
    assert float(fp32.abs().mean()) > 0.2  # outputs that a constant translation cannot imitate
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)  # it did run in bf16
    # bf16 keeps ~3 significant digits: measured mean difference 0.005 (max 0.04), against a mean size of 0.4
    err = (bf16 - fp32).abs()
    assert float(err.mean()) < 0.05 * float(fp32.abs().mean()) and float(err.max()) < 0.2
    assert (
        main(
            [
                "translate",
                str(tiny_run),
                "--input",
                str(tmp_path / "in"),
                "--output",
                str(tmp_path / "o"),
                "--precision",
                "bf16",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )


def test_existing_outputs_counted_or_kept(tiny_run, tmp_path, capsys):
    write_mixed_folder(tmp_path / "in", [(40, 48)] * 3)
    out = tmp_path / "out"
    args = [
        "translate",
        str(tiny_run),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(out),
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(args) == 0
    assert "existing" not in capsys.readouterr().err
    (out / "01.png").unlink()
    Image.new("RGB", (48, 40), (1, 2, 3)).save(out / "02.png")  # an earlier output, from elsewhere
    assert main(args + ["--skip-existing"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 1 image(s) to {out}, kept 2 existing"
    assert np.asarray(Image.open(out / "02.png"))[0, 0].tolist() == [1, 2, 3]  # kept
    assert (out / "01.png").exists()
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "3 existing file(s) in" in captured.err and "will be overwritten" in captured.err
    assert "wrote 3 image(s)" in captured.out
    assert np.asarray(Image.open(out / "02.png"))[0, 0].tolist() != [1, 2, 3]  # overwritten


def test_generator_input_multiple_is_honoured():
    import torch

    from unpaired.config import resolve
    from unpaired.inference.translator import Translator
    from unpaired.methods import preset
    from unpaired.nets.stylegan2 import StyleGAN2Generator
    from unpaired.tiling import input_multiple, padded_size

    assert padded_size(3, 5, 4) == (8, 8) and padded_size(33, 34, 2) == (34, 34) and padded_size(33, 34, 8) == (40, 40)
    cfg = resolve(preset("sincut"))
    G = StyleGAN2Generator(ngf=4, n_blocks=2, n_down=3, crop_size=64)
    assert input_multiple(G) == 8  # three downsamplings: sides must be multiples of 8, not 4
    y = Translator(G, cfg)(torch.rand(1, 3, 36, 44) * 2 - 1)
    assert y.shape == (1, 3, 36, 44)
    calls = []
    G1 = StyleGAN2Generator(ngf=4, n_blocks=2, n_down=1, crop_size=64)
    G1.register_forward_pre_hook(lambda m, args: calls.append(tuple(args[0].shape[-2:])))
    Translator(G1, cfg)(torch.rand(1, 3, 34, 42) * 2 - 1)
    assert calls == [(34, 42)]  # one downsampling: 34 x 42 runs as it is (a multiple of 4 would pad it)


def test_run_or_file_with_which_and_the_old_spelling(tiny_run, tmp_path, capsys):
    """RUN_or_FILE is positional and --which picks a run folder's checkpoint; --checkpoint RUN_or_FILE
    (before 0.3) still works, with a note."""
    import shutil

    import torch

    from unpaired import checkpoint as ckpt_io

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_run / "checkpoints" / "latest.pt", run / "checkpoints" / "latest.pt")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(src / "a.png")

    def translate(*model, which=()):
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        code = main(["translate", *model, "--input", str(src), "--output", str(out), "--quiet", *which])
        return code, (np.asarray(Image.open(out / "a.png")) if code == 0 else None)

    assert translate(str(run), which=("--which", "best"))[0] == 2
    assert "has no best checkpoint" in capsys.readouterr().err
    # best.pt: other weights (negated), so its translation differs from latest's
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=False)
    state["model"] = {k: -v if v.is_floating_point() else v for k, v in state["model"].items()}
    ckpt_io.save_atomic(state, run / "checkpoints" / "best.pt")
    code, latest = translate(str(run))
    assert code == 0
    _, best = translate(str(run), which=("--which", "best"))
    _, best_file = translate(str(run / "checkpoints" / "best.pt"))
    assert np.abs(latest.astype(int) - best.astype(int)).max() > 0 and np.array_equal(best, best_file)
    capsys.readouterr()
    _, old = translate("--checkpoint", str(run))
    assert np.array_equal(old, latest)
    assert f"note: 'unpaired translate --checkpoint' is deprecated; give {run} first, as RUN_or_FILE" in (
        capsys.readouterr().err
    )
    assert translate()[0] == 2
    assert "give the model as RUN_or_FILE" in capsys.readouterr().err


def tiny_generator(seed: int = 0):
    """A small CUT generator whose outputs span the range, and its config."""
    import torch
    from conftest import TINY

    from unpaired.config import resolve
    from unpaired.methods import build_generator, preset
    from unpaired.nets.init import init_weights

    cfg = resolve(preset("cut", crop_size=32, **TINY))
    torch.manual_seed(seed)
    G = init_weights(build_generator(cfg), cfg.model.init_gain)
    state = {f"G.{k}": v for k, v in G.state_dict().items()}
    spread_generator_outputs(state, "G.", 40.0)
    G.load_state_dict({k[2:]: v for k, v in state.items()})
    return G, cfg


def test_compile_auto_is_off_until_measured_and_the_first_line_says_why(tiny_run, tmp_path, capsys):
    import torch

    from unpaired.config import ConfigError
    from unpaired.inference.translator import choose_translate_mode

    for device in ("cpu", "cuda", "mps"):
        mode, why = choose_translate_mode("auto", torch.device(device))
        assert mode == "off" and why.startswith(f"auto on {device}:")
    assert "translate_speed.py" in choose_translate_mode("auto", torch.device("cuda"))[1]
    assert choose_translate_mode("compile", torch.device("cpu")) == ("compile", "asked for")
    with pytest.raises(ConfigError, match="compile must be one of auto, off, compile"):
        choose_translate_mode("cudagraphs", torch.device("cpu"))
    write_mixed_folder(tmp_path / "in", [(40, 48)])
    assert main(["translate", str(tiny_run), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o")]) == 0
    assert "; generator eager (auto on cpu: compiling takes 10-20 s per image size" in capsys.readouterr().err


def test_compile_refuses_a_traced_export():
    from pathlib import Path

    from unpaired.config import ConfigError
    from unpaired.inference.translator import load

    export = Path(__file__).parent / "fixtures" / "v0_2_0" / "cut.torchscript.pt"
    assert load(export, device="cpu", compile="off").compile == "off"
    with pytest.raises(ConfigError, match="a TorchScript export runs as it was traced"):
        load(export, device="cpu", compile="compile")


def test_a_failed_compilation_translates_eagerly_and_says_so(monkeypatch):
    """No compiler here: torch.compile gives a function that fails as inductor does without one."""
    import torch

    from unpaired.inference.translator import Translator

    G, cfg = tiny_generator()
    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    eager = Translator(G, cfg)(x)

    def broken(fn, **options):
        def run(*args, **kwargs):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    lines = []
    translator = Translator(G, cfg, compile="compile", log=lines.append)
    assert translator.compile == "compile"
    assert torch.equal(translator(x), eager) and torch.equal(translator(x), eager)
    assert lines == [
        "translate: torch.compile failed (RuntimeError: InvalidCxxCompiler: No working C++ compiler found); "
        "translating with the eager generator instead"
    ]
    assert "forward" not in translator.generator.__dict__  # the generator's own forward again


@pytest.mark.compile
def test_compiled_translation_equals_eager():
    """torch.compile of the generator (inductor, CPU): two image sizes, batch 2 and 1, as eager to 1e-5."""
    import torch

    from unpaired.inference.translator import Translator

    G, cfg = tiny_generator()
    inputs = [
        torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(h)) * 2 - 1
        for b, h, w in ((2, 40, 48), (1, 64, 36))
    ]
    eager = [Translator(G, cfg)(x) for x in inputs]
    lines = []
    translator = Translator(G, cfg, compile="compile", log=lines.append)
    compiled = [translator(x) for x in inputs]
    assert lines == [] and "forward" in translator.generator.__dict__  # compiled, no fallback
    assert "forward" not in G.__dict__ and torch.equal(Translator(G, cfg)(inputs[0]), eager[0])  # G left as it was
    for a, b in zip(eager, compiled):
        assert a.std() > 0.2  # outputs that span the range, not flat grey
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
