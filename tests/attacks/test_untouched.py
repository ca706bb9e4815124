"""No attack changes a parameter, a buffer, a parameter's ``.grad`` (an existing one or a None one) or the mode."""
import pytest
import torch

from conftest import MEAN, STD
from interpfool import attacks, interpreters

KW = dict(mean=MEAN, std=STD)
ATTACKS = {
    "fgsm": lambda net, x, y: attacks.fgsm(net, x, y, 0.1, **KW),
    "fgsm_targeted": lambda net, x, y: attacks.fgsm(net, x, y, 0.1, targeted=1, **KW),
    "gradient_step": lambda net, x, y: attacks.gradient_step(net, x, y, 0.1, **KW),
    "bim": lambda net, x, y: attacks.bim(net, x, y, 0.1, 0.05, 3, **KW),
    "pgd": lambda net, x, y: attacks.pgd(net, x, y, 0.1, 0.05, 3, **KW),
    "noise": lambda net, x, y: attacks.random_noise(x, 0.1, **KW),
    "explanation": lambda net, x, y: attacks.explanation_attack(net, interpreters.build("gradcam", net), x,
                                                                objective="topk", eps=0.1, steps=3, **KW),
    "explanation_softplus": lambda net, x, y: attacks.explanation_attack(
        net, interpreters.build("simpleg", net), x, objective="location", eps=0.1, steps=3, softplus_beta=5.0, **KW),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_leaves_parameters_and_their_grad_untouched(trained, name):
    net, x, y = trained
    x, y = x[:16], y[:16]
    net.conv1.weight.grad = torch.full_like(net.conv1.weight, 0.5)      # an existing .grad
    try:
        state = {k: v.clone() for k, v in net.state_dict().items()}
        grads = {n: None if q.grad is None else q.grad.clone() for n, q in net.named_parameters()}
        x_before = x.clone()
        adv = ATTACKS[name](net, x, y)
        assert not adv.requires_grad and adv.shape == x.shape and not torch.equal(adv, x)
        assert torch.equal(x, x_before)
        assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
        for n, q in net.named_parameters():
            assert (q.grad is None) if grads[n] is None else torch.equal(q.grad, grads[n]), n
        assert not net.training
    finally:
        net.conv1.weight.grad = None
