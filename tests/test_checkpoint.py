import errno
import random

import numpy as np
import pytest
import torch

from unpaired import checkpoint as ckpt_io
from unpaired.files import OutputError


def test_save_atomic_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    ckpt_io.save_atomic({"format": 1, "config": {}, "x": torch.ones(3)}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OutputError, match=f"could not write {path}: No space left on device; free space"):
        ckpt_io.save_atomic({"x": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(ckpt_io.load(path)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind


def test_rng_state_round_trip_through_file(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    ckpt_io.save_atomic({"format": 1, "config": {}, "rng": ckpt_io.rng_state()}, tmp_path / "c.pt")
    want = (torch.rand(3), np.random.rand(3), random.random())
    ckpt_io.set_rng_state(ckpt_io.load(tmp_path / "c.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2] == got[2]


def test_foreign_file_rejected(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ckpt_io.CheckpointError, match="not an unpaired checkpoint"):
        ckpt_io.load(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ckpt_io.CheckpointError, match=r"junk.pt is not an unpaired checkpoint \(not a PyTorch"):
        ckpt_io.load(tmp_path / "junk.pt")
