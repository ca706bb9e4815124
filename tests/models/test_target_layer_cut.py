"""Target layers are cuts (DESIGN.md 2.1), checked by a route that does not use the capture hook.

For every supported architecture the network is split by hand at the target layer: the part below it
runs explicitly up to A, A becomes a leaf, and the part above it runs explicitly from A (in a DenseNet
block: A goes into the target layer *and* into the block's concatenation, written here with torchvision's
own list-taking layer calls, not with ``CutDenseBlock``). dS/dA from that route, and the maps formed from
(A, dS/dA) by the formulas of DESIGN.md 2.1, must equal every layer-level interpreter's map to 1e-10
relative (float64). On DenseNet121 at ``denselayer16`` the map must also differ from the branch-only map
(the gradient through the layer alone, which a private concatenation of the layer's input gives: the
bug this test guards against).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet

from interpfool import interpreters, models
from interpfool.lrp import build_adapter
from interpfool.lrp.testing import randomize_batchnorm
from interpfool.models.small_densenet import SmallDenseNet
from interpfool.models.small_resnet import SmallResNet
from interpfool.models.torchvision_models import CutDenseBlock, DenseNet121

TOL = 1e-10
LAYER_METHODS = ["gradcam", "gradcampp", "gradcam_pos", "simplegT", "rsigradcam"]
RSI_STEPS = 3

# name, build kwargs, target layer (None: the model's), input side, batch, seed
CASES = [
    ("small_vgg", {"width": 8, "hidden": 16}, None, 32, 3, 3),
    ("small_resnet", {"width": 8}, None, 28, 3, 0),
    ("small_densenet", {"width": 8, "growth": 4, "layers": 3, "bn_size": 2}, None, 28, 3, 0),
    ("small_densenet", {"width": 8, "growth": 4, "layers": 3, "bn_size": 2}, "features.denseblock1.denselayer2",
     28, 3, 0),
    ("vgg19", {}, None, 64, 2, 0),
    ("resnet50", {}, None, 64, 2, 0),
    ("densenet121", {}, None, 64, 2, 0),
    ("densenet121", {}, "features.denseblock2.denselayer3", 64, 2, 0),
]
_NETS: dict = {}


def _net(name: str, kwargs: dict, seed: int) -> nn.Module:
    key = (name, tuple(sorted(kwargs.items())), seed)
    if key not in _NETS:
        _NETS.clear()   # one big model in memory at a time
        torch.manual_seed(seed)
        net = models.build(name, num_classes=5, **kwargs)
        randomize_batchnorm(net, seed, positive_scale=True)   # BN not the identity: its parameters matter
        _NETS[key] = net.double().eval()
    return _NETS[key]


# ---------------------------------------------------------------- the hand-split reference route -------------

def _run_dense_rest(block: nn.Module, feats: list[torch.Tensor], start: int) -> torch.Tensor:
    """torchvision's _DenseBlock forward from layer ``start`` on, given the earlier features as a list."""
    for layer in list(block.values())[start:]:
        feats = [*feats, layer(feats)]   # torchvision's own list call: the layer concatenates inside
    return torch.cat(feats, 1)


def split(net: nn.Module, layer: str):
    """(below, above): below(x) -> A (the input of ``layer``), above(A, A_direct=None) -> logits. For a
    DenseNet layer, ``A_direct`` (default: A itself) is what the block's output concatenation uses, so
    that the two paths from A can be told apart."""
    if isinstance(net, (SmallResNet, tv_resnet.ResNet)):
        stem = [getattr(net, n) for n in ("conv1", "bn1", "relu", "maxpool") if hasattr(net, n)]
        stages = [n for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(net, n)]
        stage, idx = layer.split(".")
        cut = stages.index(stage)
        blocks = [b for s in stages for b in getattr(net, s)]
        k = sum(len(getattr(net, s)) for s in stages[:cut]) + int(idx)

        def below(x):
            for m in stem + blocks[:k]:
                x = m(x)
            return x

        def above(a, a_direct=None):
            for m in blocks[k:]:
                a = m(a)
            return net.fc(torch.flatten(net.avgpool(a), 1))
        return below, above

    feats = list(net.features.named_children())
    names = [n for n, _ in feats]
    if isinstance(net, (SmallDenseNet, tv_densenet.DenseNet)):
        _, block_name, layer_name = layer.split(".")
        b = names.index(block_name)
        block = net.features[b]
        layers = list(block.keys())
        li = layers.index(layer_name)

        def below(x):
            for _, m in feats[:b]:
                x = m(x)
            return _run_dense_rest(nn.ModuleDict(dict(list(block.items())[:li])), [x], 0) if li else x

        def above(a, a_direct=None):
            a_direct = a if a_direct is None else a_direct
            new = block[layer_name](a)
            out = _run_dense_rest(block, [a_direct, new], li + 1)
            for _, m in feats[b + 1:]:
                out = m(out)
            out = F.relu(out)
            return net.classifier(torch.flatten(net.avgpool(out), 1))
        return below, above

    k = int(layer.split(".")[1])   # VGG: features.K

    def below(x):
        return net.features[:k](x)

    def above(a, a_direct=None):
        return net.classifier(torch.flatten(net.avgpool(net.features[k:](a)), 1))
    return below, above


def score(logits: torch.Tensor, index: torch.Tensor, kind: str) -> torch.Tensor:
    values = torch.softmax(logits, 1) if kind == "prob" else logits
    return values[torch.arange(len(index)), index].sum()


def reference_grad(net, layer, x, index, kind="logit"):
    """(A, dS/dA) by the hand-split route."""
    below, above = split(net, layer)
    with torch.no_grad():
        act = below(x)
    act = act.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(score(above(act), index, kind), act)
    return act.detach(), grad


def norm_max(h: torch.Tensor) -> torch.Tensor:
    return h / h.flatten(1).amax(1).clamp_min(torch.finfo(h.dtype).tiny)[:, None, None]


def cam(weights: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    return norm_max(torch.relu((weights[:, :, None, None] * act).sum(1)))


def reference_maps(net, layer, x, index):
    """Each layer-level method's map and per-channel attribution (before the channel sum and the ReLU)
    from the reference (A, dS/dA), by the formulas of DESIGN.md 2.1: (maps, attributions, A, dS/dA)."""
    act, g = reference_grad(net, layer, x, index)
    gp = g.clamp(min=0)
    alpha = gp ** 2 / (2 * gp ** 2 + act.sum((2, 3), keepdim=True) * gp ** 3 + 1e-6)   # Grad-CAM++, eps 1e-6
    weights = {"gradcam": g.mean((2, 3)), "gradcampp": (gp * alpha).sum((2, 3)), "gradcam_pos": gp.mean((2, 3))}
    # RSI-Grad-CAM: trapezoid Riemann-Stieltjes sum of int g dA along x(a) = a x (zero baseline). Logit score:
    # random ResNet50 logits are in the hundreds, and the gradient of a saturated probability is rounding noise.
    points = [reference_grad(net, layer, x * (k / RSI_STEPS), index) for k in range(RSI_STEPS + 1)]
    integral = sum((g0 + g1) / 2 * (a1 - a0) for (a0, g0), (a1, g1) in zip(points[:-1], points[1:]))
    weights["rsigradcam"] = integral.mean((2, 3))
    maps = {m: cam(w, act) for m, w in weights.items()}
    attributions = {m: w[:, :, None, None] * act for m, w in weights.items()}
    maps["simplegT"], attributions["simplegT"] = norm_max(g.abs().sum(1)), g.abs()
    return maps, attributions, act, g


def max_rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.detach() - ref).abs().max() / ref.abs().max())


def _build(name, net, layer):
    kwargs = {"steps": RSI_STEPS, "baseline": "zeros", "score": "logit"} if name == "rsigradcam" else {}
    return interpreters.build(name, net, layer=layer, **kwargs)


@pytest.mark.parametrize("name,kwargs,layer,side,batch,seed", CASES,
                         ids=[f"{c[0]}-{c[2] or 'target'}" for c in CASES])
def test_layer_maps_equal_the_hand_split_reference(name, kwargs, layer, side, batch, seed):
    net = _net(name, kwargs, seed)
    layer = layer or net.target_layer
    x = torch.randn(batch, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    below, above = split(net, layer)
    with torch.no_grad():
        logits = net(x)
        assert max_rel(above(below(x)), logits) < 1e-12   # the split is the network
    index = logits.argmax(1)   # random nets: the predicted class (DESIGN.md 4)
    refs, attrs, act, grad = reference_maps(net, layer, x, index)
    assert grad.abs().amax((1, 2, 3)).min() > 0
    interps = {m: _build(m, net, layer) for m in LAYER_METHODS}
    fwd = interps["gradcam"].forward(x)
    assert max_rel(fwd.activations[layer], act) < 1e-12
    ours_grad = interps["gradcam"].grad_of_score(fwd, index, fwd.activations[layer], create_graph=False)
    devs = {"dS/dA": max_rel(ours_grad, grad)}
    for method, interp in interps.items():
        # the per-channel attribution checks the weights even where the ReLU'd map of a random net is all zero
        assert attrs[method].abs().amax((1, 2, 3)).min() > 0, method
        devs[f"{method} attribution"] = max_rel(interp.attribution_raw(fwd, index, False), attrs[method])
        devs[method] = max_rel(interp.explain(fwd, index), refs[method]) if refs[method].abs().max() > 0 else \
            float(interp.explain(fwd, index).abs().max())
    print(f"{name} {layer}: " + ", ".join(f"{k} {v:.1e}" for k, v in devs.items()))
    assert max(devs.values()) <= TOL, devs
    adapter = build_adapter(net)                 # LRP / LRP_T explain the same tensor
    assert max_rel(adapter.activation(adapter.forward(x), layer), act) < 1e-12


def test_densenet121_denselayer16_map_is_not_the_branch_only_map():
    """The bug: a private concatenation fed to denselayer16 gives only the gradient through the layer."""
    net = _net("densenet121", {}, 0)
    layer = net.target_layer
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    index = net(x).argmax(1).detach()
    below, above = split(net, layer)
    with torch.no_grad():
        act = below(x)
    into_layer, direct = act.clone().requires_grad_(True), act.clone().requires_grad_(True)
    g_branch, g_direct = torch.autograd.grad(score(above(into_layer, direct), index, "logit"), [into_layer, direct])
    share_direct = float(g_direct.abs().sum() / (g_direct.abs().sum() + g_branch.abs().sum()))
    full, branch = cam((g_branch + g_direct).mean((2, 3)), act), cam(g_branch.mean((2, 3)), act)
    ours = interpreters.build("gradcam", net)(x, index)
    new_dev, old_dev = max_rel(ours, full), max_rel(branch, full)
    print(f"DenseNet121 denselayer16: direct path share of |dS/dA| {share_direct:.3f}; Grad-CAM deviation "
          f"from the cut map: interpfool {new_dev:.1e}, branch-only (old) {old_dev:.2f}")
    assert new_dev <= TOL and old_dev > 0.05 and share_direct > 0.1


@pytest.mark.parametrize("name,kwargs,layer", [
    ("small_densenet", {"width": 8, "growth": 4, "layers": 3, "bn_size": 2}, "features.denseblock1.denselayer2"),
    ("densenet121", {}, None),
])
def test_frozen_model_keeps_the_cut(name, kwargs, layer):
    """theta0 is a frozen copy: nothing upstream requires grad, and the hook must turn A into a leaf that the
    block's concatenation uses too (flagged in place), not a private copy for the layer."""
    net = _net(name, kwargs, 0)
    layer = layer or net.target_layer
    x = torch.randn(2, 3, 64 if name == "densenet121" else 28, 64 if name == "densenet121" else 28,
                    dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    index = net(x).argmax(1).detach()
    ref = reference_maps(net, layer, x, index)[0]["gradcam"]
    assert ref.abs().amax((1, 2)).min() > 0
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    try:
        net.requires_grad_(False)
        h = interpreters.build("gradcam", net, layer=layer)(x, index)
        # the caller's input is never flagged, even when it is the explained tensor
        first = interpreters.build("simplegT", net, layer="features.conv0")(x, index)
        assert not x.requires_grad and first.abs().amax() > 0
    finally:
        for n, p in net.named_parameters():
            p.requires_grad_(flags[n])
    assert max_rel(h, ref) <= TOL


@pytest.mark.parametrize("name,kwargs", [
    ("small_densenet", {"width": 8, "growth": 4, "layers": 3, "bn_size": 2}), ("densenet121", {})])
def test_presoftmax_shifted_densenet_keeps_the_cut(name, kwargs):
    """Lerma & Lucas shift: z' = z + K sum_k A_pool[k, 0, 0]; the layer gradient of z'_c through the cut."""
    net = _net(name, kwargs, 0)
    shifted = models.presoftmax_shift(net, k=10.0, dtype=None)
    side = 64 if name == "densenet121" else 28
    x = torch.randn(2, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    index = net(x).argmax(1).detach()
    below, above = split(net, net.target_layer)
    with torch.no_grad():
        act = below(x)
    act = act.clone().requires_grad_(True)
    pooled = []
    handle = net.avgpool.register_forward_hook(lambda _m, _a, out: pooled.append(out))
    try:
        logits = above(act)
    finally:
        handle.remove()
    shifted_logits = logits + 10.0 * pooled[0][:, :, 0, 0].sum(1)[:, None]
    (grad,) = torch.autograd.grad(score(shifted_logits, index, "logit"), act)
    ours = interpreters.build("simplegT", shifted)(x, index)
    assert max_rel(ours, norm_max(grad.abs().sum(1))) <= TOL


@pytest.mark.parametrize("method", ["gradcam", "simplegT"])
def test_second_order_through_the_dense_cut_matches_finite_differences(method):
    """The parameter gradient of a Location-style penalty on a map at an inner dense layer (whose input
    reaches the logits directly and through the layer) equals central finite differences."""
    from interpfool.gradcheck import directional_fd_check

    net = _net("small_densenet", {"width": 8, "growth": 4, "layers": 3, "bn_size": 2}, 0)
    x = torch.randn(2, 3, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    interp = interpreters.build(method, net, layer="features.denseblock1.denselayer2")
    index = net(x).argmax(1).detach()
    mask = torch.rand(interp(x, index).shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    names = ["features.conv0.weight", "features.denseblock1.denselayer1.conv2.weight",
             "features.denseblock1.denselayer2.norm1.weight", "features.denseblock1.denselayer3.conv1.weight",
             "features.transition1.conv.weight", "features.norm5.weight", "classifier.weight"]
    if method == "simplegT":   # dS/dA of a piecewise-linear net depends on the parameters above A only
        names = names[2:]
    result = directional_fd_check(lambda: F.mse_loss(interp(x, index, create_graph=True), mask), net, names,
                                  eps=1e-7)
    for param, (analytic, numeric, rel) in result.items():
        assert abs(analytic) > 1e-9 and rel <= 1e-4, (param, analytic, numeric, rel)


# ---------------------------------------------------------------- DenseNet121 is torchvision's -----------------

def test_densenet121_is_torchvisions_densenet121():
    """Same parameters, keys and (float64) output as torchvision.models.densenet121; its state dict loads
    strictly; every block is a CutDenseBlock."""
    torch.manual_seed(0)
    stock = tvm.densenet121(weights=None, num_classes=7)
    torch.manual_seed(0)
    ours = DenseNet121(num_classes=7)
    assert list(ours.state_dict()) == list(stock.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), stock.state_dict().values()))
    randomize_batchnorm(stock, 1)
    ours.load_state_dict(stock.state_dict(), strict=True)
    assert [type(m) for n, m in ours.features.named_children() if n.startswith("denseblock")] == [CutDenseBlock] * 4
    stock, ours = stock.double().eval(), ours.double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(ours(x), stock(x))


def test_capture_refuses_a_layer_that_takes_a_list():
    """A stock torchvision DenseNet hands its layers a list: that input is no cut; one-line ValueError."""
    net = tv_densenet.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2,
                               num_classes=3).eval()
    with pytest.raises(ValueError) as err:
        with models.capture_inputs(net, ["features.denseblock2.denselayer2"]):
            net(torch.randn(1, 3, 32, 32))
    assert "not a cut" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="not a cut"):
        interpreters.build("gradcam", net, layer="features.denseblock2.denselayer2")(torch.randn(1, 3, 32, 32))
