"""A deliberately insensitive explainer, the negative control of the sanity checks: Adebayo et al. (2018, Sec. 2
and Fig. 1) show that an edge detector of the input, which never looks at the model, produces maps that resemble
saliency maps; such a method must *fail* the parameter-randomisation test (its maps stay the same)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from interpfool.interpreters.base import Forward, Interpreter

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


class EdgeDetector(Interpreter):
    """The Sobel gradient magnitude of the channel-mean input image (Sobel 1968): sqrt(G_x^2 + G_y^2), with
    G_x = S * I, G_y = S^T * I (zero padding). Depends on the input only; not registered (not an interpreter
    of the model)."""

    name = "edge (control)"

    def explain_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        img = fwd.x.mean(1, keepdim=True)
        k = SOBEL_X.to(img)
        gx = F.conv2d(img, k[None, None], padding=1)
        gy = F.conv2d(img, k.t()[None, None], padding=1)
        return (gx.square() + gy.square()).sqrt()[:, 0]
