"""models.presoftmax_shift (Lerma & Lucas 2023, DESIGN.md 2.4): the wrapper's contract, the identities it must
keep (softmax, argmax, CE gradient, post-softmax maps) and what it does to pre-softmax maps, on a random small_vgg
and a random VGG19 (predicted class as target, DESIGN.md 4). Numbers on the trained synthetic original:
bench/lerma_numbers.py."""
from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F

from interpfool import interpreters, models
from interpfool.data.synthetic import SyntheticSpec, render_index
from interpfool.jobs.lerma import compare_ce_grads, compare_outputs, mass_share, measure, spearman

GRADIENT_BASED = ["gradcam", "gradcampp", "gradcam_pos", "rsigradcam", "simpleg", "simplegT", "gradinput",
                  "smoothgrad", "ig"]



def _images(size: int, n: int) -> torch.Tensor:
    spec = SyntheticSpec(size=size, num_classes=8)
    return torch.stack([(render_index(spec, 7, i)[0] - 0.5) / 0.25 for i in range(n)])


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return models.build("small_vgg", num_classes=8, width=8).eval()


def test_shifted_model_shares_parameters_and_keeps_names(small):
    shifted = models.presoftmax_shift(small, k=10.0, position=(1, 2))
    assert isinstance(shifted, type(small)) and isinstance(shifted, models.PresoftmaxShifted)
    assert shifted.target_layer == small.target_layer and shifted.last_pool == small.last_pool
    assert [p.data_ptr() for p in shifted.parameters()] == [p.data_ptr() for p in small.parameters()]
    assert list(shifted.state_dict()) == list(small.state_dict())
    x = _images(64, 3)
    with torch.no_grad():
        pooled = {}
        h = small.avgpool.register_forward_hook(lambda _m, _a, o: pooled.setdefault("a", o))
        z = small(x)
        h.remove()
        t = 10.0 * pooled["a"][:, :, 1, 2].sum(1, keepdim=True)
        out = shifted(x)
        # formed in float64 by default: z + t exactly, so the logit differences are z's to the last bit
        assert out.dtype == torch.float64 and torch.equal(out, z.double() + t.double())
        assert torch.equal(out - out[:, :1], (z.double() - z.double()[:, :1]))
        kept = models.presoftmax_shift(small, k=10.0, position=(1, 2), dtype=None)(x)
        assert kept.dtype == torch.float32 and torch.equal(kept, z + t)
    # a hook on the shifted model does not land on the original; deep copy / pickling rebuild the class
    handle = shifted.register_forward_hook(lambda *a: None)
    assert not small._forward_hooks
    handle.remove()
    twin = copy.deepcopy(shifted)
    buffer = io.BytesIO()
    torch.save(shifted, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        assert torch.equal(twin(x), shifted(x)) and torch.equal(loaded(x), shifted(x))
    assert twin.features[0].weight.data_ptr() != small.features[0].weight.data_ptr()
    independent = models.presoftmax_shift(small, copy=True)
    assert independent.features[0].weight.data_ptr() != small.features[0].weight.data_ptr()
    fresh = models.build("small_vgg", num_classes=8, width=8)
    fresh.load_state_dict(shifted.state_dict())                   # no extra keys: loads into the plain class


@pytest.mark.parametrize("kwargs, expected", [
    ({"k": float("nan")}, "presoftmax k=nan; allowed: a finite number"),
    ({"k": "ten"}, "presoftmax k='ten'"),
    ({"position": (0,)}, "presoftmax position=(0,); allowed: two integers >= 0"),
    ({"position": (-1, 0)}, "allowed: two integers >= 0"),
    ({"dtype": torch.int64}, "presoftmax dtype=torch.int64; allowed: a floating torch.dtype or None"),
])
def test_bad_arguments(small, kwargs, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        models.presoftmax_shift(small, **kwargs)


def test_refusals(small):
    with pytest.raises(ValueError, match="already pre-softmax shifted"):
        models.presoftmax_shift(models.presoftmax_shift(small))
    with pytest.raises(ValueError, match="Sequential names no last_pool"):
        models.presoftmax_shift(torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1)))
    with pytest.raises(ValueError, match=r"position \(4, 0\) is outside the 4x4 output of 'avgpool'"):
        models.presoftmax_shift(small, position=(4, 0))(_images(64, 1))


def test_feeding_cells_are_the_receptive_field_of_the_pooling_cell(small):
    cells = models.feeding_cells(small, small.target_layer, (64, 64))        # conv3x3 -> maxpool2 -> avgpool 8->4
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[:5, :5] = True
    assert torch.equal(cells, expected)
    shifted_cells = models.feeding_cells(small, small.target_layer, (64, 64), position=(1, 2))
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[3:9, 7:13] = True
    assert torch.equal(shifted_cells, expected)
    vgg = models.build("vgg19", num_classes=8)
    cells = models.feeding_cells(vgg, vgg.target_layer, (96, 96))          # features.34 6x6 -> maxpool 3x3
    assert cells.shape == (6, 6) and cells.sum() == 9 and cells[:3, :3].all()


def test_small_vgg_manipulation_keeps_outputs_and_training_and_moves_pre_softmax_maps(small):
    x = _images(64, 16)
    shifted = models.presoftmax_shift(small, k=10.0)
    r = measure(small, shifted, x, detail=["gradcam", "simplegT", "lrp", "lrpT"], post=GRADIENT_BASED)
    out = r["outputs"]
    assert out["softmax_max_abs_dev"] <= 1e-6 and out["softmax_max_abs_dev_float64"] <= 1e-12
    assert out["argmax_agreement"] == 1.0 and out["shift_nonuniformity"] <= 1e-4 * out["t"]["max"]
    for mode in ("eval", "train"):
        assert r["ce_gradient"][mode]["relative"] <= 1e-5, r["ce_gradient"]
    its = r["interpreters"]
    for name in GRADIENT_BASED:
        assert its[name]["post_softmax_spearman_float64"]["min"] >= 0.99, name
        assert its[name]["post_softmax_spearman"]["min"] >= 0.99, name          # random net: nothing saturated
    corner = its["simplegT"]["corner_mass_manipulated"]
    assert corner["share_ge_0.9"] >= 0.95 and its["simplegT"]["corner_mass_original"]["mean"] < 0.2
    cam = its["gradcam"]["class_independence_spearman"]
    assert cam["manipulated"]["min"] >= 0.95 and cam["original"]["mean"] < 0.7
    assert its["gradcam"]["corner_mass_manipulated"]["mean"] < 0.5                # not moved to the corner
    pool = its["gradcam@avgpool"]                                                 # same shift on every channel
    assert pool["channel_sum_spearman"]["manipulated"]["min"] >= 0.99
    assert pool["channel_sum_spearman"]["original"]["mean"] < 0.9
    for name in ("lrp", "lrpT"):                                                  # reported, no threshold
        assert its[name]["corner_mass_manipulated"]["mean"] > its[name]["corner_mass_original"]["mean"]


def test_vgg19_manipulation_keeps_outputs_and_training_and_moves_pre_softmax_maps():
    torch.manual_seed(0)
    net = models.build("vgg19", num_classes=8).eval()
    shifted = models.presoftmax_shift(net, k=10.0)
    x = _images(96, 3)
    out = compare_outputs(net, shifted, x)
    assert out["argmax_agreement"] == 1.0 and out["softmax_max_abs_dev_float64"] <= 1e-12
    assert out["softmax_max_abs_dev"] <= 1e-6                   # z + t formed in float64 (the default)
    # dtype=None keeps float32: z + t is rounded at the precision of t, softmax moves by at most a few ulp(t)
    kept = compare_outputs(net, models.presoftmax_shift(net, k=10.0, dtype=None), x)
    assert kept["softmax_max_abs_dev"] <= 4 * torch.finfo(torch.float32).eps * kept["t"]["max"]
    assert kept["softmax_max_abs_dev"] > out["softmax_max_abs_dev"]
    grads = compare_ce_grads(net, shifted, x, torch.tensor([0, 3, 5]))
    assert grads["eval"]["relative"] <= 1e-4 and grads["train"]["relative"] <= 1e-4, grads
    pred = net(x).topk(2).indices
    for name in ["gradcam", "gradcam_pos", "simpleg", "simplegT", "gradinput"]:
        h0 = interpreters.build(name, net, score="prob")(x, pred[:, 0])
        h1 = interpreters.build(name, shifted, score="prob")(x, pred[:, 0])
        assert spearman(h0, h1).min() >= 0.99, name
    region = models.feeding_cells(net, net.target_layer, (96, 96))
    sg = interpreters.build("simplegT", shifted)(x, pred[:, 0])
    assert mass_share(sg, region).min() >= 0.9
    cam, cam0 = interpreters.build("gradcam", shifted), interpreters.build("gradcam", net)
    fwd, fwd0 = cam.forward(x), cam0.forward(x)
    same = spearman(cam.explain(fwd, pred[:, 0]), cam.explain(fwd, pred[:, 1]))
    before = spearman(cam0.explain(fwd0, pred[:, 0]), cam0.explain(fwd0, pred[:, 1]))
    assert same.min() >= 0.95 and before.mean() < 0.8


def test_lrp_on_the_shifted_model_splits_relevance_by_positive_parts(small):
    x = _images(64, 4)
    for name in ("lrp", "lrpT"):
        plain = interpreters.build(name, small, normalize="none")(x, "pred")
        zero = interpreters.build(name, models.presoftmax_shift(small, k=0.0), normalize="none")(x, "pred")
        assert torch.allclose(plain, zero, rtol=1e-4, atol=1e-9), name              # K = 0: the original LRP
    shifted = models.presoftmax_shift(small, k=10.0)
    lrp_t = interpreters.build("lrpT", shifted, layer="avgpool", normalize="none")   # relevance at A = pool input
    fwd = lrp_t.forward(x)
    assert torch.allclose(fwd.logits, shifted(x), atol=1e-4)
    index = fwd.logits.argmax(1)
    adapter = lrp_t.adapter
    z, t = fwd.trace.z.gather(1, index[:, None])[:, 0], fwd.trace.t
    r_z, r_t = adapter.split(fwd.trace, torch.zeros_like(fwd.logits).scatter(1, index[:, None], 1.0), 1e-6)
    share_t = t.clamp(min=0) / (z.clamp(min=0) + t.clamp(min=0))
    assert torch.allclose(r_t, share_t, atol=1e-5) and torch.allclose(r_z.sum(1) + r_t, torch.ones(4), atol=1e-5)
    with pytest.raises(ValueError, match="cannot stop at 'classifier.0': it lies above the last pooling layer"):
        interpreters.build("lrpT", shifted, layer="classifier.0")
    # differentiable: a penalty on the shifted model's LRP_T map reaches the parameters
    h = interpreters.build("lrpT", shifted)(x, "pred", create_graph=True)
    (g,) = torch.autograd.grad(F.mse_loss(h, torch.zeros_like(h)), [small.features[11].weight])
    assert torch.isfinite(g).all() and g.abs().sum() > 0
