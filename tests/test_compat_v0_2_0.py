"""Checkpoints, exports and a half-finished run written by unpaired 0.2.0 (tests/fixtures/v0_2_0,
made by its make_fixtures.py before the package was reorganised) still load, give the same pixels,
and resume bit-exactly."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

import unpaired
from unpaired.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v0_2_0"
EXPECTED = torch.load(FIXTURES / "expected_outputs.pt")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_files_written_by_0_2_0_translate_to_the_same_pixels(name):
    path = FIXTURES / (name if "." in name else f"{name}.pt")
    translator = unpaired.load(path, device="cpu")
    out = translator.translate_tensor(torch.load(FIXTURES / "input.pt"))
    assert torch.equal(out, EXPECTED[name]), (out - EXPECTED[name]).abs().max()


def test_a_run_started_by_0_2_0_resumes_bit_exactly(tmp_path):
    expected = json.loads((FIXTURES / "resume_expected.json").read_text())
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "half_run", run)
    args = [
        "train",
        "--data",
        str(FIXTURES / "data"),
        "--out",
        str(run),
        "--iters",
        str(expected["iterations"]),
        "--quiet",
        *expected["args"],
    ]
    assert main(args) == 0
    state = torch.load(run / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    assert state["progress"]["iteration"] == expected["iterations"]
    h = hashlib.sha256()
    for k in sorted(state["model"]):
        h.update(k.encode())
        h.update(state["model"][k].detach().cpu().contiguous().numpy().tobytes())
    assert h.hexdigest() == expected["model_sha256"]
