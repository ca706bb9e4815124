"""Target handling: int, [B] tensor, scalar tensor, "label", "pred"; anything else is a ValueError
that names the offending value."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interp_testnets import inputs, small_vgg  # noqa: E402

from interpfool import interpreters  # noqa: E402
from interpfool.interpreters import resolve_target  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    net, x = small_vgg(), inputs(3, 32)
    return net, x, interpreters.build("gradcampp", net)


def test_every_target_form_selects_the_same_classes(setup):
    net, x, cam = setup
    with torch.no_grad():
        pred = net(x).argmax(1)
    labels = torch.tensor([1, 3, 4])
    by_label = cam(x, "label", labels=labels)
    torch.testing.assert_close(by_label, cam(x, labels))
    torch.testing.assert_close(by_label, torch.cat([cam(x[b:b + 1], int(c)) for b, c in enumerate(labels)]))
    torch.testing.assert_close(cam(x, "pred"), cam(x, pred))
    torch.testing.assert_close(cam(x, 2), cam(x, torch.tensor(2)))
    torch.testing.assert_close(cam(x, 2), cam(x, torch.tensor([2, 2, 2], dtype=torch.int32)))
    assert not torch.equal(cam(x, 1), cam(x, 3))


def test_resolve_target_forms():
    logits = torch.randn(3, 5)
    assert resolve_target("pred", logits).tolist() == logits.argmax(1).tolist()
    assert resolve_target(4, logits).tolist() == [4, 4, 4]
    assert resolve_target(torch.tensor([0, 1, 2]), logits).tolist() == [0, 1, 2]
    assert resolve_target("label", logits, labels=torch.tensor([2, 2, 0])).tolist() == [2, 2, 0]
    assert resolve_target("label", logits, labels=[1, 2, 3]).tolist() == [1, 2, 3]


@pytest.mark.parametrize("target,labels,match", [
    ("foo", None, "'foo'"),
    ("label", None, "labels="),
    ("label", torch.tensor([0, 9, 1]), r"\[9\]"),
    (5, None, "5"),
    (-1, None, "-1"),
    (True, None, "True"),
    (1.0, None, "1.0"),
    (None, None, "None"),
    (torch.tensor([0.5, 1.0, 2.0]), None, "float"),
    (torch.tensor([0, 1]), None, r"\(2,\)"),
    (torch.tensor([0, 7, -2]), None, r"\[7, -2\]"),
])
def test_bad_target_raises_value_error_naming_it(setup, target, labels, match):
    _, x, cam = setup
    with pytest.raises(ValueError, match=match):
        cam(x, target, labels=labels)


@pytest.mark.parametrize("name,options", [("ig", {"steps": 4, "chunk_size": 2}), ("smoothgrad", {"n": 4, "seed": 0})])
def test_input_only_methods_skip_the_inputs_own_forward_and_give_the_same_map(name, options):
    """IG and SmoothGrad read only x: with a given target a standalone call runs the model on the path / noisy
    copies alone (x's own forward, 1/steps of IG's work, is skipped), and the map is the one explained from it."""
    net, x = small_vgg(), inputs(3, 32)
    interp = interpreters.build(name, net, **options)
    seen = []
    hook = net.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    try:
        given = interp(x, torch.tensor([1, 3, 4]))
        attr = interp.attribution(x, "label", labels=torch.tensor([1, 3, 4]))
        assert all(b % 3 == 0 and b > 3 for b in seen), seen       # path / noise batches only, never x alone
        seen.clear()
        from_forward = interp.explain(interp.forward(x), torch.tensor([1, 3, 4]))
        assert seen[0] == 3                                         # the explicit route does run x's forward
    finally:
        hook.remove()
    torch.testing.assert_close(given, from_forward, rtol=0, atol=0)
    torch.testing.assert_close(interp.reduce_channels(attr), interp.explain_raw(interp.forward(x), torch.tensor([1, 3, 4]), False))
    torch.testing.assert_close(interp(x, "pred"), interp(x, net(x).argmax(1)), rtol=0, atol=0)


@pytest.mark.parametrize("target,labels,match", [
    ("label", torch.tensor([0, 9, 1]), r"\[9\]"),
    (5, None, "5"),
    (-1, None, "-1"),
    (torch.tensor([0, 7, 1]), None, r"\[7\]"),
    (torch.tensor([0, 1]), None, r"\(2,\)"),
])
def test_input_only_methods_still_name_a_bad_target(target, labels, match):
    net, x = small_vgg(), inputs(3, 32)
    with pytest.raises(ValueError, match=match):
        interpreters.build("ig", net, steps=2)(x, target, labels=labels)
