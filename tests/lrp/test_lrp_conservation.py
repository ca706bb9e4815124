"""Conservation (Bach et al. 2015; Montavon et al. 2019 Sec. 10.2): on bias-free ReLU networks (no
bias, BN without shift) with the stabilisers made negligible, the relevance at the input - and at the
target layer - sums to the score S_c, for the rule variants that conserve.

Not ``add='proportional'``: a negative summand of the residual add then receives relevance, and the z+
rule of the conv below it can only pass relevance through positive contributions, so relevance of
a neuron with a negative pre-activation is lost (Zennit does the same). The default positive-part
split never gives relevance to a negative summand, which keeps the chain conservative."""
import pytest
import torch

from interpfool import interpreters
from interpfool.lrp.testing import make_bias_free, tiny_net



TINY = dict(epsilon=1e-12, stabilizer=1e-12)
CASES = [
    ("small_vgg", 32, {}),
    ("small_vgg", 32, {"score": "prob"}),
    ("small_vgg", 32, {"maxpool": "proportional"}),
    ("resnet_bottleneck", 32, {}),
    ("resnet_bottleneck", 32, {"maxpool": "proportional"}),
    ("densenet", 32, {}),
    ("densenet", 32, {"bn_first": "zplus", "avgpool": "norm"}),
    ("small_resnet", 32, {}),
    ("small_densenet", 32, {}),
]


@pytest.mark.parametrize("kind,side,options", CASES)
def test_relevance_sums_to_the_score(kind, side, options):
    options = dict(options)
    score = options.pop("score", "logit")
    net = make_bias_free(tiny_net(kind))
    x = torch.randn(3, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for name in ("lrp", "lrpT"):
        interp = interpreters.build(name, net, score=score, **options, **TINY)
        fwd = interp.forward(x)
        index = fwd.logits.argmax(1)
        target = torch.softmax(fwd.logits, 1) if score == "prob" else fwd.logits
        target = target.gather(1, index[:, None]).squeeze(1)
        rel = interp.relevance(fwd, index, create_graph=False, stop=interp.layer if name == "lrpT" else None)
        total = rel.flatten(1).sum(1)
        assert torch.allclose(total, target, rtol=1e-6, atol=0), (name, total, target)


def test_biases_absorb_relevance_on_an_ordinary_net():
    """The counterpart: with biases and BN shifts the sum is not the score (the rules are not
    silently renormalising)."""
    net = tiny_net("small_vgg")
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    interp = interpreters.build("lrp", net)
    fwd = interp.forward(x)
    index = fwd.logits.argmax(1)
    total = interp.relevance(fwd, index, False, None).flatten(1).sum(1)
    assert not torch.allclose(total, fwd.logits.gather(1, index[:, None]).squeeze(1), rtol=1e-3)
