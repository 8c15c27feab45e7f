"""--compile auto: which step it chooses, and the reason it logs."""

import torch

from unpaired.training.step import choose_mode


def test_auto_is_eager_without_a_measurement_and_says_why():
    for device in ("cpu", "cuda"):
        mode, why = choose_mode("auto", torch.device(device))
        assert mode == "off"
        assert why.startswith(f"auto on {device}:") and len(why) > 40
    assert "gpu_check" in choose_mode("auto", torch.device("cuda"))[1]
    assert choose_mode("compile", torch.device("cpu")) == ("compile", "asked for")
