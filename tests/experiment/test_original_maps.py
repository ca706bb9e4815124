"""theta0's maps reused from one evaluation to the next (``experiment.original_maps``): the report of a second
theta* against the same theta0 is bit-identical with and without the store; stochastic maps, another theta0 or
another target are never served from it."""
import json
from functools import partial

import torch

from interpfool.experiment.evaluate import evaluate_pair
from interpfool.experiment.original_maps import OriginalMaps, fingerprint
from interpfool.fooling import LocationFooling, TopKFooling
from interpfool.interpreters.registry import build
from interpfool.metrics import perturb_parameters
from interpfool.models.small_vgg import SmallVGG

INTERPS = {"gradcam": partial(build, "gradcam"), "ig": partial(build, "ig", steps=4),
           "smoothgrad": partial(build, "smoothgrad", n=3), "smoothgrad_seeded": partial(build, "smoothgrad", n=3, seed=5)}
KEYS = {n: n for n in INTERPS}


def _case():
    torch.manual_seed(3)
    net0 = SmallVGG(num_classes=3, width=4, hidden=8).eval()
    fooled = [perturb_parameters(net0, 0.3, torch.Generator().manual_seed(s)).eval() for s in (1, 2)]
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    return net0, fooled, [(x[:4], y[:4]), (x[4:], y[4:])]


def _report(net0, net, batches, fooling, store=None, seed=0):
    torch.manual_seed(seed)              # unseeded SmoothGrad draws its noise from the global RNG
    r = evaluate_pair(net0, net, batches, INTERPS, fooling, keep_maps=2, original_maps=store, interp_keys=KEYS)
    r["figure"] = {k: v.tolist() for k, v in r["figure"]["maps"].items()}
    return json.dumps(r, sort_keys=True)     # NaN (undefined top-k tests) written as NaN, so equal reports compare equal


def test_a_second_fooled_model_gets_the_same_report_with_theta0_maps_from_the_store():
    net0, (net_a, net_b), batches = _case()
    store = OriginalMaps()
    for fooling in (TopKFooling(), LocationFooling()):
        _report(net0, net_a, batches, fooling, store)                 # fills the store (Top-k), or reads it
        misses = store.misses
        served = _report(net0, net_b, batches, fooling, store)
        assert store.misses == misses                                 # every deterministic map served
        assert served == _report(net0, net_b, batches, fooling)       # bit-identical to computing theta0 again
    # 3 deterministic interpreters x 2 batches, computed once: Location asks for the same maps as Top-k (same target,
    # no classes); unseeded SmoothGrad is never stored (6 hits per call after the first)
    assert len(store.entries) == 6 and store.misses == 6 and store.hits == 18


def test_unseeded_smoothgrad_is_not_deterministic_and_a_seeded_one_is():
    net0, _, _ = _case()
    assert not build("smoothgrad", net0).deterministic and build("smoothgrad", net0, seed=1).deterministic
    assert build("gradcam", net0).deterministic and build("ig", net0).deterministic


def test_another_theta0_empties_the_store_and_another_target_misses():
    net0, (net_a, _), batches = _case()
    store = OriginalMaps()
    _report(net0, net_a, batches, TopKFooling(), store)
    assert store.entries
    first = store.theta0
    evaluate_pair(net0, net_a, batches, INTERPS, TopKFooling(), target="pred", original_maps=store, interp_keys=KEYS)
    assert len(store.entries) == 12                                   # 'pred' maps are other entries
    _report(net_a, net0, batches, TopKFooling(), store)               # net_a as theta0
    assert store.theta0 != first and len(store.entries) == 6


def test_fingerprint_sees_values_shapes_and_dtypes():
    a = torch.arange(6.0)
    assert fingerprint(a) == fingerprint(a.clone())
    assert fingerprint(a) != fingerprint(a.view(2, 3))
    assert fingerprint(a) != fingerprint(a.double())
    b = a.clone()
    b[5] = 5.000001
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(torch.tensor(3)) != fingerprint(torch.tensor(4))
