"""Attribution methods: all batched, all returning [B, H, W], all twice differentiable.

``interpreters.build(name, net, **kwargs)``; ``interpreters.names()`` lists what is registered.
"""
from interpfool.interpreters import gradcam  # noqa: F401  (registers)
from interpfool.interpreters import gradient  # noqa: F401  (registers)
from interpfool.interpreters import integrated_gradients  # noqa: F401  (registers)
from interpfool.interpreters import lrp  # noqa: F401  (registers lrp, lrpT)
from interpfool.interpreters import rsigradcam  # noqa: F401  (registers)
from interpfool.interpreters import smoothgrad  # noqa: F401  (registers)
from interpfool.interpreters.base import (Forward, Interpreter, class_score, normalize_map, resolve_target, upsample_map,
                                          zero_map_share)
from interpfool.interpreters.registry import REGISTRY, build, names, register

__all__ = ["REGISTRY", "Forward", "Interpreter", "build", "class_score", "names", "normalize_map", "register",
           "resolve_target", "upsample_map", "zero_map_share"]
