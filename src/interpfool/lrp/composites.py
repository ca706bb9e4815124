"""Composites: which rule each kind of layer gets, selectable by name.

``epsilon_plus`` (the default; the "LRP-Composite" of Heo et al. 2019 Sec. 3.1: epsilon for fully
connected layers, alpha-beta (here alpha1-beta0 = z+) for convolutions; Montavon et al. 2019 Sec. 10.3
discuss using different rules for upper and lower layers):

=============  ==================================================================================
Linear         epsilon rule, epsilon = 0.01
Conv2d         z+ (alpha1-beta0), positive bias kept, stabiliser 1e-6
Conv2d + BN    BN folded functionally into the conv first (W' = W s, b' = b s + t)
MaxPool2d      winner-take-all (``maxpool='proportional'``: split by positive inputs of the window)
AvgPool2d /    z+ (``avgpool='norm'``: Zennit's signed Norm rule; equal on non-negative inputs)
AdaptiveAvg.
residual add   split by positive parts (``add='proportional'``: by signed parts = Zennit's Sum/Norm)
concatenation  split by channels
BN first       pass-through (``bn_first='zplus'``: BN as a depthwise 1x1 conv with the z+ rule)
ReLU, Dropout, pass-through
Flatten
=============  ==================================================================================

Why pass-through for a BatchNorm that is not preceded by a conv (DenseNet's BN-ReLU-Conv): eval-mode BN
is an elementwise affine map, so every output neuron has exactly one input neuron; passing relevance
unchanged is what the authors' LRP code does for every BatchNorm and what Zennit does for BatchNorm
modules (``layer_map_base``: BatchNorm -> Pass), it conserves relevance exactly and cannot blow up.
An epsilon rule on y = s x + t is unstable here: relevance only reaches neurons with y > 0 (a ReLU
follows), and the share s x / y is unbounded when a negative shift t nearly cancels s x. The bounded
alternative, ``bn_first='zplus'``, gives the shift its positive share, like a conv bias under z+.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

LINEAR_RULES = ("epsilon", "zplus")
CONV_RULES = ("zplus", "epsilon")
MAXPOOL_RULES = ("wta", "proportional")
AVGPOOL_RULES = ("zplus", "norm")
ADD_RULES = ("positive", "proportional")
BN_FIRST_RULES = ("pass", "zplus")


@dataclass(frozen=True)
class Composite:
    """Rule choice per layer kind; ``epsilon`` is the epsilon rule's epsilon, ``stabilizer`` the
    denominator stabiliser of every other rule (Zennit's default 1e-6)."""

    name: str = "epsilon_plus"
    linear: str = "epsilon"
    conv: str = "zplus"
    maxpool: str = "wta"
    avgpool: str = "zplus"
    add: str = "positive"
    bn_first: str = "pass"
    epsilon: float = 0.01
    stabilizer: float = 1e-6

    def __post_init__(self):
        for key, allowed in (("linear", LINEAR_RULES), ("conv", CONV_RULES), ("maxpool", MAXPOOL_RULES),
                             ("avgpool", AVGPOOL_RULES), ("add", ADD_RULES), ("bn_first", BN_FIRST_RULES)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"unknown {key} rule {getattr(self, key)!r}; allowed: {', '.join(allowed)}")
        if not (self.epsilon >= 0 and self.stabilizer > 0):
            raise ValueError(f"need epsilon >= 0 and stabilizer > 0; got {self.epsilon}, {self.stabilizer}")


COMPOSITES: dict[str, Composite] = {c.name: c for c in (
    Composite("epsilon_plus"),
    Composite("epsilon_plus_maxprop", maxpool="proportional"),
    Composite("epsilon_plus_addprop", add="proportional"),
    # Zennit 0.5.1 EpsilonPlus(epsilon=0.01) with its canonizers, rule for rule: residual Sum and
    # AvgPool get the Norm rule (signed proportional), MaxPool the plain gradient, BatchNorm Pass.
    Composite("zennit_epsilon_plus", add="proportional", avgpool="norm"),
)}


def get_composite(composite: str | Composite = "epsilon_plus", **overrides) -> Composite:
    """A registered composite by name (or a ``Composite``), with optional per-rule overrides, e.g.
    ``get_composite("epsilon_plus", maxpool="proportional")``; ``None`` overrides are ignored."""
    if isinstance(composite, str):
        if composite not in COMPOSITES:
            raise ValueError(f"unknown LRP composite {composite!r}; allowed: {', '.join(COMPOSITES)}")
        composite = COMPOSITES[composite]
    elif not isinstance(composite, Composite):
        raise ValueError(f"composite must be a name or a Composite, got {type(composite).__name__}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in fields(Composite)} - {"name"}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown composite option(s) {sorted(unknown)}; allowed: {', '.join(sorted(known))}")
    return replace(composite, **overrides) if overrides else composite
