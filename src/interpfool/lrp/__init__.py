"""Layer-wise Relevance Propagation as explicit, differentiable rules (DESIGN.md 2.1, 4).

``rules``: the layer rules as tensor functions; ``composites``: rule choice by name; ``ops``: the steps of
a plan, each a forward over the model's own modules and the rule that walks it back; ``plans``: one plan
(list of ops) per architecture family; ``walker``: runs a plan forward, recording what the rules need, and
walks the relevance back; ``presoftmax``: the same for a pre-softmax shifted model; ``adapters``:
``build_adapter`` picks between the two.
The interpreters ``lrp`` and ``lrpT`` (``interpfool.interpreters.lrp``) wire them up.

    from interpfool import interpreters, models
    net = models.build("resnet50").eval()                 # BatchNorm must be in eval mode
    lrp_t = interpreters.build("lrpT", net)               # composite="epsilon_plus" (default)
    fwd = lrp_t.forward(x)                                # ONE forward: fwd.logits == net(x)
    h = lrp_t.explain(fwd, "label", y, create_graph=True) # [B, 7, 7], exact second-order gradients

Checks (tests/lrp, numbers from ``bench/lrp_oracle_table.py``): first-order maps equal Zennit's
EpsilonPlus to ~1e-15 in float64 with the matching composite; relevance is conserved on bias-free nets;
penalty gradients w.r.t. weights and BatchNorm parameters match central finite differences to ~1e-6.
``zennit_oracle`` and ``testing`` are for those checks (Zennit is a test dependency).
"""
from interpfool.lrp.adapters import build_adapter
from interpfool.lrp.composites import COMPOSITES, Composite, get_composite
from interpfool.lrp.plans import SUPPORTED
from interpfool.lrp.walker import LRPAdapter, Trace

__all__ = ["COMPOSITES", "SUPPORTED", "Composite", "LRPAdapter", "Trace", "build_adapter", "get_composite"]
