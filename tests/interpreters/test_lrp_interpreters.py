"""The ``lrp`` / ``lrpT`` interpreters: API, normalisation, options, configs, and the three ImageNet
architectures at 224x224 (weights=None, CPU, batch 1)."""
from pathlib import Path

import pytest
import torch

from interpfool import interpreters, models
from interpfool.lrp.testing import tiny_net

CONF = Path(__file__).resolve().parents[2] / "conf" / "interp"



@pytest.fixture(scope="module")
def net():
    return tiny_net("small_vgg")


@pytest.fixture(scope="module")
def x():
    return torch.randn(3, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_registered():
    assert {"lrp", "lrpT"} <= set(interpreters.names())


def test_lrp_map_is_signed_and_absmax_normalised(net, x):
    h = interpreters.build("lrp", net)(x, "pred")
    assert h.shape == (3, 32, 32) and not h.requires_grad
    torch.testing.assert_close(h.abs().flatten(1).amax(1), torch.ones(3, dtype=h.dtype))
    assert (h < 0).any() and (h > 0).any()


def test_lrpT_map_is_relu_minmax_at_the_target_layer(net, x):
    interp = interpreters.build("lrpT", net)
    assert interp.layer == "features.11"
    fwd = interp.forward(x)
    assert fwd.activations["features.11"].shape == (3, 16, 8, 8)
    h = interp.explain(fwd, "pred")
    assert h.shape == (3, 8, 8)
    torch.testing.assert_close(h.flatten(1).amin(1), torch.zeros(3, dtype=h.dtype))
    torch.testing.assert_close(h.flatten(1).amax(1), torch.ones(3, dtype=h.dtype))
    raw = interpreters.build("lrpT", net, normalize="none").explain(fwd, "pred")
    rel = interp.relevance(fwd, fwd.logits.argmax(1), False, "features.11")
    torch.testing.assert_close(raw, rel.sum(1).relu())


def test_targets_and_create_graph(net, x):
    interp = interpreters.build("lrpT", net)
    labels = torch.tensor([1, 0, 2])
    torch.testing.assert_close(interp(x, "label", labels), interp(x, labels))
    torch.testing.assert_close(interp(x, 2), interp(x, torch.tensor([2, 2, 2])))
    assert interp(x, "pred", create_graph=True).requires_grad


def test_options_change_the_map(net, x):
    base = interpreters.build("lrp", net)(x, "pred")
    for options in ({"composite": "epsilon_plus_maxprop"}, {"maxpool": "proportional"}, {"epsilon": 1.0}):
        assert not torch.allclose(interpreters.build("lrp", net, **options)(x, "pred"), base)
    torch.testing.assert_close(interpreters.build("lrp", net, composite="epsilon_plus_maxprop")(x, "pred"),
                               interpreters.build("lrp", net, maxpool="proportional")(x, "pred"))
    lower = interpreters.build("lrpT", net, layer="features.8")(x, "pred")
    assert lower.shape == (3, 8, 8) and not torch.allclose(lower, interpreters.build("lrpT", net)(x, "pred"))
    with pytest.raises(ValueError, match="composite"):
        interpreters.build("lrp", net, composite="nope")
    with pytest.raises(ValueError, match="4-d|spatial|\\[B, C, H, W\\]"):
        interpreters.build("lrpT", net, layer="classifier.3")(x, "pred")


def test_prob_score_is_the_logit_map_rescaled(net, x):
    """Rules are linear in the relevance: with score=prob the raw map is the logit map times
    y_c / z_c (up to the last layer's epsilon), so the normalised maps agree up to the sign of z_c."""
    logit = interpreters.build("lrp", net, normalize="none", epsilon=1e-12)
    prob = interpreters.build("lrp", net, normalize="none", score="prob", epsilon=1e-12)
    fwd = logit.forward(x)
    index = fwd.logits.argmax(1)
    z = fwd.logits.gather(1, index[:, None]).squeeze(1)
    y = torch.softmax(fwd.logits, 1).gather(1, index[:, None]).squeeze(1)
    torch.testing.assert_close(prob.explain(fwd, index), logit.explain(fwd, index) * (y / z)[:, None, None])


@pytest.mark.parametrize("name", ["lrp", "lrpT"])
def test_config_instantiates(name, net, compose_cfg):
    from hydra.utils import instantiate

    cfg = compose_cfg([f"interp={name}"]).interp
    interp = instantiate(cfg)(net=net)
    assert type(interp) is interpreters.REGISTRY[name]
    assert interp.composite == interpreters.REGISTRY[name](net).composite


ARCHS = [  # model, LRP_T map side at 224x224
    ("vgg19", 14),
    ("resnet50", 7),
    ("densenet121", 7),
]


@pytest.mark.parametrize("arch,side", ARCHS)
def test_imagenet_architectures_at_224(arch, side):
    torch.manual_seed(0)
    net = models.build(arch).eval()
    x = torch.randn(1, 3, 224, 224)
    lrp_t, lrp = interpreters.build("lrpT", net), interpreters.build("lrp", net)
    with torch.no_grad():   # first-order maps need no graph; the forward is still the adapter's own
        fwd = lrp_t.forward(x)
        assert torch.equal(fwd.logits, net(x))
        h_t = lrp_t.explain(fwd, "pred")
        h = lrp.explain(fwd, "pred")   # the same plan: a Forward of one LRP interpreter serves the other
    assert h_t.shape == (1, side, side) and h.shape == (1, 224, 224)
    assert torch.isfinite(h).all() and torch.isfinite(h_t).all() and h.abs().max() > 0
