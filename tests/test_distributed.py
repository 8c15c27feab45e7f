"""torchrun with 2 CPU processes (gloo) makes the same update as one process with their two images."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import TINY_NETS

from unpaired import checkpoint as ckpt_io
from unpaired.cli import main

# Adam divides by |gradient|: a parameter whose true gradient is 0 (a conv bias before instance
# norm) gets +-lr steps from rounding noise of either sign. A large epsilon makes the update linear
# in the gradient, so the comparison tests the gradients each setup averages, to float tolerance.
ARGS = [
    "--size",
    "32",
    "--num-workers",
    "0",
    "--quiet",
    "--sample-every",
    "0",
    "--iters",
    "2",
    "--set",
    "train.log_every=1",
    "--set",
    "train.adam_eps=1.0",
    *TINY_NETS,
]


# Each rank trains through the package's CLI, then lists its threads: none of gloo's may be left. A rank
# that exits with them alive aborts about 1 run in 5 ("terminate called without an active exception":
# a gloo thread frees its last collectives' tensors after the interpreter began to shut down).
RANK = """import os, sys
from unpaired.cli import main
rc = main(sys.argv[1:])
names = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
with open(os.path.join(os.path.dirname(__file__), "threads" + os.environ["RANK"]), "w") as f:
    f.write(" ".join(names))
sys.exit(rc)
"""


@pytest.mark.parametrize("model", ["cut", "cyclegan"])
def test_two_processes_equal_one_process_with_both_images(dataset_dir, tmp_path, model):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    one, two = tmp_path / "one", tmp_path / "two"
    extra = ARGS if model == "cut" else ARGS[: -len(TINY_NETS)] + TINY_NETS[:6]  # no PatchNCE options
    assert (
        main(
            [
                "train",
                "--model",
                model,
                "--data",
                str(dataset_dir),
                "--out",
                str(one),
                "--batch-size",
                "2",
                "--device",
                "cpu",
                *extra,
            ]
        )
        == 0
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rank_script = tmp_path / "rank.py"
    rank_script.write_text(RANK)
    res = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            str(rank_script),
            "train",
            "--model",
            model,
            "--data",
            str(dataset_dir),
            "--out",
            str(two),
            "--batch-size",
            "1",
            "--device",
            "cpu",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    if os.path.isdir("/proc/self/task"):  # Linux: each rank left the process group and joined gloo's threads
        listed = [(tmp_path / f"threads{rank}").read_text() for rank in (0, 1)]
        assert not any("gloo" in names for names in listed), listed
    a, b = ckpt_io.load(one), ckpt_io.load(two)
    assert a["progress"] == {"epoch": 0, "batch": 2, "iteration": 2, "processes": 1}
    assert b["progress"] == {"epoch": 0, "batch": 2, "iteration": 2, "processes": 2}
    for k, v in a["model"].items():
        if torch.is_tensor(v) and v.is_floating_point():
            # 2 updates of at most lr = 2e-4 each: 1e-6 is float32 rounding, not a different update
            torch.testing.assert_close(b["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    # rank 0 wrote the summary, and it says how many processes trained
    summaries = [json.loads((run / "summary.json").read_text()) for run in (one, two)]
    assert [(s["processes"], s["iteration"]) for s in summaries] == [(1, 2), (2, 2)]
