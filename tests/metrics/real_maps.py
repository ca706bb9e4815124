"""Real maps for the metric tests: Grad-CAM maps of a small VGG (theta0) and of a copy with Gaussian noise
on its parameters (a stand-in for theta*), and the models' logits. Grad-CAM's ReLU makes many cells tie at 0."""
from __future__ import annotations

import functools

import torch

from interpfool import interpreters, models
from interpfool.metrics import perturb_parameters


@functools.lru_cache(maxsize=None)
def gradcam_pair(batch: int = 6, side: int = 64, sigma: float = 0.3):
    """(h* [B, 16, 16], h0 [B, 16, 16], logits* [B, 5], logits0 [B, 5]) in float64 at 64 x 64 inputs."""
    torch.manual_seed(3)
    net0 = models.build("small_vgg", num_classes=5, width=8, hidden=16).double().eval()
    net = perturb_parameters(net0, sigma, torch.Generator().manual_seed(4), "relative").eval()
    x = torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        logits0, logits = net0(x), net(x)
    target = logits0.argmax(1)              # explain theta0's prediction in both models (non-zero CAMs)
    h0 = interpreters.build("gradcam", net0)(x, target)
    h = interpreters.build("gradcam", net)(x, target)
    return h.detach(), h0.detach(), logits, logits0
