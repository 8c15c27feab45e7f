import json

import numpy as np
import pytest
from conftest import SHARED_DATA, fake_people2outline, write_images
from PIL import Image

from unpaired.cli import main
from unpaired.data.splits import SplitError, split_dataset

P2O = SHARED_DATA / "people2outline"


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def mean_saturation(folder):
    return float(np.mean([np.asarray(Image.open(p).convert("HSV"))[..., 1].mean() for p in folder.iterdir()]))


@pytest.mark.parametrize("source", ["people2outline", "synthetic"])
def test_people2outline_split(tmp_path, source):
    """The real data set when ../shared is beside the clone (exact counts), else a synthetic folder of
    the same layout: the same properties (no leakage, kept test split, unpaired train, A/B by content,
    reproducible bytes)."""
    if source == "people2outline" and not P2O.is_dir():
        pytest.skip("../shared/data/people2outline is not available")
    folder = P2O if source == "people2outline" else fake_people2outline(tmp_path / "p2o")
    out, again = tmp_path / "a", tmp_path / "b"
    assert main(["data", "split", str(folder), "--out", str(out)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    c = m["counts"]
    if source == "people2outline":
        assert c == {"trainA": 42, "trainB": 42, "valA": 16, "valB": 16, "testA": 55, "testB": 55}
    else:  # 24 train pairs: some kept whole for validation, the rest halved into unpaired A and B
        assert c["testA"] == c["testB"] == 7 and c["valA"] == c["valB"] >= 1
        assert abs(c["trainA"] - c["trainB"]) <= 1 and c["trainA"] + c["trainB"] + c["valA"] == 24
    src = {rel: info["source"] for rel, info in m["files"].items()}
    by_split = {s: {v for k, v in src.items() if k.startswith(s)} for s in ("train", "val", "test")}
    assert not (by_split["train"] & by_split["val"]) and not (by_split["train"] & by_split["test"])
    assert not (by_split["val"] & by_split["test"])
    assert all(v.startswith("test/") for v in by_split["test"])  # the source's test split is kept
    train_a = {v for k, v in src.items() if k.startswith("trainA/")}
    train_b = {v for k, v in src.items() if k.startswith("trainB/")}
    assert not (train_a & train_b)  # truly unpaired training set
    assert names(out / "valA") == names(out / "valB") and names(out / "testA") == names(out / "testB")
    # A = colour photos, B = black-on-white outline drawings (saturation ~0)
    for split in ("train", "val", "test"):
        assert mean_saturation(out / f"{split}A") > 10 > 1 > mean_saturation(out / f"{split}B")
    # reproducible: a second run elsewhere gives byte-identical files and manifest
    assert main(["data", "split", str(folder), "--out", str(again)]) == 0
    assert (out / "manifest.json").read_bytes() == (again / "manifest.json").read_bytes()
    assert all((out / rel).read_bytes() == (again / rel).read_bytes() for rel in m["files"])


def make_pairs(folder, n, size=(64, 32), seed=0):
    """Side-by-side pairs: left half red-ish (A), right half blue-ish (B)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = np.zeros((size[1], size[0], 3), np.uint8)
        arr[:, : size[0] // 2, 0] = rng.integers(150, 256)
        arr[:, size[0] // 2 :, 2] = rng.integers(150, 256)
        Image.fromarray(arr).save(folder / f"{i + 1}.jpg", quality=95)


def test_pix2pix_val_becomes_test_and_rerun_rules(tmp_path):
    make_pairs(tmp_path / "maps" / "train", 20)
    make_pairs(tmp_path / "maps" / "val", 6, seed=1)
    out = tmp_path / "out"
    m, written = split_dataset([tmp_path / "maps"], out, val=0.2)
    assert written and m["origin"]["test"] == "source val/"
    # val = round(0.2 * 26 pairs) = 5; the other 15 train pairs give 8 A halves and 7 B halves
    assert m["counts"] == {"trainA": 8, "trainB": 7, "valA": 5, "valB": 5, "testA": 6, "testB": 6}
    a = np.asarray(Image.open(next((out / "trainA").iterdir())))
    b = np.asarray(Image.open(next((out / "trainB").iterdir())))
    assert a.shape == (32, 32, 3) and a[..., 0].mean() > 100 > a[..., 2].mean()
    assert b[..., 2].mean() > 100 > b[..., 0].mean()
    assert split_dataset([tmp_path / "maps"], out, val=0.2) == (m, False)  # same request: nothing to do
    with pytest.raises(SplitError, match="different split"):
        split_dataset([tmp_path / "maps"], out, val=0.2, seed=1)
    m2, written = split_dataset([tmp_path / "maps"], out, val=0.2, seed=1, force=True)
    assert written and m2["request"]["seed"] == 1
    assert json.loads((out / "manifest.json").read_text()) == m2


def test_keep_pairs_and_direction(tmp_path):
    make_pairs(tmp_path / "src", 10)
    m, _ = split_dataset([tmp_path / "src"], tmp_path / "o", val=0.1, test=0.1, keep_pairs=True, direction="BtoA")
    assert m["counts"]["trainA"] == m["counts"]["trainB"] == 8
    a = np.asarray(Image.open(next((tmp_path / "o" / "trainA").iterdir())))
    assert a[..., 2].mean() > 100 > a[..., 0].mean()  # BtoA: the right (blue) half is A


def test_folders_tree_keeps_test_and_copies_bytes(tmp_path):
    src = tmp_path / "h2z"
    write_images(src / "trainA", 10, seed=1, ext="jpg")
    write_images(src / "trainB", 8, seed=2)
    write_images(src / "testA", 3, seed=3)
    write_images(src / "testB", 2, seed=4)
    m, _ = split_dataset([src], tmp_path / "o", val=0.2)
    # fractions are of all images of a domain: round(0.2 * 13) = 3 for A, round(0.2 * 10) = 2 for B
    assert m["counts"] == {"trainA": 7, "trainB": 6, "valA": 3, "valB": 2, "testA": 3, "testB": 2}
    assert m["origin"]["testA"] == "source"
    for rel, info in m["files"].items():
        assert (tmp_path / "o" / rel).read_bytes() == (src / info["source"]).read_bytes()


def test_two_folders_given_separately(tmp_path):
    write_images(tmp_path / "photos", 10, seed=1)
    write_images(tmp_path / "drawings", 10, seed=2, mode="L")
    m, _ = split_dataset([tmp_path / "photos", tmp_path / "drawings"], tmp_path / "o")
    assert m["counts"] == {"trainA": 8, "trainB": 8, "valA": 1, "valB": 1, "testA": 1, "testB": 1}
    assert all(Image.open(p).mode == "L" for p in (tmp_path / "o" / "trainB").iterdir())


def test_errors_are_explained(tmp_path, capsys):
    write_images(tmp_path / "narrow", 3, size=(40, 40))
    with pytest.raises(SplitError, match="side-by-side"):
        split_dataset([tmp_path / "narrow"], tmp_path / "o1", layout="paired")
    write_images(tmp_path / "one" / "trainA", 3)
    (tmp_path / "one" / "trainB").mkdir()
    with pytest.raises(SplitError, match="domain B"):
        split_dataset([tmp_path / "one"], tmp_path / "o2")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    write_images(tmp_path / "one" / "trainB", 3)
    assert main(["data", "split", str(tmp_path / "one"), "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "x.txt").read_text() == "mine"


def test_unreadable_sources_are_all_reported_and_left_out(tmp_path, capsys):
    write_images(tmp_path / "src" / "trainA", 10, seed=1)
    write_images(tmp_path / "src" / "trainB", 10, seed=2)
    (tmp_path / "src" / "trainA" / "zz_broken.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "src" / "trainB" / "zz_empty.jpg").write_bytes(b"")
    assert main(["data", "split", str(tmp_path / "src"), "--out", str(tmp_path / "o"), "--seed", "1"]) == 0
    err = capsys.readouterr().err
    assert "2 unreadable" in err and "zz_broken.png" in err and "zz_empty.jpg" in err
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert len(m["unreadable"]) == 2 and sum(m["counts"].values()) == 20
    assert not any("zz_" in rel for rel in m["files"])


def test_data_check_reports_unreadable_and_cross_split_duplicates(tmp_path, capsys):
    write_images(tmp_path / "d" / "trainA", 3, seed=1)
    write_images(tmp_path / "d" / "testA", 2, seed=2, mode="L")
    (tmp_path / "d" / "testA" / "copy.png").write_bytes((tmp_path / "d" / "trainA" / "001.png").read_bytes())
    (tmp_path / "d" / "testA" / "bad.jpg").write_bytes(b"junk")
    assert main(["data", "check", str(tmp_path / "d"), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    counts = {f["name"]: (f["images"], f["modes"]) for f in rep["folders"]}
    assert counts == {"testA": (3, {"L": 2, "RGB": 1}), "trainA": (3, {"RGB": 3})}
    assert len(rep["unreadable"]) == 1 and "bad.jpg" in rep["unreadable"][0] and "not an image" in rep["unreadable"][0]
    assert rep["duplicates_across_folders"] == [["testA/copy.png", "trainA/001.png"]]
    (tmp_path / "d" / "testA" / "copy.png").unlink()
    (tmp_path / "d" / "testA" / "bad.jpg").unlink()
    assert main(["data", "check", str(tmp_path / "d")]) == 1  # no trainB, no testB: train and scoring refuse it
    assert "trainB does not exist" in capsys.readouterr().out
    write_images(tmp_path / "d" / "trainB", 2, seed=3)
    write_images(tmp_path / "d" / "testB", 2, seed=4)
    assert main(["data", "check", str(tmp_path / "d")]) == 0
    assert "ok: no unreadable files" in capsys.readouterr().out
