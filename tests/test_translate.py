import numpy as np
import pytest
from PIL import Image

from unpaired.cli import main

from conftest import TINY_NETS


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("t")
    from conftest import write_images
    write_images(root / "data" / "trainA", 2)
    write_images(root / "data" / "trainB", 2, seed=5)
    assert main(["train", "--model", "cut", "--data", str(root / "data"), "--out", str(root / "run"),
                 "--size", "32", "--iters", "1", "--quiet", "--num-workers", "0", *TINY_NETS]) == 0
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
    assert main(["translate", "--checkpoint", str(tiny_run), "--input", str(src), "--output", str(out),
                 "--device", "cpu", "--quiet"]) == 0
    sizes = {p.relative_to(out).as_posix(): Image.open(p).size for p in out.rglob("*.png")}
    assert sizes == {"gray.png": (97, 131), "nested/alpha.png": (300, 200), "photo.png": (1024, 768),
                     "tiny.png": (5, 3)}


def test_single_file_and_checkpoint_file(tiny_run, tmp_path):
    Image.new("RGB", (20, 30), (200, 10, 10)).save(tmp_path / "one.jpg")
    out = tmp_path / "out"
    assert main(["translate", "--checkpoint", str(tiny_run / "checkpoints" / "latest.pt"),
                 "--input", str(tmp_path / "one.jpg"), "--output", str(out), "--quiet", "--format", "jpg"]) == 0
    assert [p.name for p in out.iterdir()] == ["one.jpg"] and Image.open(out / "one.jpg").size == (20, 30)


def test_bad_files_reported_others_written(tiny_run, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "good.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    assert main(["translate", "--checkpoint", str(tiny_run), "--input", str(src), "--output", str(out), "--quiet"]) == 1
    assert (out / "good.png").exists() and not (out / "broken.png").exists()
    assert "broken.jpg" in capsys.readouterr().err


def test_stem_collision_refused(tiny_run, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (8, 8)).save(src / "a.png")
    Image.new("RGB", (8, 8)).save(src / "a.jpg")
    assert main(["translate", "--checkpoint", str(tiny_run), "--input", str(src), "--output", str(tmp_path / "o")]) == 2
    assert "would both be written" in capsys.readouterr().err


def test_missing_checkpoint_explained(tmp_path, capsys):
    assert main(["translate", "--checkpoint", str(tmp_path), "--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "no latest checkpoint" in capsys.readouterr().err
