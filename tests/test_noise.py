"""SinCUT's eval-mode noise: a deterministic, stateless function of absolute pixel coordinates."""

import threading

import numpy as np
import torch

from unpaired.nets.noise import coordinate_noise, hash_coordinates
from unpaired.nets.stylegan2 import NoiseInjection, StyleGAN2Generator
from unpaired.tiling import translate_tiled


def test_noise_is_standard_normal_and_uncorrelated():
    z = coordinate_noise(None, 512, 512, seed=0)[0, 0].double()
    assert z.shape == (512, 512)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float(((z - z.mean()) ** 4).mean()) - 3) < 0.1  # normal kurtosis, not uniform's 1.8
    for dy, dx in ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (0, 64), (64, 0)):
        a, b = z[: 512 - dy, : 512 - dx].flatten().numpy(), z[dy:, dx:].flatten().numpy()
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.01, (dy, dx)
    # the hash gives every pixel of the field its own value
    h = hash_coordinates(torch.arange(512)[:, None], torch.arange(512)[None, :], 0)
    assert h.unique().numel() == 512 * 512 and int(h.min()) >= 0 and int(h.max()) < 2**31


def test_noise_depends_only_on_absolute_position_and_seed():
    whole = coordinate_noise(None, 200, 300, seed=3)
    part = coordinate_noise((70, 130), 50, 90, seed=3)
    assert torch.equal(whole[..., 70:120, 130:220], part)
    assert torch.equal(part, coordinate_noise(torch.tensor([70, 130]), 50, 90, seed=3))  # tensor origin
    assert torch.equal(whole, coordinate_noise((0, 0), 200, 300, seed=3))
    other = coordinate_noise(None, 200, 300, seed=4)
    assert abs(np.corrcoef(whole.flatten().numpy(), other.flatten().numpy())[0, 1]) < 0.02
    half = coordinate_noise(None, 64, 64, seed=3, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), whole[..., :64, :64], atol=0.02)


def noisy_generator(n_down: int = 1) -> StyleGAN2Generator:
    torch.manual_seed(0)
    G = StyleGAN2Generator(ngf=4, n_blocks=4, n_down=n_down, crop_size=64).eval()
    for m in G.modules():  # noise weights start at 0: make the noise matter
        if isinstance(m, NoiseInjection):
            m.weight.data.fill_(0.5)
    return G


def test_eval_is_deterministic_training_draws_noise():
    G = noisy_generator()
    x = torch.rand(2, 3, 48, 64) * 2 - 1
    with torch.no_grad():
        y = G(x)
        assert torch.equal(y, G(x))
        assert float((G(x, origin=(8, 16)) - y).abs().max()) > 0.1  # the origin moves the noise
        G.train()
        assert not torch.equal(G(x), G(x))


def test_tiles_agree_with_whole_image_at_two_downsamplings():
    G = noisy_generator(n_down=2)  # noise layers at 1/2 and full resolution: origins scale per layer
    assert G.multiple == 4
    x = torch.rand(1, 3, 260, 300) * 2 - 1
    with torch.no_grad():
        whole = G(x)
    tiled = translate_tiled(G, x, tile=192, overlap=128)
    assert float((tiled - whole).abs().max()) < 1e-4


def test_concurrent_calls_share_no_state():
    """Threads translating different tiles at once get what each gets alone (the old noise was
    placed by an origin stored on the modules, which a second thread would overwrite)."""
    G = noisy_generator()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    origins = [(0, 0), (64, 0), (0, 128), (256, 512)]
    with torch.no_grad():
        alone = [G(x, origin=o) for o in origins]
    results: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(origins))}

    def work(i: int) -> None:
        with torch.no_grad():
            for _ in range(5):
                results[i].append(G(x, origin=origins[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(origins))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, ref in enumerate(alone):
        assert all(torch.equal(r, ref) for r in results[i])
