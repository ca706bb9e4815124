"""Explanation-time defenses: switches that change how a map is computed, applied to a checkpoint as it is.

A defense is named by a spec string ``name[:value]`` (the value sets the defense's one parameter):

* ``softplus:<beta>``  the map of the model with ReLU -> softplus_beta (Dombrowski et al. 2019), default beta 3
* ``noise[:<n>]``      the method's map averaged over n noisy inputs (SmoothGrad's integration), default 16
* ``path[:<m>]``       the method's map averaged over the path 0 -> x (IG's integration), default 16 steps
* ``layer[:<name>]``   another cut: the same method at an earlier layer (default: the previous block)
* ``score[:<s>]``      the other score: post-softmax ``prob`` for a logit map, ``logit`` for a prob map

``within_budget(spec, samples, budget)`` gives an integration defense without a value the count that keeps its map
near ``budget`` gradients when the defended method itself averages ``samples`` inputs.

``defend(factory, spec)`` returns a factory(net=...) of the defended interpreter, as ``interp_factory`` does.
"""
from __future__ import annotations

from typing import Callable

from interpfool.defenses.integration import NoiseAveraged, PathAveraged
from interpfool.defenses.layer import OtherLayer, earlier_layer
from interpfool.defenses.score import OtherScore
from interpfool.defenses.softplus import SoftplusMaps
from interpfool.defenses.wrapped import DefendedInterpreter, InterpreterFactory

# name -> (class, its parameter, the parameter's type)
DEFENSES: dict[str, tuple[type[DefendedInterpreter], str, type]] = {
    "softplus": (SoftplusMaps, "beta", float),
    "noise": (NoiseAveraged, "n", int),
    "path": (PathAveraged, "steps", int),
    "layer": (OtherLayer, "layer", str),
    "score": (OtherScore, "score", str),
}


def parse(spec: str) -> tuple[type[DefendedInterpreter], dict]:
    """``name[:value]`` -> (class, kwargs); one-line ValueError naming the spec and what is allowed."""
    name, _, value = str(spec).partition(":")
    if name not in DEFENSES:
        raise ValueError(f"defense {spec!r}; allowed: {', '.join(f'{n}[:{p}]' for n, (_, p, _) in DEFENSES.items())}")
    cls, param, kind = DEFENSES[name]
    if not value:
        return cls, {}
    try:
        parsed = kind(value)
    except ValueError:
        raise ValueError(f"defense {spec!r}: {param}={value!r}; allowed: {kind.__name__}") from None
    return cls, {param: parsed}


# the integration defenses: their value is a count of the defended method's maps
INTEGRATIONS = ("noise", "path")


def within_budget(spec: str, samples: int, budget: int | None) -> str:
    """``noise`` / ``path`` without a value -> ``noise:<max(1, budget // samples)>``: the defended map then costs about
    ``budget`` gradients whether the method is one pass (16 maps of Grad-CAM) or averages ``samples`` inputs itself
    (4 maps of a 4-sample SmoothGrad: 16 noisy inputs in all). Any other spec, and ``budget`` None, as given."""
    name, _, value = str(spec).partition(":")
    if check_budget(budget) is None or value or name not in INTEGRATIONS:
        return spec
    return f"{name}:{max(1, budget // samples)}"


def check_budget(budget: int | None) -> int | None:
    """``eval.integration_budget`` as given; a one-line ValueError unless an integer >= 1 or None."""
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise ValueError(f"eval.integration_budget={budget!r}; allowed: an integer >= 1 or null")
    return budget


def defend(factory: InterpreterFactory, spec: str) -> Callable[..., DefendedInterpreter]:
    """factory(net=...) of ``factory``'s interpreter under the defense ``spec``."""
    cls, kwargs = parse(spec)
    return lambda net: cls(net, factory, **kwargs)


__all__ = ["DEFENSES", "DefendedInterpreter", "NoiseAveraged", "OtherLayer", "OtherScore", "PathAveraged",
           "SoftplusMaps", "check_budget", "defend", "earlier_layer", "parse", "within_budget"]
