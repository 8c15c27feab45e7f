import numpy as np
import pytest
import torch
from conftest import write_images
from PIL import Image

from unpaired.data import EpochBatchSampler, ImageError, UnalignedDataset, load_image


def make(root, channels=3, crop=32, n_epochs=2):
    return UnalignedDataset(root, channels, 36, crop, True, seed=0, n_epochs=n_epochs)


def crops(path, channels, load, crop):
    """Every crop (and its mirror image) of the image resized to load x load, as pixel / 127.5 - 1."""
    im = load_image(path, channels).resize((load, load), Image.BICUBIC)
    arr = np.asarray(im, dtype=np.float32).reshape(load, load, channels).transpose(2, 0, 1) / 127.5 - 1
    full = torch.from_numpy(arr)
    for y in range(load - crop + 1):
        for x in range(load - crop + 1):
            window = full[:, y : y + crop, x : x + crop]
            yield window
            yield window.flip(-1)


@pytest.mark.parametrize("channels", [1, 3])
def test_samples_are_crops_of_the_resized_image_in_minus_one_to_one(dataset_dir, channels):
    """Each sample is a 32 px crop (maybe mirrored) of its image resized to 36 px, scaled by
    pixel / 127.5 - 1: 0 -> -1 and 255 -> 1 (a [0, 1] or mean/std scaling would not match)."""
    ds = make(dataset_dir, channels)
    assert ds.epoch_length == 5
    for pos in range(5):
        s = ds[(0, pos)]
        for side in "AB":
            assert s[side].shape == (channels, 32, 32)
            assert any(torch.equal(s[side], c) for c in crops(s[f"{side}_path"], channels, 36, 32)), (side, pos)


def test_samples_are_deterministic_and_vary(dataset_dir):
    ds1, ds2 = make(dataset_dir), make(dataset_dir)
    assert torch.equal(ds1[(3, 2)]["A"], ds2[(3, 2)]["A"])
    # each epoch visits every A image exactly once
    assert sorted(ds1[(1, p)]["A_path"] for p in range(5)) == sorted(str(p) for p in ds1.paths["A"])
    orders = {tuple(ds1[(e, p)]["A_path"] for p in range(5)) for e in range(4)}
    assert len(orders) > 1


def test_decay_phase_resizes_to_crop(dataset_dir):
    ds = make(dataset_dir, n_epochs=1)
    s = ds[(1, 0)]
    full = load_image(s["A_path"]).resize((32, 32), Image.BICUBIC)
    want = torch.from_numpy(np.asarray(full, dtype=np.float32).transpose(2, 0, 1)) / 127.5 - 1
    assert torch.equal(s["A"], want) or torch.equal(s["A"], want.flip(-1))


def test_modes_convert(tmp_path):
    p = write_images(tmp_path, 1, mode="RGBA")[0]
    assert load_image(p, 3).mode == "RGB" and load_image(p, 1).mode == "L"
    # a fully transparent image becomes white, not the colour hidden under the alpha
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    assert np.asarray(load_image(tmp_path / "clear.png")).min() == 255
    arr = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    Image.fromarray(arr).save(tmp_path / "deep.png")
    deep = np.asarray(load_image(tmp_path / "deep.png", 1))
    assert deep.max() == round(63000 / 65535 * 255) and deep.min() == 0  # scaled, not clipped at 255


def test_missing_and_empty_folders_are_explained(tmp_path):
    write_images(tmp_path / "trainA", 2)
    with pytest.raises(ImageError, match="trainB"):
        make(tmp_path)
    (tmp_path / "trainB").mkdir()
    with pytest.raises(ImageError, match="contains no images"):
        make(tmp_path)


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="bad.png"):
        load_image(bad)


def test_epoch_batch_sampler_resumes_mid_epoch():
    s = EpochBatchSampler(epoch_length=5, batch_size=2)
    it = iter(s)
    first = [next(it) for _ in range(5)]
    assert first[:4] == [[(0, 0), (0, 1)], [(0, 2), (0, 3)], [(0, 4)], [(1, 0), (1, 1)]]
    resumed = iter(EpochBatchSampler(5, 2, start_epoch=1, start_batch=0))
    assert next(resumed) == first[3] and next(resumed) == first[4]
