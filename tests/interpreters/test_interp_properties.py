"""Batching, chunking, SmoothGrad / IG / RSI-Grad-CAM by their definitions, IG completeness, and the
interpreter contract (no .backward(), one forward explained several times, frozen models, options)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interp_testnets import inputs, max_rel_dev, predicted, small_vgg  # noqa: E402

from interpfool import interpreters  # noqa: E402
from interpfool.interpreters import class_score, normalize_map  # noqa: E402
from interpfool.interpreters.paths import IMAGENET_MEAN, IMAGENET_STD, make_baseline, quadrature  # noqa: E402

FAST = {"smoothgrad": {"n": 4, "seed": 0}, "ig": {"steps": 5}, "rsigradcam": {"steps": 5}}


def build(name, net, **kw):
    return interpreters.build(name, net, **{**FAST.get(name, {}), **kw})


@pytest.fixture(scope="module")
def setup():
    net, x = small_vgg(), inputs(3, 32)
    return net, x, predicted(net, x)


def test_registry_lists_every_method():
    assert set(interpreters.names()) >= {"gradcam", "gradcampp", "gradcam_pos", "rsigradcam", "simpleg", "simplegT",
                                         "gradinput", "smoothgrad", "ig"}


@pytest.mark.parametrize("name", [n for n in interpreters.names() if n != "smoothgrad"])
def test_batched_equals_per_sample(setup, name):
    net, x, t = setup
    interp = build(name, net)
    batched = interp(x, t)
    single = torch.cat([interp(x[b:b + 1], t[b:b + 1]) for b in range(x.shape[0])])
    assert batched.abs().flatten(1).amax(1).min() > 0
    torch.testing.assert_close(batched, single, rtol=1e-10, atol=1e-12)


def test_smoothgrad_is_mean_simplegrad_over_its_noise_per_sample(setup):
    """SmoothGrad by definition, image by image: mean_k |dS/dx|(x_b + noise_kb), with the batched call's noise."""
    net, x, t = setup
    sg = interpreters.build("smoothgrad", net, n=5, sigma=0.2, seed=11, chunk_size=2)
    simple = interpreters.build("simpleg", net)
    noise = sg.noise(x)
    ref = torch.stack([torch.stack([simple.attribution(x[b:b + 1] + noise[k, b:b + 1], t[b:b + 1])[0]
                                    for k in range(5)]).mean(0) for b in range(x.shape[0])])
    assert max_rel_dev(sg.attribution(x, t), ref) <= 1e-12


def test_smoothgrad_noise_is_relative_to_each_samples_range(setup):
    net, x, _ = setup
    x = x.clone()
    x[1] *= 10.0                                  # sample 1 has a 10x larger range
    sg = interpreters.build("smoothgrad", net, n=8, sigma=0.1, seed=0)
    noise = sg.noise(x)                           # [n, B, C, H, W]
    expected = 0.1 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    measured = noise.transpose(0, 1).flatten(1).std(1)
    torch.testing.assert_close(measured, expected, rtol=0.03, atol=0)
    assert not torch.equal(noise[0], noise[1]), "every copy must get its own noise"
    torch.testing.assert_close(sg.noise(x), noise, rtol=0, atol=0)          # seeded: reproducible


@pytest.mark.parametrize("name,kw", [("smoothgrad", {"n": 5, "seed": 2}), ("ig", {"steps": 7}),
                                     ("ig", {"steps": 7, "method": "riemann_trapezoid", "baseline": "blur"}),
                                     ("rsigradcam", {"steps": 7}), ("rsigradcam", {"steps": 7, "baseline": "zeros"})])
def test_chunked_equals_unchunked(setup, name, kw):
    net, x, t = setup
    whole = interpreters.build(name, net, **kw).attribution(x, t)
    for chunk in (1, 3, 100):
        part = interpreters.build(name, net, chunk_size=chunk, **kw).attribution(x, t)
        torch.testing.assert_close(part, whole, rtol=1e-11, atol=1e-14)


def _completeness_errors(net, x, t, baseline, method):
    with torch.no_grad():
        gaps = class_score(net(x), t) - class_score(net(make_baseline(x, baseline)), t)
    errors = []
    for steps in (8, 32, 128):
        attr = interpreters.build("ig", net, steps=steps, method=method, baseline=baseline).attribution(x, t)
        errors.append(float((attr.flatten(1).sum(1) - gaps).abs().max()))
    return errors, float(gaps.abs().max())


@pytest.mark.parametrize("method", ["riemann_right", "riemann_trapezoid"])
def test_ig_completeness_error_shrinks_with_steps(setup, method):
    """Sundararajan et al. Prop. 1: sum_i IG_i = S(x) - S(x'), up to the quadrature error."""
    net, x, t = setup
    (e8, e32, e128), gap = _completeness_errors(net, x, t, "black", method)
    print(f"IG {method} completeness error: 8 steps {e8:.2e}, 32 steps {e32:.2e}, 128 steps {e128:.2e} "
          f"(max |S(x) - S(x')| = {gap:.2e})")
    assert e8 > e32 > e128
    # a ReLU net's path gradient is piecewise constant: every rule converges at first order here
    assert e128 < 0.2 * e8 and e128 < 0.05 * gap


def test_rsigradcam_integral_is_complete(setup):
    """Chain rule along the path: sum over channels and cells of the Riemann-Stieltjes integral of
    dS/dA dA -> S(x) - S(x') as the path is refined."""
    net, x, t = setup
    with torch.no_grad():
        gaps = class_score(net(x), t, "prob") - class_score(net(make_baseline(x, "black")), t, "prob")
    errors = []
    for steps in (4, 16, 64):
        interp = interpreters.build("rsigradcam", net, steps=steps)
        fwd = interp.forward(x)
        integral = interp.integrated_layer_gradient(fwd, t, create_graph=False).detach()
        errors.append(float((integral.flatten(1).sum(1) - gaps).abs().max()))
    print(f"RSI-Grad-CAM completeness error: 4/16/64 steps {errors}, max |gap| {float(gaps.abs().max()):.2e}")
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.2 * errors[0] and errors[2] < 0.05 * float(gaps.abs().max())


def test_quadrature_rules_integrate_polynomials():
    f = lambda a: 3 * a ** 2                          # noqa: E731  int_0^1 = 1
    for method, steps, tol in [("riemann_right", 1000, 2e-3), ("riemann_left", 1000, 2e-3),
                               ("riemann_middle", 100, 1e-4), ("riemann_trapezoid", 101, 1e-4),
                               ("gausslegendre", 3, 1e-12)]:
        alphas, weights = quadrature(method, steps)
        assert abs(float((weights * f(alphas)).sum()) - 1.0) < tol, method
        assert abs(float(weights.sum()) - 1.0) < 1e-12, method


def test_black_baseline_is_pixel_black():
    x = inputs(2, 8)
    black = make_baseline(x, "black")
    pixels = black * torch.tensor(IMAGENET_STD, dtype=x.dtype).view(1, 3, 1, 1) \
        + torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    torch.testing.assert_close(pixels, torch.zeros_like(x), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="mean/std"):
        make_baseline(torch.zeros(1, 1, 8, 8), "black")
    blur = make_baseline(x, "blur", blur_sigma=2.0)
    assert blur.shape == x.shape and blur.std() < x.std()


@pytest.mark.parametrize("name", interpreters.names())
def test_attribution_reduces_to_the_map(setup, name):
    net, x, t = setup
    interp = build(name, net)
    attr = interp.attribution(x, t)
    assert attr.dim() == 4 and attr.shape[0] == x.shape[0]
    torch.testing.assert_close(normalize_map(interp.reduce_channels(attr), interp.normalize), interp(x, t),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", interpreters.names())
def test_one_forward_two_classes_then_ce_backprop_without_touching_grad(setup, name):
    """The fooling step: fwd = interp.forward(x); maps for two classes with create_graph=True; CE on the
    same logits + penalty; parameter gradients by autograd.grad. The interpreter never fills .grad."""
    net, x, _ = setup
    interp = build(name, net)
    fwd = interp.forward(x)
    h1 = interp.explain(fwd, 1, create_graph=True)
    h2 = interp.explain(fwd, 2, create_graph=True)
    assert h1.requires_grad and h2.requires_grad
    assert not interp.explain(fwd, 1).requires_grad        # create_graph=False: detached map
    loss = F.cross_entropy(fwd.logits, torch.tensor([0, 1, 2])) + ((h1 - h2) ** 2).mean()
    params = [p for p in net.parameters()]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    assert all(p.grad is None for p in params)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


@pytest.mark.parametrize("name", interpreters.names())
def test_frozen_model_gives_the_same_map(setup, name):
    net, x, t = setup
    expected = build(name, net)(x, t)
    frozen = small_vgg()
    frozen.requires_grad_(False)
    torch.testing.assert_close(build(name, frozen)(x, t), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,kw,match", [
    ("ig", {"steps": 0}, "steps=0"), ("ig", {"method": "simpson"}, "simpson"), ("ig", {"baseline": "white"}, "white"),
    ("ig", {"chunk_size": 0}, "chunk_size=0"), ("ig", {"steps": 1, "method": "riemann_trapezoid"}, "steps >= 2"),
    ("smoothgrad", {"sigma": -1}, "sigma=-1"), ("smoothgrad", {"n": 2.5}, "n=2.5"), ("smoothgrad", {"seed": "a"}, "'a'"),
    ("rsigradcam", {"steps": -3}, "steps=-3"), ("rsigradcam", {"blur_sigma": 0}, "blur_sigma=0"),
    ("rsigradcam", {"positive_grads": "yes"}, "'yes'"), ("gradcampp", {"eps": 0}, "eps=0"),
    ("gradcam", {"score": "softmax"}, "softmax"), ("simpleg", {"normalize": "l2"}, "l2"),
    ("gradcam", {"layer": "features.99"}, "features.99"),
])
def test_bad_options_raise_value_error_naming_them(setup, name, kw, match):
    with pytest.raises(ValueError, match=match):
        interpreters.build(name, setup[0], **kw)
