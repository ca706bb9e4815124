"""The layer-level maps on the three paper architectures (weights=None) at 224 x 224, CPU, batch 1:
native resolution 14x14 (VGG19 features.34 input), 7x7 (ResNet50 layer4.2), 7x7 (DenseNet121
denselayer16). One forward per model, explained by every CAM variant and SimpleG_T (the forward's
graph is kept); RSI-Grad-CAM with 1 path step (one extra forward, of the baseline)."""
from __future__ import annotations

import time

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
