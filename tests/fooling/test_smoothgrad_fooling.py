"""SmoothGrad as the fooled interpreter (Heo et al. 2019, Sec. 5, Figure 5b): the Location objective through
SmoothGrad has exact second-order gradients, a few steps lower the SmoothGrad Location penalty, and a run fooled
through SmoothGrad with few noise samples is measured with another SmoothGrad (``eval.interp_kwargs``)."""
import functools

import pytest
import torch

from interpfool import interpreters, models
from interpfool.experiment.build import checked_build
from interpfool.experiment.cli import BadInput
from interpfool.fooling import FoolingModule, LocationFooling
from interpfool.gradcheck import directional_fd_check


def _module(n, seed=None, dtype=torch.float64, lam=3.0):
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=4, width=4, hidden=8).to(dtype)
    make = functools.partial(interpreters.REGISTRY["smoothgrad"], n=n, sigma=0.1, seed=seed)
    module = FoolingModule(net, make, LocationFooling(), lam=lam, lr=3e-3)
    module.train()                       # eval mode kept (frozen BatchNorm)
    return module


def test_smoothgrad_location_objective_matches_finite_differences():
    """Noise fixed (seed): d(CE + lambda * location(SmoothGrad))/dtheta by double backprop equals central
    differences in float64 — SmoothGrad with create_graph=True is twice differentiable as the fooled map."""
    module = _module(n=3, seed=11)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    y = torch.tensor([0, 2])
    names = ["features.0.weight", "features.1.weight", "classifier.0.weight", "classifier.3.bias"]
    result = directional_fd_check(lambda: module.objective(x, y)["loss"], module.net, names)
    for name, (analytic, numeric, rel) in result.items():
        assert rel < 1e-4, (name, analytic, numeric)
    (g,) = torch.autograd.grad(module.objective(x, y)["penalty"], module.net.features[0].weight)
    assert g.abs().sum() > 0             # the penalty itself reaches the first conv


def test_a_few_steps_through_smoothgrad_lower_the_smoothgrad_location_penalty():
    """8 Adam steps on CE + lambda * location(SmoothGrad, n=4, fresh noise each step) lower the penalty of the
    map measured with other noise (n=16, a fixed seed) on the same images."""
    module = _module(n=4, dtype=torch.float32, lam=20.0)
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 3, 16, 16, generator=gen), torch.randint(0, 4, (8,), generator=gen)
    judge = interpreters.build("smoothgrad", module.net, n=16, sigma=0.1, seed=99)
    fooling = LocationFooling()

    def measured():
        return float(fooling.penalty(judge(x, "label", labels=y), None).mean())

    before = measured()
    opt = torch.optim.Adam(module.net.parameters(), lr=3e-3)
    for _ in range(8):
        opt.zero_grad()
        torch.autograd.backward(module.objective(x, y)["loss"])
        opt.step()
    after = measured()
    assert after < before - 0.02, (before, after)


def test_eval_interp_kwargs_measure_smoothgrad_with_its_own_settings(compose_cfg):
    tiny = ["model.width=4", "data.train_size=48", "data.val_size=16", "data.test_size=8"]
    built = checked_build(compose_cfg(["experiment=synthetic_smoothgrad", *tiny]))
    assert built.interp(net=built.net).n == 8                       # the attacker's SmoothGrad
    assert built.eval_interps["smoothgrad"](net=built.net).n == 16  # the measurement's (eval.interp_kwargs)
    assert set(built.eval_interps) == {"smoothgrad", "simpleg"}
    plain = checked_build(compose_cfg(["interp=smoothgrad_n8", "eval.interpreters=[smoothgrad]", *tiny]))
    assert plain.eval_interps["smoothgrad"](net=plain.net).n == 8   # default: the run's own settings
    with pytest.raises(BadInput, match="eval.interp_kwargs names gradinput"):
        checked_build(compose_cfg(["experiment=synthetic_smoothgrad", "+eval.interp_kwargs.gradinput={}", *tiny]))
    with pytest.raises(BadInput, match="eval.interp_kwargs.smoothgrad"):
        checked_build(compose_cfg(["experiment=synthetic_smoothgrad", "+eval.interp_kwargs.smoothgrad.bogus=1", *tiny]))
