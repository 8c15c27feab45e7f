"""The public Python API: the documented example (docs/guides/training.md), Python == CLI, the
registry, callbacks, the step object, logged diagnostics, old checkpoints, the one image-listing rule."""

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY, TINY_NETS, write_images
from PIL import Image
from test_metrics import needs_inception

import unpaired
from unpaired import checkpoint as ckpt_io
from unpaired.cli import main
from unpaired.config import ConfigError, ModelConfig
from unpaired.methods import build_generator

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "training.md"


def documented_python_example() -> str:
    text = GUIDE.read_text()
    section = text[text.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@needs_inception
def test_documented_python_api_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    for folder, n, seed in (("trainA", 4, 1), ("trainB", 4, 2), ("testA", 3, 3), ("testB", 3, 4)):
        write_images(tmp_path / "datasets" / "p2o" / folder, n, size=(72, 72), seed=seed)
    namespace: dict = {}
    exec(compile(documented_python_example(), str(GUIDE), "exec"), namespace)
    assert namespace["summary"]["iteration"] == 20
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000.png", "001.png", "002.png"]
    assert len(namespace["several"]) == 2 and namespace["several"][1].mode == "L"
    assert math.isfinite(namespace["scores"]["fid"]) and "kid_std" in namespace["scores"]


def test_python_and_cli_runs_give_identical_weights(dataset_dir, tmp_path):
    cli, py = tmp_path / "cli", tmp_path / "py"
    assert (
        main(
            [
                "train",
                "--model",
                "cut",
                "--data",
                str(dataset_dir),
                "--out",
                str(cli),
                "--size",
                "32",
                "--num-workers",
                "0",
                "--iters",
                "3",
                "--quiet",
                "--sample-every",
                "0",
                *TINY_NETS,
            ]
        )
        == 0
    )
    config = unpaired.preset("cut", root=str(dataset_dir), crop_size=32, num_workers=0, iters=3, sample_every=0, **TINY)
    summary = unpaired.Trainer(config, py, show_progress=False).fit()
    assert summary["iteration"] == 3 and summary["step"] == "eager"
    a, b = ckpt_io.load(cli), ckpt_io.load(py)
    assert a["config"] == b["config"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_preset_resolves_and_trainer_validates_early(tmp_path):
    cfg = unpaired.preset("fastcut", crop_size=64, focal_gamma=1)
    assert cfg.data.load_size == 72 and cfg.model.lambda_nce == 10.0 and cfg.model.focal_gamma == 1.0
    assert unpaired.preset("cut", **{"model.ngf": 16}).model.ngf == 16
    with pytest.raises(ConfigError, match="pool_size is an option of cyclegan"):
        unpaired.preset("cut", pool_size=3)
    with pytest.raises(ConfigError, match="unknown model"):
        unpaired.preset("nocut")
    cfg.data.crop_size = 34  # changed by hand after preset(): the Trainer re-validates at once
    with pytest.raises(ConfigError, match="multiple of 4"):
        unpaired.Trainer(cfg, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_translator_keeps_size_mode_and_type():
    cfg = unpaired.preset("cut", **TINY)
    torch.manual_seed(0)
    translator = unpaired.Translator(build_generator(cfg), cfg)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (37, 51, 3), dtype=np.uint8), "RGB")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (37, 51), dtype=np.uint8), "L"))
    for im in (rgb, rgb.convert("L"), rgba, rgb.convert("P")):
        out = translator(im)
        assert out.size == (51, 37)
        assert out.mode == (im.mode if im.mode != "P" else "RGB")
    assert translator(rgba).getchannel("A").tobytes() == rgba.getchannel("A").tobytes()
    # an RGB output of an L input is its luminance conversion
    assert translator(rgb.convert("L")).tobytes() == translator(rgb.convert("L").convert("RGB")).convert("L").tobytes()
    x = torch.rand(2, 3, 30, 42, dtype=torch.float64) * 2 - 1
    y = translator(x)
    assert y.shape == x.shape and y.dtype == torch.float64
    torch.testing.assert_close(translator(x[1]), y[1], atol=1e-5, rtol=0)  # alone == within a batch (float32 inside)
    assert [t.shape for t in translator([x[0], x])] == [x[0].shape, x.shape]
    with pytest.raises(ValueError, match="C = 3"):
        translator(torch.zeros(1, 30, 42))
    with pytest.raises(TypeError, match="PIL image"):
        translator("photo.jpg")


def test_load_reads_run_folders_and_checkpoint_files(dataset_dir, tmp_path):
    run = tmp_path / "run"
    unpaired.Trainer(
        unpaired.preset("fastcut", root=str(dataset_dir), crop_size=32, num_workers=0, iters=2, **TINY),
        run,
        show_progress=False,
    ).fit()
    t = unpaired.load(run, device="cpu")
    assert t.method == "fastcut" and t.channels == 3
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(t(x), unpaired.load(run / "checkpoints" / "latest.pt", device="cpu")(x))


def flat_model_options(cfg_dict: dict) -> dict:
    """The ``model`` section as unpaired 0.1 wrote it: every option of every method."""
    old = {
        "name": cfg_dict["model"]["name"],
        "ngf": 64,
        "ndf": 64,
        "n_blocks": 9,
        "n_layers_d": 3,
        "gan_mode": "lsgan",
        "lambda_gan": 1.0,
        "lambda_nce": 1.0,
        "nce_idt": True,
        "nce_layers": [0, 4, 8, 12, 16],
        "num_patches": 256,
        "nce_temperature": 0.07,
        "nce_negatives": "image",
        "focal_gamma": 0.0,
        "focal_alpha": 1.0,
        "flip_equivariance": False,
        "projector_dim": 256,
        "init_gain": 0.02,
        "generator": "resnet",
        "discriminator": "patchgan",
        "g_downsampling": 1,
        "d_tile_size": 0,
        "lambda_r1": 0.0,
        "lambda_identity": 0.0,
        "lambda_cycle": 10.0,
        "cycle_identity": 0.5,
        "pool_size": 50,
    }
    return {**old, **cfg_dict["model"]}


@pytest.mark.parametrize("model", ["cut", "cyclegan"])
def test_checkpoints_written_before_the_per_method_options_still_load(dataset_dir, tmp_path, model):
    run = tmp_path / model
    args = [
        "train",
        "--model",
        model,
        "--data",
        str(dataset_dir),
        "--out",
        str(run),
        "--size",
        "32",
        "--num-workers",
        "0",
        "--quiet",
        "--sample-every",
        "0",
        *(TINY_NETS if model == "cut" else TINY_NETS[:6]),
    ]
    assert main([*args, "--iters", "2"]) == 0
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    state["config"]["model"] = flat_model_options(state["config"])
    assert "pool_size" in state["config"]["model"] and "nce_layers" in state["config"]["model"]
    ckpt_io.save_atomic(state, run / "checkpoints" / "latest.pt")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["model"] = state["config"]["model"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    G = unpaired.load(run, device="cpu").generator
    assert G(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    assert main(["train", "--out", str(run), "--iters", "3", "--quiet", "--num-workers", "0"]) == 0  # resumes
    assert ckpt_io.load(run)["progress"]["iteration"] == 3
    assert "pool_size" not in ckpt_io.load(run)["config"]["model"] or model == "cyclegan"


# ------------------------------------------------------------------ registry: one file, one entry
@dataclass
class BlurConfig(ModelConfig):
    lambda_l1: float = 1.0


class BlurModel(torch.nn.Module):
    """A toy method: G learns to reproduce its input (L1), D is never used; it shows the contract."""

    config_class = BlurConfig
    GENERATOR_PREFIX = "G."

    @staticmethod
    def build_generator(cfg, channels=3, crop_size=256):
        return torch.nn.Conv2d(channels, channels, 3, padding=1)

    def __init__(self, cfg, channels=3, crop_size=256):
        super().__init__()
        self.cfg = cfg
        self.G = self.build_generator(cfg, channels, crop_size)

    @property
    def generator(self):
        return self.G

    def make_optimizers(self, lr, betas, eps=1e-8):
        return {"G": torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas, eps=eps)}

    def train_step(self, batch, step):
        with step.autocast():
            loss = torch.nn.functional.l1_loss(self.G(batch["A"]), batch["A"]) * self.cfg.lambda_l1
        step.update("G", loss)
        return {"L1": loss}

    def visuals(self):
        return {}


@pytest.fixture
def blur_method():
    from unpaired import methods

    yield unpaired.register_method(
        "blur", BlurModel, display="Blur", preset={"model": {"lambda_l1": 2.0}}, description="a toy"
    )
    methods.unregister_method("blur")


def test_a_new_method_is_one_class_and_one_registry_entry(blur_method, dataset_dir, tmp_path, capsys):
    assert unpaired.preset("blur").model.lambda_l1 == 2.0
    run = tmp_path / "blur"
    assert (
        main(
            [
                "train",
                "--model",
                "blur",
                "--data",
                str(dataset_dir),
                "--out",
                str(run),
                "--size",
                "32",
                "--num-workers",
                "0",
                "--quiet",
                "--iters",
                "2",
                "--set",
                "train.log_every=1",
            ]
        )
        == 0
    )
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert set(record["loss"]) == {"L1"} and record["stats"]["grad_norm_G"] > 0
    assert unpaired.load(run, device="cpu").method == "blur"
    from unpaired.experiments.report import method_name

    assert method_name(ckpt_io.load(run)["config"]) == "Blur"
    capsys.readouterr()
    with pytest.raises(SystemExit):  # the CLI's choices come from the registry
        main(["train", "--model", "nope", "--dry-run"])
    assert "blur" in capsys.readouterr().err


# ------------------------------------------------------------------ callbacks and the step object
class Recorder(unpaired.Callback):
    def __init__(self, stop_at):
        self.events, self.stop_at = [], stop_at

    def on_fit_start(self, trainer):
        self.events.append(("start", trainer.iteration))

    def on_step_end(self, trainer):
        self.events.append(("step", trainer.iteration))
        if trainer.iteration == self.stop_at:
            trainer.request_stop("enough")

    def on_log(self, trainer, record):
        self.events.append(("log", record["iter"]))

    def on_checkpoint(self, trainer, path):
        self.events.append(("checkpoint", ckpt_io.load(path)["progress"]["iteration"]))

    def on_fit_end(self, trainer):
        self.events.append(("end", trainer.iteration))


def test_callbacks_see_every_phase_and_can_stop_with_a_checkpoint(dataset_dir, tmp_path):
    rec = Recorder(stop_at=3)
    cfg = unpaired.preset(
        "fastcut", root=str(dataset_dir), crop_size=32, num_workers=0, iters=50, log_every=2, sample_every=0, **TINY
    )
    summary = unpaired.Trainer(cfg, tmp_path / "run", callbacks=[rec], show_progress=False).fit()
    assert rec.events == [
        ("start", 0),
        ("step", 1),
        ("step", 2),
        ("log", 2),
        ("step", 3),
        ("checkpoint", 3),
        ("end", 3),
    ]
    assert summary["stop_reason"] == "enough" and summary["iteration"] == 3 and not summary["finished"]


def test_every_optimizer_step_goes_through_gradient_averaging():
    from unpaired.amp import Precision
    from unpaired.methods import build_model
    from unpaired.training.step import TrainStep

    model = build_model(unpaired.preset("cut", crop_size=32, **TINY))
    calls = []
    step = TrainStep(
        model,
        model.make_optimizers(2e-4, (0.5, 0.999)),
        Precision("fp32", torch.device("cpu")),
        average_gradients=lambda params: calls.append(sum(p.numel() for p in params)),
    )
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    result = step(batch)
    counts = {k: sum(p.numel() for p in getattr(model, k).parameters()) for k in ("D", "G", "F")}
    assert calls == [counts["D"], counts["G"], counts["F"]]  # D's step, then G's and F's
    assert {"grad_norm_D", "grad_norm_G", "grad_norm_F", "D_real_mean", "D_fake_mean"} <= set(result.stats)


def test_diagnostics_are_logged_and_agree_with_the_losses(dataset_dir, tmp_path):
    run = tmp_path / "run"
    cfg = unpaired.preset(
        "cut-focal",
        root=str(dataset_dir),
        crop_size=32,
        num_workers=0,
        iters=3,
        log_every=1,
        focal_gamma=0.0,
        focal_alpha=1.0,
        **TINY,
    )  # cross-entropy: NCE = -mean log p
    unpaired.Trainer(cfg, run, show_progress=False).fit()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        s = r["stats"]
        probs = [s[f"nce_p_pos_layer{i}"] for i in (0, 4, 8, 12)]
        assert all(0 < p <= 1 for p in probs)
        # per layer, mean(-log p) >= -log(mean p) (Jensen): the logged p is the loss's positive probability
        assert r["loss"]["NCE"] / cfg.model.lambda_nce >= np.mean([-math.log(p) for p in probs]) - 1e-6
        assert all(s[f"grad_norm_{n}"] > 0 for n in "GDF")
        # LSGAN: D_real = mean (D(real) - 1)^2 >= (mean D(real) - 1)^2
        assert r["loss"]["D_real"] >= (s["D_real_mean"] - 1) ** 2 - 1e-6
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(run / "tensorboard")).Reload().Tags()["scalars"]
    assert {"stats/grad_norm_G", "stats/nce_p_pos_layer4", "loss/NCE"} <= set(tags)


def test_profiler_sees_each_phase_of_a_step():
    from torch.profiler import ProfilerActivity, profile

    from unpaired.amp import Precision
    from unpaired.methods import build_model
    from unpaired.training.step import TrainStep

    cfg = unpaired.preset("cut", crop_size=32, **TINY)
    model = build_model(cfg)
    step = TrainStep(model, model.make_optimizers(2e-4, (0.5, 0.999)), Precision("fp32", torch.device("cpu")))
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(batch)
    names = {e.name for e in prof.events()}
    assert {
        "G_forward",
        "D_forward",
        "D_backward",
        "D_optimizer",
        "G_gan_loss",
        "NCE",
        "G+F_backward",
        "G+F_optimizer",
    } <= names


# ------------------------------------------------------------------ one image-listing rule
def test_one_listing_rule_for_training_fid_and_translation(tmp_path):
    from unpaired.data import UnalignedDataset
    from unpaired.data.images import list_images
    from unpaired.inference.folders import find_images
    from unpaired.metrics.fid import list_image_files

    root = tmp_path / "data"
    write_images(root / "trainA", 2)
    write_images(root / "trainA" / "more", 1, seed=3)
    write_images(root / "trainA" / ".hidden", 1, seed=4)
    (root / "trainA" / "notes.txt").write_text("not an image")
    (root / "trainA" / ".000.png.tmp").write_bytes(b"")
    write_images(root / "trainB", 1, seed=5)
    expected = [root / "trainA" / "000.png", root / "trainA" / "001.png", root / "trainA" / "more" / "000.png"]
    assert list_images(root / "trainA") == expected
    assert UnalignedDataset(root, 3, 36, 32, True, 0, 1).paths["A"] == expected
    assert list_image_files(root / "trainA") == expected == find_images(root / "trainA")


@needs_inception
def test_evaluate_folders_without_kid_needs_only_fid(tmp_path, monkeypatch):
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    write_images(tmp_path / "real", 3, size=(32, 32))
    write_images(tmp_path / "fake", 2, size=(32, 32), seed=9)
    result = unpaired.evaluate_folders(tmp_path / "real", tmp_path / "fake", kid=False)
    assert set(result) == {"fid", "fid_ci", "n_real", "n_fake"} and result["n_fake"] == 2
    assert set(unpaired.evaluate_folders(tmp_path / "real", tmp_path / "fake", kid=False, ci=False)) == {
        "fid",
        "n_real",
        "n_fake",
    }
