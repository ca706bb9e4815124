"""Bad arguments: one-line ValueError naming the argument."""
import pytest
import torch

from conftest import MEAN, STD
from interpfool import attacks, interpreters
from interpfool.models.small_vgg import SmallVGG


def _calls(net, x, y):
    cam = interpreters.build("gradcam", net) if net is not None else None
    vgg = SmallVGG(num_classes=3, width=4).eval()
    return {
        "eps=-0.1": lambda: attacks.fgsm(net, x, y, -0.1),
        "eps=nan": lambda: attacks.gradient_step(net, x, y, float("nan")),
        "eps='0.1'": lambda: attacks.pgd(net, x, y, "0.1", 0.01, 2),
        "eps=-1": lambda: attacks.random_noise(x, -1),
        "steps=0": lambda: attacks.pgd(net, x, y, 0.1, 0.01, 0),
        "steps=1.5": lambda: attacks.bim(net, x, y, 0.1, 0.01, 1.5),
        "alpha=0": lambda: attacks.pgd(net, x, y, 0.1, 0, 2),
        "clamp=(1, 0)": lambda: attacks.fgsm(net, x, y, 0.1, clamp=(1, 0)),
        "clamp=(0,)": lambda: attacks.pgd(net, x, y, 0.1, 0.01, 2, clamp=(0,)),
        "clamp='01'": lambda: attacks.random_noise(x, 0.1, clamp="01"),
        "std=": lambda: attacks.fgsm(net, x, y, 0.1, mean=MEAN, std=(0.2, 0.0, 0.3)),
        "mean=": lambda: attacks.fgsm(net, x, y, 0.1, mean=(0.1, 0.2), std=STD),
        "targeted=": lambda: attacks.fgsm(net, x, y, 0.1, targeted=7),
        "steps=-3": lambda: attacks.explanation_attack(net, cam, x, objective="location", eps=0.1, steps=-3),
        "eps=-0.5": lambda: attacks.explanation_attack(net, cam, x, objective="location", eps=-0.5, steps=3),
        "gamma=-1": lambda: attacks.explanation_attack(net, cam, x, objective="location", eps=0.1, steps=3,
                                                       gamma=-1),
        "objective='corner'": lambda: attacks.explanation_attack(net, cam, x, objective="corner", eps=0.1, steps=3),
        "objective / target_map": lambda: attacks.explanation_attack(net, cam, x, eps=0.1, steps=3),
        "target_map of shape": lambda: attacks.explanation_attack(net, cam, x, torch.zeros(5, 5), eps=0.1, steps=3),
        "beta=0": lambda: attacks.explanation_attack(net, cam, x, objective="location", eps=0.1, steps=3,
                                                     softplus_beta=0),
        "softplus_beta with lrpT": lambda: attacks.explanation_attack(
            vgg, interpreters.build("lrpT", vgg), torch.rand(2, 3, 32, 32), objective="location", eps=0.1, steps=3,
            softplus_beta=5.0),
    }


@pytest.mark.parametrize("named", list(_calls(None, None, None)))
def test_bad_argument_is_one_line_naming_it(trained, named):
    net, x, y = trained
    with pytest.raises(ValueError) as err:
        _calls(net, x[:4], y[:4])[named]()
    text = str(err.value)
    assert named in text and "\n" not in text, text
    assert "allowed" in text or named == "targeted=", text
