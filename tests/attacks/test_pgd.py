"""BIM (Kurakin et al. 2017) and PGD (Madry et al. 2018): inside the eps ball and the pixel range, and at
least as strong as FGSM at the same eps on a trained model; random sign noise of that norm barely matters."""
import torch

from conftest import MEAN, STD
from interpfool.attacks import bim, fgsm, pgd, random_noise

MEAN_T, STD_T = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)


def _pixels(x):
    return x * STD_T + MEAN_T


def _accuracy(net, x, y):
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def test_bim_and_pgd_stay_in_the_ball_and_the_pixel_range(trained):
    net, x, y = trained
    eps = 0.1
    p = _pixels(x)
    for adv in (bim(net, x, y, eps, 0.04, 5, mean=MEAN, std=STD, clamp=(0.05, 0.95)),
                pgd(net, x, y, eps, 0.04, 5, mean=MEAN, std=STD, clamp=(0.05, 0.95))):
        q = _pixels(adv)
        assert (q - p.clamp(0.05, 0.95)).abs().max() <= eps + 1e-6
        assert q.min() >= 0.05 - 1e-6 and q.max() <= 0.95 + 1e-6
        assert (q - p).abs().max() > eps - 1e-4          # it does use the budget


def test_iterative_attacks_lower_accuracy_at_least_as_much_as_fgsm(trained):
    net, x, y = trained
    clean = _accuracy(net, x, y)
    for eps in (0.05, 0.1):
        one = _accuracy(net, fgsm(net, x, y, eps, mean=MEAN, std=STD), y)
        it = _accuracy(net, bim(net, x, y, eps, eps / 4, 10, mean=MEAN, std=STD), y)
        rs = _accuracy(net, pgd(net, x, y, eps, eps / 4, 10, mean=MEAN, std=STD), y)
        assert it <= one and rs <= one, (eps, one, it, rs)
    assert clean - _accuracy(net, bim(net, x, y, 0.1, 0.025, 10, mean=MEAN, std=STD), y) > 0.5   # a real drop


def test_random_noise_of_the_same_norm_barely_changes_accuracy(trained):
    net, x, y = trained
    eps = 0.1
    noisy = random_noise(x, eps, mean=MEAN, std=STD, clamp=None)
    assert torch.allclose((_pixels(noisy) - _pixels(x)).abs(), torch.full_like(x, eps), atol=1e-6)
    clean, fgsm_acc = _accuracy(net, x, y), _accuracy(net, fgsm(net, x, y, eps, mean=MEAN, std=STD), y)
    noise_acc = _accuracy(net, random_noise(x, eps, mean=MEAN, std=STD), y)
    assert clean - noise_acc <= 0.02 and clean - fgsm_acc > 0.3


def test_seeded_draws_repeat_and_differ_by_seed(trained):
    net, x, y = trained
    same = [pgd(net, x, y, 0.1, 0.05, 2, generator=torch.Generator().manual_seed(3), mean=MEAN, std=STD)
            for _ in range(2)]
    assert torch.equal(*same)
    other = pgd(net, x, y, 0.1, 0.05, 2, generator=torch.Generator().manual_seed(4), mean=MEAN, std=STD)
    assert not torch.equal(same[0], other)
    assert torch.equal(random_noise(x, 0.1, generator=torch.Generator().manual_seed(1)),
                       random_noise(x, 0.1, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(pgd(net, x, y, 0.0, 0.05, 2), x)


def test_targeted_pgd_reaches_the_target_class(trained):
    net, x, y = trained
    target = (y + 1) % 3
    adv = pgd(net, x, y, 0.2, 0.05, 10, mean=MEAN, std=STD, targeted=target)
    with torch.no_grad():
        assert float((net(adv).argmax(1) == target).float().mean()) > 0.9
