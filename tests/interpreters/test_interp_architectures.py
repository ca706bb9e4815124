"""The layer-level maps on the three paper architectures (weights=None) at 224 x 224, CPU, batch 1:
native resolution 14x14 (VGG19 features.34 input), 7x7 (ResNet50 layer4.2), 7x7 (DenseNet121
denselayer16). One forward per model, explained by every CAM variant and SimpleG_T (the forward's
graph is kept); RSI-Grad-CAM with 1 path step (one extra forward, of the baseline)."""
from __future__ import annotations

import time

import pytest
import torch

from interpfool import interpreters, models

CAMS = ["gradcam", "gradcampp", "gradcam_pos", "simplegT", "rsigradcam"]


def test_layer_maps_on_paper_architectures_have_native_size():
    start = time.perf_counter()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    for arch, side in [("vgg19", 14), ("resnet50", 7), ("densenet121", 7)]:
        net = models.build(arch, num_classes=10).eval()
        interps = {n: interpreters.build(n, net, **({"steps": 1} if n == "rsigradcam" else {})) for n in CAMS}
        fwd = interps["gradcam"].forward(x)
        for name, interp in interps.items():
            h = interp.explain(fwd, "pred")
            assert h.shape == (1, side, side), f"{arch} {name}: {tuple(h.shape)}"
            assert torch.isfinite(h).all() and (h >= 0).all(), f"{arch} {name}"
        del net, fwd, interps
    elapsed = time.perf_counter() - start
    print(f"224x224 CAM maps on vgg19/resnet50/densenet121: {elapsed:.1f} s (budget: 30 s)")


SMALL = {"small_vgg": {"width": 8, "hidden": 16}, "small_resnet": {"width": 8},
         "small_densenet": {"width": 8, "growth": 4, "layers": 2, "bn_size": 2}}
FEW_STEPS = {"rsigradcam": {"steps": 2}, "ig": {"steps": 2}, "smoothgrad": {"n": 2}}


@pytest.mark.parametrize("side", [28, 64])   # Fashion-MNIST, the synthetic benchmark
@pytest.mark.parametrize("arch", list(SMALL))
def test_every_interpreter_runs_on_the_small_models(arch, side):
    """Every registered interpreter on the small models of the paper's three families: layer maps at H/4
    (7x7 at 28x28, 16x16 at 64x64), input maps at the input size; finite, not all zero, and
    differentiable w.r.t. the parameters (create_graph=True, as a fooling step needs)."""
    torch.manual_seed(0)
    net = models.build(arch, num_classes=10, **SMALL[arch]).double().eval()
    x = torch.randn(2, 3, side, side, dtype=torch.float64)
    for name in interpreters.names():
        interp = interpreters.build(name, net, **FEW_STEPS.get(name, {}))
        h = interp(x, "pred", create_graph=True)
        size = side // 4 if interp.uses_layer else side
        assert h.shape == (2, size, size), f"{arch} {name}: {tuple(h.shape)}"
        assert torch.isfinite(h).all() and h.abs().amax() > 0, f"{arch} {name}"
        assert h.requires_grad, f"{arch} {name}: no graph to the parameters"
