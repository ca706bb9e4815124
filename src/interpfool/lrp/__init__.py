"""Layer-wise Relevance Propagation as explicit, differentiable rules (DESIGN.md 2.1, 4).

``rules``: the layer rules as tensor functions; ``composites``: rule choice by name;
``adapters``: explicit model forwards that record what the rules need and walk the relevance back.
The interpreters ``lrp`` and ``lrpT`` (``interpfool.interpreters.lrp``) wire them up.
"""
from interpfool.lrp.adapters import SUPPORTED, LRPAdapter, Trace, build_adapter
from interpfool.lrp.composites import COMPOSITES, Composite, get_composite

__all__ = ["COMPOSITES", "SUPPORTED", "Composite", "LRPAdapter", "Trace", "build_adapter", "get_composite"]
