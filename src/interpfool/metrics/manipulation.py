"""Evidence of manipulation that a model shows without its training history (the audit, ``jobs/audit.py``).

* ``uniform_logit_share``: the share of the logits' variance over images that is class-uniform,
  var_x m(x) / (var_x m(x) + E_x var_i (z_i(x) - m(x))), m(x) = mean_i z_i(x). The softmax cannot see a
  class-uniform component (Lerma & Lucas 2023, eq. 2: softmax(z + t) = softmax(z)); their manipulation adds
  t(x) = K sum_k A_pqk(x), which makes this share approach 1.
* ``pre_post_agreement``: per-image Spearman rho between the map of the logit z_c and the map of the
  probability y_c of one method (Lerma & Lucas 2023, Sec. 4: a pre-softmax shift moves the first only).
* ``class_agreement``: per-image Spearman rho between the maps of the two most probable classes; Grad-CAM of
  a Lerma-shifted model explains the activations' channel sum for every class (rho -> 1, DESIGN.md 2.4).
"""
from __future__ import annotations

import torch

from interpfool.metrics.spearman import spearman


def uniform_logit_share(logits: torch.Tensor) -> float:
    """Class-uniform share of the variance of [N, C] logits over the N images (see the module docstring)."""
    z = logits.double()
    m = z.mean(1)
    uniform = m.var(unbiased=False)
    specific = (z - m[:, None]).var(1, unbiased=False).mean()
    total = uniform + specific
    return float(uniform / total) if total > 0 else 0.0


def pre_post_agreement(logit_maps: torch.Tensor, prob_maps: torch.Tensor) -> torch.Tensor:
    """[B] Spearman rho between the logit and the probability maps of the same images and classes."""
    return spearman(logit_maps, prob_maps)


def class_agreement(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """[B] Spearman rho between the maps of the most and the second most probable class."""
    return spearman(first, second)
