import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY

from unpaired.losses import GANLoss, PatchNCELoss
from unpaired.methods import build_config, build_model


def rand_features(b, p, c, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(b, p, c, generator=g, dtype=dtype), dim=-1)
    k = F.normalize(torch.randn(b, p, c, generator=g, dtype=dtype), dim=-1)
    return q, k


def naive_logits(q, k, b, i, tau, negatives):
    """Logits of query (b, i): the positive first, then every negative key (the paper's formula),
    plus the reference's masked self-similarity entry, a constant -10 / tau."""
    B, P, _ = q.shape
    pairs = (
        [(b, j) for j in range(P) if j != i]
        if negatives == "image"
        else [(bb, j) for bb in range(B) for j in range(P) if (bb, j) != (b, i)]
    )
    pos = float(q[b, i] @ k[b, i]) / tau
    return [pos] + [float(q[b, i] @ k[bb, j]) / tau for bb, j in pairs] + [-10.0 / tau]


def naive_ce(q, k, tau, negatives):
    B, P, _ = q.shape
    out = torch.zeros(B, P, dtype=torch.float64)
    for b in range(B):
        for i in range(P):
            logits = naive_logits(q, k, b, i, tau, negatives)
            out[b, i] = -math.log(math.exp(logits[0]) / sum(math.exp(v) for v in logits))
    return out


@pytest.mark.parametrize("negatives", ["image", "batch"])
def test_cross_entropy_matches_paper_formula(negatives):
    q, k = rand_features(3, 7, 5)
    got = PatchNCELoss(0.07, negatives=negatives)(q, k)
    assert got.shape == (3, 7)
    torch.testing.assert_close(got, naive_ce(q, k, 0.07, negatives), rtol=1e-9, atol=1e-9)


def test_image_and_batch_negatives_differ():
    q, k = rand_features(2, 6, 4, seed=1)
    a = PatchNCELoss(negatives="image")(q, k)
    b = PatchNCELoss(negatives="batch")(q, k)
    assert (b > a).all()  # more negatives can only raise every loss


def test_focal_gamma0_alpha1_is_cross_entropy_and_alpha_scales():
    q, k = rand_features(2, 9, 8, seed=2)
    ce = naive_ce(q, k, 0.07, "image")
    torch.testing.assert_close(PatchNCELoss(gamma=0.0, alpha=1.0)(q, k), ce, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(PatchNCELoss(gamma=0.0, alpha=0.25)(q, k), 0.25 * ce, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("gamma,alpha,negatives", [(2.0, 0.25, "image"), (3.0, 0.5, "batch"), (0.5, 1.0, "image")])
def test_focal_matches_formula_from_softmax(gamma, alpha, negatives):
    q, k = rand_features(2, 5, 6, seed=3)
    # a temperature of 1 keeps p_t away from 0 and 1 so the focal factor really matters
    got = PatchNCELoss(1.0, gamma, alpha, negatives)(q, k)
    want = torch.zeros_like(got)
    for b in range(2):
        for i in range(5):
            logits = naive_logits(q, k, b, i, 1.0, negatives)
            p = math.exp(logits[0]) / sum(math.exp(v) for v in logits)
            want[b, i] = -alpha * (1 - p) ** gamma * math.log(p)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert (got < naive_ce(q, k, 1.0, negatives)).all()


@pytest.mark.parametrize("gamma,alpha", [(0.0, 1.0), (2.0, 0.25)])
@pytest.mark.parametrize("sign", [1, -1])
def test_bf16_extreme_logits_are_finite(gamma, alpha, sign):
    # sign 1: query equal to its positive key (logit +1/tau) and opposite to the others (-1/tau), loss ~0;
    # sign -1: the reverse, the largest loss there is (~33 for CE, ~8 focal)
    c = 16
    base = F.normalize(torch.randn(1, 1, c, generator=torch.Generator().manual_seed(0)), dim=-1)
    k = torch.cat([base, -base.expand(1, 63, c)], dim=1)
    q = sign * k.clone()
    qb = q.to(torch.bfloat16).requires_grad_(True)
    loss = PatchNCELoss(0.07, gamma, alpha)(qb, k.to(torch.bfloat16))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(qb.grad).all()
    # reference: float64 on the same (bf16-rounded) inputs; the loss keeps float32 digits (measured
    # error <= 1e-6 on values up to 33), so a loss computed in bf16 (~3 digits) fails this
    ref = PatchNCELoss(0.07, gamma, alpha)(qb.detach().double(), k.to(torch.bfloat16).double())
    assert float(ref.max()) > (1.0 if sign == 1 else 7.0)
    torch.testing.assert_close(loss.double(), ref, atol=1e-5, rtol=1e-5)


def test_key_is_detached():
    q, k = rand_features(1, 4, 3, dtype=torch.float32)
    q.requires_grad_(True)
    k.requires_grad_(True)
    PatchNCELoss()(q, k).sum().backward()
    assert q.grad is not None and k.grad is None


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="negatives"):
        PatchNCELoss(negatives="other")
    with pytest.raises(ValueError, match="B, P, C"):
        PatchNCELoss()(torch.zeros(2, 3), torch.zeros(2, 3))


def test_gan_losses_match_formulas():
    x = torch.tensor([[-2.0, 0.3], [1.5, 4.0]])
    torch.testing.assert_close(GANLoss("lsgan")(x, True), ((x - 1) ** 2).mean())
    torch.testing.assert_close(GANLoss("lsgan")(x, False), (x**2).mean())
    sig = torch.sigmoid(x)
    torch.testing.assert_close(GANLoss("vanilla")(x, True), (-torch.log(sig)).mean())
    torch.testing.assert_close(GANLoss("vanilla")(x, False), (-torch.log(1 - sig)).mean())
    torch.testing.assert_close(GANLoss("nonsaturating")(x, True), torch.log1p(torch.exp(-x)).mean())
    torch.testing.assert_close(GANLoss("nonsaturating")(x, False), torch.log1p(torch.exp(x)).mean())
    with pytest.raises(ValueError, match="unknown GAN loss"):
        GANLoss("wgan")


def test_focal_settings_reach_the_models_patchnce():
    """model.focal_gamma / model.focal_alpha given as --set overrides turn the PatchNCE term the CUT
    step minimises from cross-entropy into -alpha (1 - p)^gamma log p, patch by patch, with p the
    positive's softmax probability computed here from the paper's formula."""
    settings = [("test", {**TINY, "model.num_patches": 16})]
    ce_cfg = build_config("cut", settings=settings)
    focal_cfg = build_config("cut", settings=settings, overrides=["model.focal_gamma=3", "model.focal_alpha=0.5"])
    torch.manual_seed(0)
    ce_model = build_model(ce_cfg)
    torch.manual_seed(0)
    focal_model = build_model(focal_cfg)  # the same weights: only the loss settings differ
    layers = ce_cfg.model.nce_layers
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        feat_k = ce_model.G.encode(x, layers)
        feat_q = ce_model.G.encode(ce_model.G(x), layers)
        torch.manual_seed(1)
        key, ids = ce_model.F(feat_k, 16)
        query, _ = ce_model.F(feat_q, 16, ids)
        losses = {}
        for name, model in (("ce", ce_model), ("focal", focal_model)):
            torch.manual_seed(1)  # the same patch locations as above
            losses[name] = model.patch_nce(feat_k, feat_q).item()
    # per-patch cross-entropy -log p of each layer, then the two losses as the model averages them
    ce = [naive_ce(q.double(), k.double(), 0.07, "image") for q, k in zip(query, key)]
    want_ce = sum(c.mean().item() for c in ce) / len(ce)
    want_focal = sum((0.5 * (1 - torch.exp(-c)) ** 3 * c).mean().item() for c in ce) / len(ce)
    assert losses["ce"] == pytest.approx(want_ce, rel=1e-5)
    assert losses["focal"] == pytest.approx(want_focal, rel=1e-5)
    assert want_focal < 0.49 * want_ce  # (1 - p)^3 matters here, not only alpha: far beyond the tolerance
