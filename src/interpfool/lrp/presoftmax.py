"""LRP on a pre-softmax shifted model (``models.presoftmax_shift``, Lerma & Lucas 2023).

The shifted model computes z'_i = z_i + t with t = K * sum_k A_{pqk}, A the output of the last pooling
layer. As a graph: A feeds both the original head (-> z) and a one-cell linear unit t, and every logit
z'_i is an add node of z_i and t. The adapter runs the base model's plan (same ops, same modules) and
adds two rules:

* the add node z'_i = z_i + t, **split by positive parts** (the z+ rule of an add, as for ResNet's
  residual add, ``rules.sum_rule(positive=True)``):
      R(z_i) = z_i^+ / (z_i^+ + t^+ + eps) R(z'_i),    R(t) += t^+ / (z_i^+ + t^+ + eps) R(z'_i);
  where z_i^+ + t^+ = 0 everything stays on z_i (so K = 0 gives the original LRP exactly). With
  K > 0, t >= 0 (A follows a ReLU) and a negative logit hands all its relevance to t.
* the unit t = K * sum_k A_{pqk}: the z+ rule, R(A_{pqk}) = (K A_{pqk})^+ / (sum_k' (K A_{pqk'})^+ + eps) R(t)
  (K cancels for K > 0), added to the relevance that the head sends to A.

The relevance then continues down the base plan. Relevance is conserved at the add node (up to eps),
and every step is an explicit differentiable function (twice differentiable, as the base rules).
LRP_T at a layer above the last pooling layer is refused: the t path does not pass through it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from interpfool.lrp import rules
from interpfool.lrp.composites import Composite
from interpfool.lrp.ops import AvgPoolOp, MaxPoolOp
from interpfool.lrp.walker import LRPAdapter, Trace
from interpfool.models.builders import resolve_module

Tensor = torch.Tensor


@dataclass
class ShiftedTrace(Trace):
    """A base trace plus the unshifted logits z and the shift t ([B])."""

    z: Tensor | None = None
    t: Tensor | None = None


class PresoftmaxShiftAdapter:
    """LRP adapter of a ``PresoftmaxShifted`` model: the base class's plan plus the t path (module docstring)."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.base = LRPAdapter(net, cls=net._presoftmax_base)
        self.ops, self.boundaries, self.family = self.base.ops, self.base.boundaries, self.base.family
        pool_module = resolve_module(net, net.last_pool)
        index = self.base.boundaries.get(net.last_pool)
        op = self.base.ops[index] if index is not None else None
        if not isinstance(op, (MaxPoolOp, AvgPoolOp)) or op.module is not pool_module \
                or index + 1 >= len(self.base.ops):
            raise ValueError(f"LRP on a pre-softmax shifted {net._presoftmax_base.__name__} needs last_pool "
                             f"{net.last_pool!r} to be one pooling op of its LRP plan, followed by the head")
        self.pool_out = index + 1          # the op whose input is the pooling output A

    def check_layer(self, layer: str) -> int:
        k = self.base.check_layer(layer)
        if k > self.pool_out:
            raise ValueError(f"LRP on a pre-softmax shifted model cannot stop at {layer!r}: it lies above the "
                             f"last pooling layer {self.net.last_pool!r}, where the shift t branches off; "
                             f"pick a layer at or below it")
        return k

    def forward(self, x: Tensor) -> ShiftedTrace:
        trace = self.base.forward(x)
        t = self.net.presoftmax_t(trace.inputs[self.pool_out])
        return ShiftedTrace(self.net.add_shift(trace.logits, t), trace.inputs, trace.saved, z=trace.logits, t=t)

    def split(self, trace: ShiftedTrace, relevance: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        """Relevance of z' ([B, N]) -> (relevance of z [B, N], relevance of t [B]) by positive parts."""
        relevance = relevance.to(trace.z.dtype)          # z' may be float64 (presoftmax dtype); layers are not
        z_pos = trace.z.clamp(min=0)
        t_pos = trace.t.clamp(min=0)[:, None]
        total = z_pos + t_pos
        live = total > 0
        share_t = torch.where(live, t_pos / rules.stabilize(total, eps), torch.zeros_like(total))
        share_z = torch.where(live, z_pos / rules.stabilize(total, eps), torch.ones_like(total))
        return share_z * relevance, (share_t * relevance).sum(1)

    def t_relevance(self, pooled: Tensor, r_t: Tensor, eps: float) -> Tensor:
        """z+ rule of t = K * sum_k A[:, k, p, q]: relevance on A, zero outside cell (p, q)."""
        p, q = self.net.presoftmax_position
        contrib = (self.net.presoftmax_k * pooled[:, :, p, q]).clamp(min=0)            # [B, C]
        r_cell = contrib * (r_t / rules.stabilize(contrib.sum(1), eps))[:, None]
        rows = torch.arange(pooled.shape[2], device=pooled.device) == p
        cols = torch.arange(pooled.shape[3], device=pooled.device) == q
        cell = (rows[:, None] & cols[None, :]).to(pooled.dtype)                          # [H, W] one-hot
        return r_cell[:, :, None, None] * cell

    def relevance(self, trace: ShiftedTrace, relevance: Tensor, comp: Composite, stop: str | None = None) -> Tensor:
        last = 0 if stop is None else self.check_layer(stop)
        r_z, r_t = self.split(trace, relevance, comp.stabilizer)
        for k in range(len(self.ops) - 1, self.pool_out - 1, -1):
            r_z = self.ops[k].backward(trace.saved[k], r_z, comp)
        relevance = r_z + self.t_relevance(trace.inputs[self.pool_out], r_t, comp.stabilizer)
        for k in range(self.pool_out - 1, last - 1, -1):
            relevance = self.ops[k].backward(trace.saved[k], relevance, comp)
        return relevance

    def activation(self, trace: Trace, layer: str) -> Tensor:
        return trace.inputs[self.check_layer(layer)]
