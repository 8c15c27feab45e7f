"""Robust image loading: every file either loads as an 8-bit RGB/L image or raises ImageError naming it."""

import io
import json

import numpy as np
import pytest
import torch
from conftest import write_images
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from unpaired.cli import main
from unpaired.data import ImageError, SingleImageDataset, load_image
from unpaired.data.datasets import Augment, augment
from unpaired.data.images import decode_image

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
AUG = Augment(load_size=36, crop_size=32, flip=True)


def check_tensor(im, channels):
    assert im.mode == ("RGB" if channels == 3 else "L")
    x = augment(im, AUG, np.random.default_rng(0))
    assert x.shape == (channels, 32, 32) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1


@SETTINGS
@given(
    data=st.binary(max_size=2048),
    ext=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".tif", ".webp", ".txt"]),
    channels=st.sampled_from([1, 3]),
)
def test_random_bytes_never_crash(tmp_path, data, ext, channels):
    path = tmp_path / f"file{ext}"
    path.write_bytes(data)
    try:
        im = load_image(path, channels)
    except ImageError as e:
        assert str(path) in str(e)
    else:
        check_tensor(im, channels)


def header_then_noise(fmt: str, noise: bytes) -> bytes:
    """A valid image's first bytes followed by garbage: exercises the decoders, not just format sniffing."""
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(buf, format=fmt)
    good = buf.getvalue()
    return good[: max(8, len(good) // 3)] + noise


@SETTINGS
@given(fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]), noise=st.binary(max_size=512))
def test_truncated_and_garbled_files_raise_image_error(tmp_path, fmt, noise):
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(header_then_noise(fmt, noise))
    try:
        check_tensor(load_image(path, 3), 3)
    except ImageError as e:
        assert str(path) in str(e)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_truncated_files_raise_image_error(tmp_path, fmt):
    """A whole file loads; the same file cut at half or at 90% of its bytes is an ImageError naming it,
    never an image with a grey or black remainder (Pillow's LOAD_TRUNCATED_IMAGES would give one)."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(buf, format=fmt)
    data = buf.getvalue()
    whole = tmp_path / f"whole.{fmt.lower()}"
    whole.write_bytes(data)
    check_tensor(load_image(whole, 3), 3)
    for frac in (0.5, 0.9):
        path = tmp_path / f"cut{int(frac * 100)}.{fmt.lower()}"
        path.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(ImageError, match="corrupt or truncated") as e:
            load_image(path, 3)
        assert str(path) in str(e.value)
        with pytest.raises(ImageError, match="upload.bin"):
            decode_image(data[: int(len(data) * frac)], "upload.bin")


MODES_FORMATS = [
    ("1", "PNG"),
    ("L", "PNG"),
    ("P", "PNG"),
    ("RGB", "PNG"),
    ("RGBA", "PNG"),
    ("LA", "PNG"),
    ("I;16", "PNG"),
    ("I", "TIFF"),
    ("F", "TIFF"),
    ("CMYK", "JPEG"),
    ("CMYK", "TIFF"),
    ("L", "JPEG"),
    ("RGB", "JPEG"),
    ("RGB", "BMP"),
    ("P", "GIF"),
    ("RGB", "WEBP"),
    ("RGBA", "WEBP"),
    ("YCbCr", "JPEG"),
]


@SETTINGS
@given(
    mode_format=st.sampled_from(MODES_FORMATS),
    w=st.integers(1, 300),
    h=st.integers(1, 300),
    channels=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**16),
)
def test_valid_images_of_every_mode_and_size_load(tmp_path, mode_format, w, h, channels, seed):
    mode, fmt = mode_format
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    elif mode == "F":
        im = Image.fromarray(rng.random((h, w), dtype=np.float32))
    elif mode == "I":
        im = Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.int32))
    else:
        im = rgb.convert(mode)
    path = tmp_path / f"x.{fmt.lower()}"
    im.save(path, format=fmt)
    check_tensor(load_image(path, channels), channels)


def test_sixteen_bit_and_cmyk_and_exif(tmp_path):
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "white16.png")
    assert np.asarray(load_image(tmp_path / "white16.png", 1)).min() == 255
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "red.jpg")  # pure red in CMYK
    r, g, b = np.asarray(load_image(tmp_path / "red.jpg")).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), "white").save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").size == (20, 40)


@pytest.mark.parametrize("content,message", [(b"", "empty"), (b"hello, not an image", "not an image")])
def test_messages_name_file_and_problem(tmp_path, content, message):
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=message) as e:
        load_image(p)
    assert str(p) in str(e.value)


def test_truncated_png_message(tmp_path):
    write_images(tmp_path, 1, size=(64, 64))
    p = tmp_path / "000.png"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(p)


def test_training_skips_corrupt_files_and_reports_each_once(tmp_path, capsys):
    data = tmp_path / "data"
    write_images(data / "trainA", 19, size=(40, 40), seed=1)
    write_images(data / "trainB", 19, size=(40, 40), seed=2)
    (data / "trainA" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")  # 1 of 20 = 5%
    (data / "trainB" / "empty.png").write_bytes(b"")
    run = tmp_path / "run"
    args = [
        "train",
        "--model",
        "fastcut",
        "--data",
        str(data),
        "--out",
        str(run),
        "--size",
        "32",
        "--quiet",
        "--num-workers",
        "2",
        "--sample-every",
        "0",
        "--iters",
        "40",
        "--set",
        "model.ngf=8",
        "--set",
        "model.n_blocks=1",
        "--set",
        "model.ndf=8",
        "--set",
        "model.nce_layers=[0,4,8]",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("broken.jpg") == 1 and err.count("empty.png") == 1  # 2 epochs, both files hit, each reported once
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iteration"] == 40 and len(summary["skipped_files"]) == 2
    strict = args[:6] + [str(tmp_path / "strict")] + args[7:] + ["--strict"]
    assert main(strict) == 2
    assert "--strict" in capsys.readouterr().err


def test_images_smaller_than_crop_warn_once(tmp_path, capsys):
    data = tmp_path / "data"
    write_images(data / "trainA", 3, size=(20, 12), seed=1)
    write_images(data / "trainB", 3, size=(64, 64), seed=2)
    assert (
        main(
            [
                "train",
                "--model",
                "fastcut",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "r"),
                "--size",
                "32",
                "--quiet",
                "--num-workers",
                "0",
                "--sample-every",
                "0",
                "--iters",
                "4",
                "--set",
                "model.ngf=8",
                "--set",
                "model.n_blocks=1",
                "--set",
                "model.nce_layers=[0,4,8]",
            ]
        )
        == 0
    )
    assert capsys.readouterr().err.count("smaller than the 32 px crop") == 1
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["images_smaller_than_crop"] == 3


def test_single_image_sampling(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (240, 240, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    ds = SingleImageDataset(tmp_path / "a.png", tmp_path / "b.png", crop_size=32, batch_size=8, seed=3)
    batch = ds[5]
    assert batch["A"].shape == (8, 3, 32, 32) and batch["B"].shape == (8, 3, 32, 32)
    assert torch.equal(ds[5]["A"], batch["A"]) and not torch.equal(ds[6]["A"], batch["A"])
    sizes = set()
    for it in range(40):
        x, boxes = ds.crops("A", np.random.default_rng(it))
        w, h = boxes[0][2], boxes[0][3]
        assert all(b[2:] == (w, h) for b in boxes)  # one zoom per minibatch
        assert 100 - 1 <= w <= 300 and 66 - 1 <= h <= 200  # zoom in [1/3, 1] per axis
        cells = {(b[0] // 32, b[1] // 32) for b in boxes}
        assert len(cells) == min(8, (w // 32) * (h // 32))  # different places while there are enough
        sizes.add((w, h))
    assert len(sizes) > 30
    Image.new("RGB", (20, 20)).save(tmp_path / "tiny.png")
    with pytest.warns(UserWarning, match="smaller than the 32 px crop"):
        tiny = SingleImageDataset(tmp_path / "tiny.png", tmp_path / "b.png", crop_size=32, batch_size=2)
    assert tiny[0]["A"].shape == (2, 3, 32, 32)
