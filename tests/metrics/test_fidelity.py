"""Output fidelity: top-1 agreement by hand, KL(p0 || p*) against torch.nn.functional.kl_div and
scipy.stats.entropy, on random and real (small VGG) logits."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import entropy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_maps import gradcam_pair  # noqa: E402

from interpfool.metrics import OutputFidelity, output_fidelity  # noqa: E402


def test_kl_matches_kl_div_and_scipy_entropy():
    logits0, logits = 3 * torch.randn(8, 5), 3 * torch.randn(8, 5)
    agree, kl = output_fidelity(logits0, logits)
    lp0, lp = logits0.double().log_softmax(1), logits.double().log_softmax(1)
    by_torch = F.kl_div(lp, lp0, reduction="none", log_target=True).sum(1)       # KL(target || input)
    by_scipy = torch.tensor([entropy(lp0[i].exp().numpy(), lp[i].exp().numpy()) for i in range(8)])
    assert torch.allclose(kl, by_torch, rtol=0, atol=1e-12)
    assert torch.allclose(kl, by_scipy.double(), rtol=0, atol=1e-10)
    assert agree.tolist() == (logits0.argmax(1) == logits.argmax(1)).tolist()


def test_fidelity_known_values():
    logits0 = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0 + 1e-3]])
    agree, kl = output_fidelity(logits0, logits0 + 7.0)          # a shift of every logit: same outputs
    assert agree.all()
    assert torch.allclose(kl, torch.zeros(3, dtype=torch.float64), atol=1e-12)   # float32 rounding of x + 7
    flipped = logits0.flip(1)
    agree, kl = output_fidelity(logits0, flipped)
    assert agree.tolist() == [False, False, False]
    p = torch.sigmoid(torch.tensor(2.0, dtype=torch.float64))
    assert kl[0].item() == pytest.approx(float((2 * p - 1) * 2.0))  # KL of (p, 1-p) to (1-p, p) = (2p-1) log(p/(1-p))


def test_fidelity_metric_on_real_logits():
    _, _, logits, logits0 = gradcam_pair()
    m = OutputFidelity()
    m.update(logits0[:2], logits[:2])
    m.update(logits0[2:], logits[2:])
    out = m.compute()
    p0, p = logits0.softmax(1).numpy(), logits.softmax(1).numpy()
    assert out["top1_agreement"].item() == pytest.approx(float(np.mean(p0.argmax(1) == p.argmax(1))))
    assert out["kl_p0_pstar"].item() == pytest.approx(float(np.mean([entropy(a, b) for a, b in zip(p0, p)])), rel=1e-10)
    assert out["kl_p0_pstar"].item() > 0
