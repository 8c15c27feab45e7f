import json
import math
import random

import torch
from conftest import TINY_NETS

from unpaired import checkpoint as ckpt_io
from unpaired.cli import main
from unpaired.config import resolve
from unpaired.inference.generator import load_generator
from unpaired.methods import build_model, preset
from unpaired.models import param_counts
from unpaired.models.cyclegan import ImagePool

FAST = ["--size", "32", "--num-workers", "0", "--quiet", "--sample-every", "0", "--set", "train.log_every=1"]


def test_cyclegan_networks_and_defaults():
    cfg = resolve(preset("cyclegan"))
    model = build_model(cfg)
    assert param_counts(model) == {"G_A": 11_378_179, "G_B": 11_378_179, "D_A": 2_764_737, "D_B": 2_764_737}
    m = cfg.model
    assert (m.lambda_cycle, m.cycle_identity, m.pool_size, m.gan_mode) == (10.0, 0.5, 50, "lsgan")
    assert (cfg.train.epochs, cfg.train.epochs_decay, cfg.train.lr, cfg.train.beta1) == (100, 100, 2e-4, 0.5)


def test_image_pool():
    random.seed(0)
    pool = ImagePool(3)
    first = torch.arange(3.0).reshape(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling up: images pass through
    new = torch.arange(3.0, 203.0).reshape(200, 1, 1, 1)  # 200 distinct images, numbered 3..202
    out = pool.query(new).flatten().tolist()
    kept = [img.item() for img in pool.images]
    # nothing duplicated or lost: each image came back exactly once or is still in the (full) pool
    assert len(kept) == 3 and sorted(out + kept) == list(range(203))
    swapped = [i for i, v in enumerate(out) if v != 3 + i]
    assert all(out[i] < 3 + i for i in swapped)  # a swap returns an older image, never a later one
    # with p = 0.5 about half the 200 queries swap (binomial: 100 +- 7; the bounds are 4 sd away)
    assert 70 <= len(swapped) <= 130
    state = pool.get_extra_state()
    other = ImagePool(3)
    other.set_extra_state(state)
    assert all(torch.equal(a, b) for a, b in zip(pool.images, other.images))


def test_cyclegan_trains_resumes_exactly_and_translates(dataset_dir, tmp_path):
    straight, resumed = tmp_path / "s", tmp_path / "r"
    args = ["--model", "cyclegan", "--data", str(dataset_dir), *FAST, *TINY_NETS[:6], "--set", "model.pool_size=2"]
    assert main(["train", *args, "--out", str(straight), "--iters", "6"]) == 0
    assert main(["train", *args, "--out", str(resumed), "--iters", "3"]) == 0
    assert main(["train", *args, "--out", str(resumed), "--iters", "6"]) == 0
    a, b = ckpt_io.load(straight), ckpt_io.load(resumed)
    for k in a["model"]:
        if torch.is_tensor(a["model"][k]):
            assert torch.equal(a["model"][k], b["model"][k]), k
    losses = [json.loads(line)["loss"] for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert {"D_A", "D_B", "G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B"} <= set(losses[0])
    assert all(math.isfinite(v) for e in losses for v in e.values())
    G, cfg = load_generator(straight)
    torch.testing.assert_close(G.state_dict()["model.1.weight"], a["model"]["G_A.model.1.weight"])
    assert G(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
