"""Explanations are computed in fp32 under autocast (bf16 / fp16): fp16 has no loss scaling for the inner
``autograd.grad`` (maps underflow to zero; LRP's 1e-6 stabiliser is below fp16's resolution) and bf16 maps move
FSR thresholds and make ties in top-k and Spearman. The interpreter's forward and its explanation run with
autocast off, so the maps (and the CE logits of the same forward) equal the fp32 ones.

CUDA: autocast there runs softmax in fp32 while the logits are bf16/fp16, so LRP's ``score=prob`` relevance
start scattered fp32 values into a bf16 tensor (a dtype error); CPU autocast keeps softmax in bf16, so the CUDA
case is reproduced below by giving LRP an fp32 score on low-precision logits."""
import pytest
import torch

from interpfool import interpreters, models

NAMES = ["gradcam", "lrpT", "lrp", "simplegT", "simpleg", "smoothgrad", "ig", "rsigradcam", "gradcampp"]


def _net():
    torch.manual_seed(0)
    return models.build("small_vgg", num_classes=4, width=4, hidden=8).eval()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", NAMES)
def test_maps_under_cpu_autocast_are_the_fp32_maps(name, dtype):
    net = _net()
    kwargs = {"n": 4, "seed": 0} if name == "smoothgrad" else {"steps": 4} if name in ("ig", "rsigradcam") else {}
    interp = interpreters.build(name, net, **kwargs)
    x = torch.randn(2, 3, 32, 32)
    ref = interp(x, "pred", create_graph=True)
    with torch.autocast("cpu", dtype=dtype):
        h = interp(x, "pred", create_graph=True)
        fwd = interp.forward(x)
    assert h.dtype == torch.float32 and fwd.logits.dtype == torch.float32
    assert torch.allclose(h, ref, atol=1e-5, rtol=1e-4)
    h.sum().backward()                                   # the double backward runs in fp32 too
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in net.parameters())


@pytest.mark.parametrize("name", ["lrpT", "lrp"])
def test_lrp_prob_score_is_dtype_safe(name, monkeypatch):
    from interpfool.interpreters import lrp as lrp_module

    real = lrp_module.class_score
    monkeypatch.setattr(lrp_module, "class_score", lambda logits, index, score="logit": real(logits.float(), index, score))
    net = _net().to(torch.bfloat16)
    h = interpreters.build(name, net, score="prob")(torch.randn(2, 3, 32, 32, dtype=torch.bfloat16), "pred")
    assert h.shape[0] == 2 and torch.isfinite(h.float()).all()
