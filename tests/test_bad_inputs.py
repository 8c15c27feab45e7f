"""Bad inputs and failing writes: every one is a single clear line, a non-zero exit and nothing
half-written (issue 12). Each test drives the command line as a user would."""

import errno
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_NETS, write_images
from PIL import Image

import unpaired
from unpaired import checkpoint as ckpt_io
from unpaired import files as outputs
from unpaired.cli import main
from unpaired.training.trainer import Callback, TrainingDiverged

TINY = ["--size", "32", "--num-workers", "0", "--device", "cpu", "--quiet", "--sample-every", "0", *TINY_NETS]
EXPERIMENT = Path(__file__).resolve().parents[1] / "configs" / "thesis_table51.yaml"
posix_only = pytest.mark.skipif(os.name != "posix", reason="links, FIFOs and /proc are POSIX")


def train(data, out, *extra, model="cut"):
    return main(["train", "--model", model, "--data", str(data), "--out", str(out), *TINY, *extra])


def one_line_error(capsys, start="error: "):
    """The command's stderr, asserted to be exactly one line (no traceback) starting with ``start``."""
    err = capsys.readouterr().err.strip()
    lines = [
        line
        for line in err.splitlines()  # leaving out notes, warnings and progress bars
        if line.strip() and not line.startswith(("step: ", "warning: ", "note: ")) and "%|" not in line
    ]
    assert len(lines) == 1 and lines[0].startswith(start) and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained CUT run (2 iterations) on a dataset with train, val and test splits."""
    root = tmp_path_factory.mktemp("bad_inputs")
    data = root / "data"
    for i, split in enumerate(["trainA", "trainB", "valA", "valB", "testA", "testB"]):
        write_images(data / split, 3, seed=i)
    assert train(data, root / "run", "--iters", "2") == 0
    return data, root / "run"


# ------------------------------------------------------------------ outputs that cannot be created
def bad_outputs(tmp_path):
    (tmp_path / "afile").write_text("x")
    outs = [tmp_path / "afile" / "x", tmp_path / "afile"]
    return outs + (["/proc/unpaired-x"] if os.path.isdir("/proc/self") else [])


def test_train_out_that_cannot_be_created(dataset_dir, tmp_path, capsys):
    for out in bad_outputs(tmp_path):
        assert train(dataset_dir, out, "--iters", "1") == 2
        line = one_line_error(capsys, "error: cannot create the run folder")
        assert str(out) in line
    assert not os.path.exists("/proc/unpaired-x")


def test_every_writing_command_refuses_an_out_it_cannot_create(run, tmp_path, capsys, monkeypatch):
    data, run_dir = run
    archive = tmp_path / "maps.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split, n in (("train", 4), ("val", 2)):
            for i in range(n):
                buf = io.BytesIO()
                Image.fromarray(np.full((16, 32, 3), 40 * i, np.uint8)).save(buf, format="PNG")
                info = tarfile.TarInfo(f"maps/{split}/{i}.png")
                info.size = len(buf.getvalue())
                tar.addfile(info, io.BytesIO(buf.getvalue()))
    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    commands = {
        "translate": lambda o: [
            "translate",
            str(run_dir),
            "--input",
            str(data / "testA"),
            "--output",
            o,
            "--device",
            "cpu",
            "--quiet",
        ],
        "data split": lambda o: ["data", "split", str(data), "--out", o],
        "data download": lambda o: ["data", "download", "maps", "--archive", str(archive), "--out", o],
        "report": lambda o: ["report", str(run_dir), "--out", o],
        "experiment": lambda o: [
            "experiment",
            str(EXPERIMENT),
            "--data",
            str(data),
            "--out",
            o,
            "--scale",
            "small",
            "--quiet",
            "--device",
            "cpu",
        ],
        "demo": lambda o: ["demo", "--out", o, "--quiet"],
    }
    for name, command in commands.items():
        for out in bad_outputs(tmp_path):
            assert main(command(str(out))) == 2, name
            line = one_line_error(capsys, "error: ")
            assert str(out) in line and ("cannot create" in line or "cannot write" in line), (name, line)
    assert not list(tmp_path.glob(".*extract")) and not list(tmp_path.glob(".*split-tmp"))


def test_evaluate_run_into_a_run_folder_it_cannot_write(run, capsys):
    data, run_dir = run
    (run_dir / "eval").write_text("in the way")
    try:
        assert main(["evaluate", "run", str(run_dir), "--data", str(data), "--device", "cpu"]) == 2
        assert "cannot create the evaluation folder" in one_line_error(capsys)
    finally:
        (run_dir / "eval").unlink()


# ------------------------------------------------------------------ FID inputs, checked first
def test_fid_needs_two_images_and_checks_both_folders_before_any_feature(tmp_path, capsys, monkeypatch):
    import unpaired.evaluate as ev

    def no_features(*args, **kwargs):
        raise AssertionError("features computed before the inputs were checked")

    monkeypatch.setattr(ev, "cached_folder_features", no_features)
    monkeypatch.setattr(ev, "folder_features", no_features)
    write_images(tmp_path / "real", 3)
    write_images(tmp_path / "one", 1)
    (tmp_path / "empty").mkdir()
    for real, fake, kid, message in [
        ("real", "one", [], "one holds 1 image: FID and KID need at least 2"),
        ("real", "one", ["--kid"], "one holds 1 image"),
        ("one", "real", [], "one holds 1 image"),
        ("real", "empty", [], "empty contains no images"),
        ("empty", "real", [], "empty contains no images"),
    ]:
        assert main(["evaluate", "fid", str(tmp_path / real), str(tmp_path / fake), "--device", "cpu", *kid]) == 2
        assert message in one_line_error(capsys)


def test_validation_split_of_one_image_refused_before_training(dataset_dir, tmp_path, capsys):
    write_images(dataset_dir / "valA", 1)
    write_images(dataset_dir / "valB", 3)
    assert train(dataset_dir, tmp_path / "r", "--iters", "2", "--val-every", "1") == 2
    assert "valA holds 1 image: FID and KID need at least 2" in one_line_error(capsys)
    assert not (tmp_path / "r" / "checkpoints").exists()


# ------------------------------------------------------------------ data check agrees with train
@pytest.mark.parametrize("broken", ["empty trainA", "no trainB", "only non-images in trainB"])
def test_data_check_fails_exactly_where_train_refuses(tmp_path, capsys, broken):
    data = tmp_path / "d"
    write_images(data / "trainA", 2)
    write_images(data / "trainB", 2, seed=1)
    if broken == "empty trainA":
        for p in (data / "trainA").iterdir():
            p.unlink()
    elif broken == "no trainB":
        for p in (data / "trainB").iterdir():
            p.unlink()
        (data / "trainB").rmdir()
    else:
        for p in (data / "trainB").iterdir():
            p.unlink()
        (data / "trainB" / "notes.txt").write_text("not an image")
    assert main(["data", "check", str(data), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and len(report["problems"]) == 1
    assert main(["data", "check", str(data)]) == 1
    text = capsys.readouterr().out
    assert report["problems"][0] in text and "not ok: 1 problem" in text
    if broken != "no trainB":  # the empty folder is listed in the table
        empty = "trainA" if broken == "empty trainA" else "trainB"
        assert report["empty_folders"] == [empty]
        assert any(line.startswith(empty) and "(empty: no images)" in line for line in text.splitlines())
    # train refuses the same dataset with the same message
    assert train(data, tmp_path / "run", "--iters", "1") == 2
    assert one_line_error(capsys) == f"error: {report['problems'][0]}"
    assert not (tmp_path / "run").exists()


def test_data_check_ok_for_what_train_accepts(dataset_dir, capsys):
    assert main(["data", "check", str(dataset_dir)]) == 0
    assert "ok: no unreadable files" in capsys.readouterr().out


# ------------------------------------------------------------------ links, loops, pipes: reported
@posix_only
def test_links_loops_and_pipes_are_reported_not_skipped_silently(dataset_dir, tmp_path, capsys):
    a = dataset_dir / "trainA"
    os.symlink("missing.png", a / "broken.png")
    os.symlink("self.png", a / "self.png")
    os.symlink("..", a / "up")
    os.mkfifo(a / "pipe.png")
    expected = {
        "broken.png": "a broken link to missing.png",
        "pipe.png": "a named pipe (FIFO)",
        "self.png": "a link that loops back on itself",
        "up": "a link to a folder above it",
    }

    assert main(["data", "check", str(dataset_dir), "--json"]) == 1
    skipped = json.loads(capsys.readouterr().out)["skipped"]
    assert len(skipped) == 4
    for entry, (name, why) in zip(skipped, sorted(expected.items())):
        assert entry.startswith(f"{a / name}: {why}")

    run = tmp_path / "run"
    assert train(dataset_dir, run, "--iters", "1") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: 4 entries of the training folders are neither a readable file nor a folder "
        f"(first: {a / 'broken.png'}, a broken link to missing.png): skipped ('unpaired data check' "
        f"lists them; --strict refuses them)"
    ]
    assert train(dataset_dir, tmp_path / "strict", "--iters", "1", "--strict") == 2
    assert "training stops because of --strict" in one_line_error(capsys)

    assert (
        main(
            [
                "translate",
                str(run),
                "--input",
                str(a),
                "--output",
                str(tmp_path / "t"),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "4 input(s) could not be translated" in err
    for name, why in expected.items():
        assert f"{a / name}: not translated, {why}" in err
    assert len(list((tmp_path / "t").iterdir())) == 5  # the readable images were translated


# ------------------------------------------------------------------ checkpoints that are not ours
def test_garbage_truncated_and_empty_checkpoints_are_one_line(run, tmp_path, capsys):
    data, run_dir = run
    good = (run_dir / "checkpoints" / "latest.pt").read_bytes()
    files = {
        "garbage.pt": (np.random.default_rng(0).bytes(5000), "not a PyTorch checkpoint file"),
        "truncated.pt": (good[: len(good) // 2], "a truncated or damaged file"),
        "empty.pt": (b"", "the file is empty"),
    }
    for name, (content, why) in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        expected = f"error: {path} is not an unpaired checkpoint ({why}); pass a checkpoint written by unpaired train"
        assert (
            main(
                [
                    "translate",
                    str(path),
                    "--input",
                    str(data / "testA"),
                    "--output",
                    str(tmp_path / "o"),
                    "--device",
                    "cpu",
                    "--quiet",
                ]
            )
            == 2
        )
        assert one_line_error(capsys) == expected
        resumed = tmp_path / f"resume-{name}"
        (resumed / "checkpoints").mkdir(parents=True)
        (resumed / "checkpoints" / "latest.pt").write_bytes(content)
        assert train(data, resumed, "--iters", "3") == 2
        assert one_line_error(capsys).endswith(f"({why}); pass a checkpoint written by unpaired train")
        assert main(["evaluate", "run", str(resumed), "--data", str(data), "--device", "cpu"]) == 2
        assert one_line_error(capsys).endswith(f"({why}); pass a checkpoint written by unpaired train")
        with pytest.raises(ckpt_io.CheckpointError) as info:
            unpaired.load(path, device="cpu")
        assert "\n" not in str(info.value) and why in str(info.value)
    assert not (tmp_path / "o").exists()


def test_weights_that_do_not_fit_the_method_are_one_line(run, tmp_path, capsys):
    from unpaired.methods import build_model

    data, run_dir = run
    state = ckpt_io.load(run_dir)
    wider = {**state, "config": {**state["config"], "model": {**state["config"]["model"], "ngf": 16}}}
    cyclegan = {**state, "model": build_model(unpaired.preset("cyclegan", crop_size=32, ngf=8, ndf=8)).state_dict()}
    shape = "model.1.weight is 8x3x7x7 in the file but 16x3x7x7 in the model"
    cases = {
        "wider": (wider, shape, "G." + shape),
        "cyclegan": (cyclegan, "missing model.1.weight", "missing G.model.1.weight"),
    }
    for name, (ckpt, in_generator, in_model) in cases.items():
        folder = tmp_path / name
        ckpt_io.save_atomic(ckpt, folder / "checkpoints" / "latest.pt")
        (folder / "config.yaml").write_text(
            (run_dir / "config.yaml").read_text().replace("ngf: 8", "ngf: 16")
            if name == "wider"
            else (run_dir / "config.yaml").read_text()
        )
        assert (
            main(
                [
                    "translate",
                    str(folder),
                    "--input",
                    str(data / "testA"),
                    "--output",
                    str(tmp_path / "o"),
                    "--device",
                    "cpu",
                    "--quiet",
                ]
            )
            == 2
        )
        line = one_line_error(capsys)
        assert "its weights do not fit the cut generator" in line and in_generator in line
        assert main(["train", "--out", str(folder), "--iters", "3", "--quiet"]) == 2
        line = one_line_error(capsys)
        assert "its weights do not fit the cut model" in line and in_model in line
        with pytest.raises(ckpt_io.CheckpointError, match="do not fit"):
            unpaired.load(folder, device="cpu")


def test_weights_only_checkpoint_cannot_be_resumed(run, tmp_path, capsys):
    data, run_dir = run
    state = {k: v for k, v in ckpt_io.load(run_dir).items() if k not in ("optimizers", "rng")}
    ckpt_io.save_atomic(state, tmp_path / "r" / "checkpoints" / "latest.pt")
    (tmp_path / "r" / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    assert main(["train", "--out", str(tmp_path / "r"), "--iters", "3", "--quiet"]) == 2
    assert "cannot be resumed: it has no optimizers, rng" in one_line_error(capsys)


# ------------------------------------------------------------------ refused archives leave nothing
@pytest.mark.parametrize("member", ["../outside.png", "link"])
def test_refused_archive_leaves_no_extract_folder(tmp_path, capsys, member):
    archive = tmp_path / "maps.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(f"maps/train/{member}" if member == "link" else member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        else:
            info.size = 1
        tar.addfile(info, io.BytesIO(b"x") if member != "link" else None)
    assert main(["data", "download", "maps", "--archive", str(archive), "--out", str(tmp_path / "maps")]) == 2
    assert "refusing to extract it" in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.tar.gz"]


# ------------------------------------------------------------------ NaN and inf: stop, save nothing bad
class PoisonWeights(Callback):
    """Turns one generator weight into NaN after iteration ``at``: every later loss is NaN."""

    def __init__(self, at):
        self.at = at

    def on_step_end(self, trainer):
        if trainer.iteration == self.at:
            with torch.no_grad():
                next(trainer.model.G.parameters()).fill_(float("nan"))


def tiny_config(data, **train):
    return unpaired.preset(
        "cut",
        root=str(data),
        crop_size=32,
        num_workers=0,
        device="cpu",
        sample_every=0,
        ngf=8,
        ndf=8,
        n_blocks=2,
        nce_layers=[0, 4, 8, 12],
        projector_dim=32,
        **train,
    )


@pytest.mark.parametrize(
    "log_every, save_every, caught_at", [(5, 5, "mean over iterations 6-10"), (10, 3, "sum over iterations 1-6")]
)
def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(dataset_dir, tmp_path, log_every, save_every, caught_at):
    run = tmp_path / "run"
    trainer = unpaired.Trainer(
        tiny_config(dataset_dir, iters=20, log_every=log_every, save_every=save_every),
        run,
        callbacks=[PoisonWeights(at=save_every + 1)],
        show_progress=False,
    )
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit()
    message = str(info.value)
    assert "\n" not in message and caught_at in message and "= nan" in message
    assert f"still holds iteration {save_every}, the last good one" in message and "lower learning rate" in message
    state = ckpt_io.load(run)
    assert state["progress"]["iteration"] == save_every
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["latest.pt"]


def test_diverging_run_from_the_command_line(dataset_dir, tmp_path, capsys):
    # a learning rate of 1e30 overflows within the first iterations
    assert (
        train(dataset_dir, tmp_path / "run", "--iters", "20", "--set", "train.lr=1e30", "--set", "train.log_every=5")
        == 2
    )
    line = one_line_error(capsys, "error: training diverged: ")
    assert "mean over iterations 1-5" in line and "no checkpoint had been written" in line
    assert not (tmp_path / "run" / "checkpoints" / "latest.pt").exists()


def test_validation_refuses_nan_weights(dataset_dir, tmp_path, monkeypatch):
    import unpaired.evaluate as ev

    monkeypatch.setattr(ev, "cached_folder_features", lambda *a, **k: np.zeros((2, 2048)))  # no Inception needed
    write_images(dataset_dir / "valA", 2)
    write_images(dataset_dir / "valB", 2, seed=1)
    trainer = unpaired.Trainer(
        tiny_config(dataset_dir, iters=6, log_every=10, save_every=100, val_every=3, val_unit="iter"),
        tmp_path / "run",
        callbacks=[PoisonWeights(at=2)],
        show_progress=False,
    )
    with pytest.raises(TrainingDiverged, match="sum over iterations 1-3"):
        trainer.fit()
    assert not (tmp_path / "run" / "checkpoints").exists()  # neither latest.pt nor a NaN best.pt


# ------------------------------------------------------------------ disk full: old files intact
ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(dataset_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert train(dataset_dir, run, "--iters", "2") == 0
    before = (run / "checkpoints" / "latest.pt").read_bytes()
    real_save = torch.save

    def full_disk_save(obj, f):
        real_save({"partial": torch.zeros(10)}, f)
        raise ENOSPC

    monkeypatch.setattr(torch, "save", full_disk_save)
    assert train(dataset_dir, run, "--iters", "4") == 2
    assert one_line_error(capsys) == (
        f"error: could not write {run / 'checkpoints' / 'latest.pt'}: No space left on "
        f"device; free space and resume with the same command"
    )
    monkeypatch.undo()
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["latest.pt"]


def test_disk_full_while_writing_a_sample(dataset_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"

    def full_disk(self, fp, *args, **kwargs):
        open(fp, "wb").write(b"half a png")
        raise ENOSPC

    monkeypatch.setattr(Image.Image, "save", full_disk)
    assert train(dataset_dir, run, "--iters", "2", "--sample-every", "1") == 2
    assert one_line_error(capsys) == (
        f"error: could not write {run / 'samples' / 'iter_0000001.png'}: No space left "
        f"on device; free space and resume with the same command"
    )
    assert list((run / "samples").iterdir()) == []


def test_failed_append_leaves_no_half_line(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"iter": 1}\n')

    class FullFile(io.StringIO):
        def __init__(self, target):
            super().__init__()
            self.target = target

        def write(self, text):
            with open(self.target, "a") as f:
                f.write(text[: len(text) // 2])
            raise ENOSPC

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(outputs, "open", lambda p, mode: FullFile(p), raising=False)
    with pytest.raises(outputs.OutputError, match="No space left on device; free space and resume"):
        outputs.append_line(path, '{"iter": 2}')
    assert path.read_text() == '{"iter": 1}\n'


def test_disk_full_during_report_and_split_leaves_previous_files(run, tmp_path, capsys, monkeypatch):
    data, run_dir = run
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report")]) == 0
    before = (tmp_path / "report" / "results.md").read_text()
    capsys.readouterr()
    real_write_text = type(tmp_path).write_text

    def full_disk_write_text(self, text, *args, **kwargs):
        real_write_text(self, text[:10], *args, **kwargs)
        raise ENOSPC

    monkeypatch.setattr(type(tmp_path), "write_text", full_disk_write_text)
    monkeypatch.setattr(type(tmp_path), "write_bytes", lambda self, data: full_disk_write_text(self, "x"))
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report")]) == 2
    assert one_line_error(capsys) == (
        f"error: could not write {tmp_path / 'report' / 'results.md'}: No space left on "
        f"device; free space and resume with the same command"
    )
    assert (tmp_path / "report" / "results.md").read_text() == before
    assert not [p for p in (tmp_path / "report").iterdir() if p.name.startswith(".")]
    assert main(["data", "split", str(data), "--out", str(tmp_path / "split")]) == 2
    assert "No space left on device; free space and resume with the same command" in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


# ------------------------------------------------------------------ the catch-all
def test_unexpected_error_is_one_line_with_a_log(tmp_path, capsys, monkeypatch):
    import unpaired.cli.experiments as cli

    monkeypatch.setenv("UNPAIRED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("UNPAIRED_DEBUG", "0")

    def broken(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(cli, "cmd_report", broken)
    assert main(["report", "x", "--out", str(tmp_path / "r")]) == 1
    line = one_line_error(capsys, "unpaired: error: ZeroDivisionError: division by zero (full traceback in ")
    log = line.split("full traceback in ")[1].split(";")[0]
    assert line.endswith("; rerun with --debug to see it)") and log.startswith(str(tmp_path / "cache" / "errors"))
    text = open(log).read()
    assert "Traceback" in text and "second line" in text and "unpaired report x --out" in text
    # with a run folder that exists, the log goes there
    (tmp_path / "r").mkdir()
    assert main(["report", "x", "--out", str(tmp_path / "r")]) == 1
    assert f"full traceback in {tmp_path / 'r' / 'error.log'}" in one_line_error(capsys, "unpaired: error: ")
    # --debug (anywhere) shows the traceback instead
    for argv in (["--debug", "report", "x", "--out", "o"], ["report", "x", "--out", "o", "--debug"]):
        with pytest.raises(ZeroDivisionError):
            main(argv)


def test_interrupt_and_user_errors_keep_their_lines(tmp_path, capsys, monkeypatch):
    import unpaired.cli.experiments as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_report", interrupted)
    assert main(["report", "x", "--out", str(tmp_path / "r")]) == 130
    assert one_line_error(capsys, "interrupted") == "interrupted"
    write_images(tmp_path / "fake", 2)
    assert main(["evaluate", "fid", str(tmp_path / "nope"), str(tmp_path / "fake"), "--device", "cpu"]) == 2
    assert one_line_error(capsys) == f"error: {tmp_path / 'nope'} is not a folder"


def test_impossible_tiles_refused_before_any_image(run, tmp_path, capsys):
    data, run_dir = run
    assert (
        main(
            [
                "translate",
                str(run_dir),
                "--input",
                str(data / "testA"),
                "--output",
                str(tmp_path / "t"),
                "--device",
                "cpu",
                "--quiet",
                "--tile",
                "6",
            ]
        )
        == 2
    )
    assert "tile (6) must be a multiple of 4" in one_line_error(capsys)
    assert not (tmp_path / "t").exists()


def test_experiment_row_with_a_set_that_is_not_a_mapping(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text("rows:\n  - {name: a, model: cut, set: 5}\nscales:\n  full: {set: {}}\n")
    assert main(["experiment", str(exp), "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "row a: 'set' must map settings to values" in one_line_error(capsys)


def test_report_on_a_damaged_run_file_is_one_line(run, tmp_path, capsys):
    import shutil

    _, run_dir = run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "summary.json").write_text("{\n oops")
    assert main(["report", str(copy), "--out", str(tmp_path / "rep")]) == 2
    line = one_line_error(capsys)
    assert "a damaged file (JSONDecodeError" in line and str(copy) in line


def test_resume_after_a_kill_mid_write_cleans_up(run, tmp_path, capsys):
    """A kill while a checkpoint or a log line was being written leaves a temporary file and half a
    line: the next run removes the one, drops the other, and goes on."""
    import shutil
    import subprocess
    import sys

    data, run_dir = run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that no longer runs
    stale = copy / "checkpoints" / f".latest.pt.tmp-{dead.pid}"
    stale.write_bytes(b"half a checkpoint")
    with open(copy / "metrics.jsonl", "a") as f:
        f.write('{"iter": 3, "loss": {"G": 1.')
    assert train(data, copy, "--iters", "3") == 0
    err = capsys.readouterr().err
    assert not stale.exists() and "removed 1 temporary file(s)" in err and "dropped 1 damaged line(s)" in err
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iter"] for line in lines if '"loss"' in line][-1] == 3
