"""Explicit, differentiable LRP rules: relevance in, relevance out, as plain tensor functions.

Every rule follows the four-step recipe of Montavon et al. 2019 ("Layer-wise relevance propagation:
an overview", Sec. 10.2.2): z = rho(W) a (+ bias), s = R / stabilise(z), c = rho(W)^T s, R_in = a * c.
The transposed maps are explicit ops (``conv_transpose2d``, ``s @ W``) or, for pooling, the
vector-Jacobian product of the pooling op at a dummy point (a linear map's transpose does not depend
on where it is taken). Nothing here uses backward hooks, ``.data``, ``.detach()`` or in-place ops, so
with ``create_graph=True`` upstream the returned relevance is an exact, twice-differentiable function
of the inputs, the relevance and the parameters (weights, biases, BatchNorm affine parameters).

Conventions match Zennit 0.5.1 wherever Zennit has the rule (tests/lrp check this numerically):
stabiliser z + eps * sign(z) with sign(0) = +1; z+ keeps the positive part of the bias.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


# -- stabiliser ---------------------------------------------------------------------------------------

def stabilize(z: Tensor, eps: float) -> Tensor:
    """z + eps * sign(z), sign(0) = +1 (Bach et al. 2015, epsilon rule; Zennit's ``Stabilizer``).

    The sign is a constant of the graph (its derivative is zero almost everywhere), so the derivative
    of the stabilised denominator is exactly that of z.
    """
    sign = (z >= 0).to(z.dtype) * 2 - 1   # in z's dtype: torch.where(c, eps, -eps) would round eps to float32
    return z + eps * sign


# -- parameters ---------------------------------------------------------------------------------------

def batchnorm_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as y = scale * x + shift, per channel, built from the module's own tensors
    (``weight``/``bias`` stay on the graph, running statistics are buffers)."""
    if bn.training or bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"LRP treats BatchNorm as the affine map of its running statistics; {bn} is in "
                         f"training mode or tracks no running statistics: call net.eval() "
                         f"(frozen BatchNorm statistics, DESIGN.md 2.2)")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = bn.weight * scale
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = bn.bias + shift
    return scale, shift


def fold_batchnorm(weight: Tensor, bias: Tensor | None, bn: nn.modules.batchnorm._BatchNorm | None
                   ) -> tuple[Tensor, Tensor | None]:
    """W' = W * scale, b' = b * scale + shift for ``bn(layer(x))`` with layer = conv/linear (W out-first).

    Functional fold (DESIGN.md 4): ``torch.nn.utils.fusion`` returns new leaf Parameters with
    requires_grad=False, which would cut the gradient to the BatchNorm parameters; this fold keeps
    W', b' on the graph of ``weight``, ``bias``, ``bn.weight`` and ``bn.bias``.
    """
    if bn is None:
        return weight, bias
    scale, shift = batchnorm_affine(bn)
    weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    bias = shift if bias is None else bias * scale + shift
    return weight, bias


# -- linear maps with an explicit transpose ------------------------------------------------------------

@dataclass(frozen=True)
class ConvGeometry:
    """stride / padding / dilation / groups of a Conv2d, to apply it and its transpose."""

    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @classmethod
    def of(cls, conv: nn.Conv2d) -> "ConvGeometry":
        if not isinstance(conv, nn.Conv2d) or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError(f"LRP supports nn.Conv2d with integer zero padding; got {conv}")
        return cls(tuple(conv.stride), tuple(conv.padding), tuple(conv.dilation), conv.groups)

    def apply(self, a: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(a, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def transpose(self, s: Tensor, weight: Tensor, in_shape: torch.Size) -> Tensor:
        """c = W^T s: the adjoint of ``apply`` (conv_transpose2d with the output padding that restores
        the input size)."""
        out_pad = []
        for dim in range(2):
            k = weight.shape[2 + dim]
            size = (s.shape[2 + dim] - 1) * self.stride[dim] - 2 * self.padding[dim] \
                + self.dilation[dim] * (k - 1) + 1
            out_pad.append(in_shape[2 + dim] - size)
        return F.conv_transpose2d(s, weight, None, self.stride, self.padding, tuple(out_pad), self.groups,
                                  self.dilation)


def linear_map_transpose(fn: Callable[[Tensor], Tensor], like: Tensor, s: Tensor) -> Tensor:
    """c = P^T s for a linear, parameter-free map P (pooling), as the vector-Jacobian product at a
    dummy zero input. Exact, and twice differentiable in ``s`` (the graph of ``s`` is kept)."""
    dummy = torch.zeros(like.shape, dtype=like.dtype, device=like.device, requires_grad=True)
    with torch.enable_grad():
        out = fn(dummy)
        (c,) = torch.autograd.grad(out, dummy, grad_outputs=s, create_graph=s.requires_grad)
    return c


# -- rules for layers with weights ---------------------------------------------------------------------

def epsilon_rule(a: Tensor, relevance: Tensor, weight: Tensor, bias: Tensor | None, eps: float,
                 apply: Callable, transpose: Callable) -> Tensor:
    """LRP-epsilon (Bach et al. 2015; Montavon et al. 2019 Sec. 10.2.1):
    R_i = sum_j a_i w_ij / (z_j + eps sign z_j) R_j, z_j = sum_i a_i w_ij + b_j."""
    z = apply(a, weight, bias)
    s = relevance / stabilize(z, eps)
    return a * transpose(s, weight, a.shape)


def zplus_rule(a: Tensor, relevance: Tensor, weight: Tensor, bias: Tensor | None, eps: float,
               apply: Callable, transpose: Callable, nonneg: bool) -> Tensor:
    """LRP-z+ = alpha1-beta0 (Bach et al. 2015; the gamma -> infinity limit of LRP-gamma in Montavon et al.
    2019 Sec. 10.2.1), in Zennit's general
    form for signed inputs: only the positive contributions z_ij^+ = (a_i w_ij)^+ = a_i^+ w_ij^+ + a_i^- w_ij^-
    and the positive bias b_j^+ enter, R_i = sum_j z_ij^+ / (sum_i z_ij^+ + b_j^+ + eps) R_j.

    ``nonneg=True`` states that ``a >= 0`` (it follows a ReLU), which skips the a^- w^- half.
    """
    w_pos = weight.clamp(min=0)
    a_pos = a if nonneg else a.clamp(min=0)
    z = apply(a_pos, w_pos, None if bias is None else bias.clamp(min=0))
    if not nonneg:
        w_neg, a_neg = weight.clamp(max=0), a.clamp(max=0)
        z = z + apply(a_neg, w_neg, None)
    s = relevance / stabilize(z, eps)
    out = a_pos * transpose(s, w_pos, a.shape)
    if not nonneg:
        out = out + a_neg * transpose(s, w_neg, a.shape)
    return out


def linear_apply(a: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return F.linear(a, weight, bias)


def linear_transpose(s: Tensor, weight: Tensor, in_shape: torch.Size) -> Tensor:
    return s @ weight


# -- BatchNorm that is not preceded by a foldable layer (DenseNet's BN-ReLU-Conv) -----------------------

def batchnorm_zplus(a: Tensor, relevance: Tensor, bn: nn.modules.batchnorm._BatchNorm, eps: float) -> Tensor:
    """Eval-mode BN as a depthwise 1x1 'conv' y = s x + t with the composite's conv rule (z+):
    R_x = (s x)^+ / ((s x)^+ + t^+ + eps) R_y. Bounded share in [0, 1); the positive shift absorbs its
    share, as the positive bias does in z+ for a conv."""
    scale, shift = batchnorm_affine(bn)
    view = (1, -1) + (1,) * (a.ndim - 2)
    contrib = (a * scale.reshape(view)).clamp(min=0)
    z = contrib + shift.reshape(view).clamp(min=0)
    return contrib * (relevance / stabilize(z, eps))


# -- pooling ---------------------------------------------------------------------------------------------

def maxpool_winner_take_all(a: Tensor, relevance: Tensor, pool: nn.MaxPool2d) -> Tensor:
    """All relevance of a window goes to its maximum: the routing of the plain gradient, hence also what
    Zennit does (it has no MaxPool rule). Ties go where PyTorch's max-pool gradient sends them."""
    _, index = F.max_pool2d(a, pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode,
                            return_indices=True)
    flat = torch.zeros(a.shape[0], a.shape[1], a.shape[2] * a.shape[3], dtype=relevance.dtype,
                       device=relevance.device)
    return flat.scatter_add(2, index.flatten(2), relevance.flatten(2)).reshape(a.shape)


def maxpool_proportional(a: Tensor, relevance: Tensor, pool: nn.MaxPool2d, eps: float) -> Tensor:
    """Relevance of a window split in proportion to the positive inputs of the window, i.e. the z+ rule
    of a sum-pool over the same windows: smoother than winner-take-all (every active input of the
    window shares, so the map is continuous where the maximum switches)."""
    if any(d != 1 for d in _pair(pool.dilation)):
        raise ValueError(f"maxpool='proportional' does not support dilated max-pooling ({pool})")

    def sum_pool(u: Tensor) -> Tensor:
        return F.avg_pool2d(u, pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode,
                            count_include_pad=True)

    return pool_rule(a, relevance, sum_pool, eps, positive=True)


def pool_rule(a: Tensor, relevance: Tensor, pool_fn: Callable[[Tensor], Tensor], eps: float,
              positive: bool) -> Tensor:
    """Rules for a linear pooling map with positive weights P (average / adaptive average pooling).

    ``positive=True``: z+ (R_i = a_i^+ sum_j P_ji R_j / (sum_i' P_ji' a_i'^+ + eps)), the default;
    ``positive=False``: Zennit's ``Norm`` rule on signed inputs (R_i = a_i sum_j P_ji R_j / stab(z_j)).
    The two coincide on non-negative inputs (after a ReLU)."""
    a_in = a.clamp(min=0) if positive else a
    z = pool_fn(a_in)
    s = relevance / stabilize(z, eps)
    return a_in * linear_map_transpose(pool_fn, a, s)


# -- merging nodes ---------------------------------------------------------------------------------------

def sum_rule(parts: list[Tensor], relevance: Tensor, eps: float, positive: bool) -> list[Tensor]:
    """Relevance of y = sum_k x_k (ResNet's residual add) split between the summands.

    ``positive=True``: by positive parts, R_k = x_k^+ / (sum x^+ + eps) R (the z+ rule of the add);
    ``positive=False``: proportional to the signed summands, R_k = x_k / stab(sum x) R, which is Zennit's
    ``Norm`` rule on its ``Sum`` module (ResNetCanonizer)."""
    parts = [p.clamp(min=0) for p in parts] if positive else parts
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    s = relevance / stabilize(total, eps)
    return [p * s for p in parts]


def split_channels(relevance: Tensor, sizes: list[int]) -> list[Tensor]:
    """Concatenation along channels: every input keeps the relevance of its own channels."""
    return list(torch.split(relevance, sizes, dim=1))


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)
