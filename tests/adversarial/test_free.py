"""Free adversarial training (Shafahi et al. 2019, Alg. 1) and the PGD validation number."""
import copy
import functools

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from interpfool import interpreters, models
from interpfool.adversarial import FreeAdversary, PGDSpec, ReplayLoader, pgd_correct, pgd_top1
from interpfool.experiment.original import ClassifierModule, config_hash, original_key
from interpfool.fooling import FoolingModule, LocationFooling

MEAN, STD = 0.5, 0.25


def _net(classes=4):
    return models.build("small_vgg", num_classes=classes, width=4, hidden=8)


def _images(n=6, size=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pixel = torch.rand(n, 3, size, size, generator=gen)
    pixel[0] = 1.0                      # saturated images: the [0, 1] clip must act
    pixel[1] = 0.0
    return (pixel - MEAN) / STD, torch.randint(0, 4, (n,), generator=gen)


def _manual_free_step(net, x, y, delta, eps, step):
    """Shafahi Alg. 1 lines 6-10 written out independently: gradients of CE at clip(pixel + delta) w.r.t. the
    parameters and delta (autograd.grad), then delta + step * sign(g), clipped to [-eps, eps]."""
    params = [p for p in net.parameters() if p.requires_grad]
    d = delta.clone().requires_grad_(True)
    adv = ((x * STD + MEAN + d).clamp(0, 1) - MEAN) / STD
    grads = torch.autograd.grad(F.cross_entropy(net(adv), y), [*params, d])
    return grads[:-1], (delta + step * grads[-1].sign()).clamp(-eps, eps)


def test_delta_stays_in_the_eps_ball_and_the_image_in_the_pixel_range():
    net = _net().eval()
    x, y = _images()
    adv = FreeAdversary(eps=0.05, replays=3, mean=MEAN, std=STD)
    for _ in range(5):
        xa = adv.perturb(x)
        pixel = xa * STD + MEAN
        assert pixel.min() >= 0 and pixel.max() <= 1 + 1e-6
        assert (pixel - (x * STD + MEAN)).abs().max() <= 0.05 + 1e-6
        torch.autograd.backward(F.cross_entropy(net(xa), y))
        assert adv.ascend()
        assert adv.delta.abs().max() <= 0.05 + 1e-7
    # sign steps of size eps from 0, clipped to the ball: every coordinate is -eps, 0 or eps, most of them moved
    on_grid = torch.stack([(adv.delta - v).abs() < 1e-7 for v in (-0.05, 0.0, 0.05)]).any(0)
    assert on_grid.all() and (adv.delta != 0).float().mean() > 0.5
    # a smaller batch takes the first slots; a larger one grows the perturbation with zero slots
    assert adv.perturb(x[:2]).shape == (2, 3, 16, 16)
    adv.ascend()
    assert adv.delta.shape[0] == 6


def test_parameter_gradients_and_delta_update_equal_a_manual_computation():
    """One training step of ClassifierModule with the adversary: the parameters' gradient from the step's single
    backward equals CE's gradient at clip(x + delta) computed independently, and delta moves by Alg. 1's rule."""
    torch.manual_seed(0)
    net = _net().double()
    x, y = _images()
    x = x.double()
    adv = FreeAdversary(eps=0.03, replays=2, step=0.01, mean=MEAN, std=STD)
    gen = torch.Generator().manual_seed(1)
    adv.delta = ((torch.rand(x.shape, generator=gen, dtype=torch.float64) * 2 - 1) * 0.03)
    delta0 = adv.delta.clone()
    module = ClassifierModule(net, adversary=adv, seed=5)
    module.log = lambda *a, **k: None
    reference = copy.deepcopy(net)         # train mode, as in training: the same dropout draws from the same seed
    torch.manual_seed(7)
    loss = module.training_step((x, y), 0)
    torch.autograd.backward(loss)       # Lightning's one backward
    module.on_after_backward()
    xs = x.flip(-1) if module._flip else x
    torch.manual_seed(7)
    grads, delta1 = _manual_free_step(reference, xs, y, delta0, eps=0.03, step=0.01)
    for p, g in zip(net.parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(adv.delta, delta1, rtol=0, atol=1e-15)
    assert not torch.equal(delta1, delta0)


def _count_backward(monkeypatch):
    calls = []
    original = torch.autograd.backward

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(torch.autograd, "backward", counted)
    return calls


def test_replays_one_backward_per_step_and_persistent_delta_in_a_real_fit(monkeypatch):
    """Lightning fit over ReplayLoader(m=3): each batch is trained on 3 times in a row, one backward per optimizer
    step, and each replay starts from the delta the previous one left (Alg. 1)."""
    torch.manual_seed(0)
    x, y = _images(n=16)
    ids = torch.arange(16)
    loader = DataLoader(TensorDataset(x, y, ids), batch_size=4, shuffle=False)
    adv = FreeAdversary(eps=0.05, replays=3, mean=MEAN, std=STD)
    seen, starts, ends = [], [], []

    class Probe(ClassifierModule):
        def training_step(self, batch, idx):
            seen.append(int(batch[2][0]))
            starts.append(None if adv.delta is None else adv.delta.clone())
            return super().training_step(batch, idx)

        def on_after_backward(self):
            super().on_after_backward()
            ends.append(adv.delta.clone())

    module = Probe(_net(), adversary=adv, seed=0)
    calls = _count_backward(monkeypatch)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, ReplayLoader(loader, 3))
    assert seen == [0, 0, 0, 4, 4, 4, 8, 8, 8, 12, 12, 12]
    assert trainer.global_step == 12 and len(calls) == 12
    for k in range(1, 12):               # the perturbation persists across replays and minibatches
        assert torch.equal(starts[k], ends[k - 1])
    assert len(ReplayLoader(loader, 3)) == 12


def test_fooling_module_with_adversary_ce_at_x_plus_delta_penalty_on_clean_maps(monkeypatch):
    torch.manual_seed(0)
    net = _net().double()
    make = functools.partial(interpreters.REGISTRY["gradcam"])
    adv = FreeAdversary(eps=0.03, replays=2, mean=MEAN, std=STD)
    adv.delta = torch.full((6, 3, 16, 16), 0.03, dtype=torch.float64)
    fooled = FoolingModule(net, make, LocationFooling(), lam=3.0, adversary=adv)
    plain = FoolingModule(copy.deepcopy(net), make, LocationFooling(), lam=3.0)
    fooled.train()                       # the fooling module keeps its model in eval mode
    plain.train()
    x, y = _images()
    x = x.double()
    out, ref = fooled.objective(x, y), plain.objective(x, y)
    torch.testing.assert_close(out["penalty"], ref["penalty"])           # clean maps
    xa = ((x * STD + MEAN + 0.03).clamp(0, 1) - MEAN) / STD
    torch.testing.assert_close(out["ce"], F.cross_entropy(net(xa), y))  # CE at clip(x + delta)
    calls = _count_backward(monkeypatch)
    torch.autograd.backward(out["loss"])
    fooled.on_after_backward()
    assert len(calls) == 1 and adv.delta.abs().max() <= 0.03 + 1e-12
    assert not torch.equal(adv.delta, torch.full_like(adv.delta, 0.03))


def test_adversarial_theta0_has_its_own_cache_key(compose_cfg):
    plain = original_key(compose_cfg([]))
    assert "adversarial" not in plain["original"]          # the plain key is as before the option existed
    free = original_key(compose_cfg(["original.adversarial.kind=free"]))
    assert config_hash(free) != config_hash(plain)
    assert config_hash(original_key(compose_cfg(["original.adversarial.kind=free", "original.adversarial.eps=0.1"]))) \
        != config_hash(free)
    # validation-only settings change no weight: same entry
    assert config_hash(original_key(compose_cfg(["original.adversarial.kind=free",
                                                 "original.adversarial.pgd_steps=3"]))) == config_hash(free)
    # the fooling run's adversarial training is not theta0's
    assert config_hash(original_key(compose_cfg(["adversarial=free"]))) == config_hash(plain)


def test_pgd_zero_radius_is_clean_accuracy_and_leaves_parameters_alone():
    torch.manual_seed(0)
    net = _net().eval()
    x, y = _images(n=8)
    y = net(x).argmax(1)                                    # every image correct before the attack
    assert float(pgd_top1(net, x, y, 0.0, 0.0, 3, MEAN, STD)) == 1.0
    before = [p.clone() for p in net.parameters()]
    pgd_top1(net, x, y, 0.2, 0.05, 3, MEAN, STD)
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_pgd_on_a_linear_model_reaches_the_closed_form_optimum():
    """Two-class linear model: CE grows with the margin z_other - z_y = (w_other - w_y) . x, so the worst point of
    the box (eps ball ∩ [0, 1]) is clip(x + eps * sign(w_other - w_y)) (FGSM, Goodfellow et al. 2015, is exact
    here). PGD from a random start (10 steps of 2.5 eps / 10) and one FGSM-sized step both reach it."""
    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2)).double()
    xl = torch.rand(40, 3, 4, 4, dtype=torch.float64)
    yl = lin(xl).argmax(1)                                  # all correct before the attack
    w = lin[1].weight
    worst = (xl + 0.05 * (w[1 - yl] - w[yl]).sign().view(-1, 3, 4, 4)).clamp(0, 1)
    expect = lin(worst).argmax(1) == yl
    assert 0 < int(expect.sum()) < 40                       # the radius flips some images, not all
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(pgd_correct(lin, xl, yl, 0.05, 0.0125, 10, generator=gen), expect)
    assert torch.equal(pgd_correct(lin, xl, yl, 0.05, 0.05, 1, random_start=False), expect)
    assert float(pgd_top1(lin, xl, yl, 0.05, 0.0125, 10)) == float(expect.float().mean())


def test_pgd_spec_and_replay_loader_checks():
    spec = PGDSpec(eps=0.1, alpha=0.02, steps=2, batches=2)
    assert spec.wants(0) and spec.wants(1) and not spec.wants(2)
    with pytest.raises(ValueError, match="replays"):
        ReplayLoader([1, 2], 0)
    with pytest.raises(ValueError, match="eps"):
        FreeAdversary(eps=-1)
