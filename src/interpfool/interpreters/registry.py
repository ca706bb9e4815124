"""Name -> interpreter class. ``interpreters.build(name, net, **kwargs)`` is the public entry."""
from __future__ import annotations

from typing import Callable

from torch import nn

from interpfool.interpreters.base import Interpreter

REGISTRY: dict[str, type[Interpreter]] = {}


def register(name: str) -> Callable[[type[Interpreter]], type[Interpreter]]:
    def add(cls: type[Interpreter]) -> type[Interpreter]:
        if name in REGISTRY:
            raise ValueError(f"interpreter {name!r} registered twice")
        cls.name = name
        REGISTRY[name] = cls
        return cls
    return add


def names() -> list[str]:
    return sorted(REGISTRY)


def build(name: str, net: nn.Module, **kwargs) -> Interpreter:
    """Instantiate the interpreter registered as ``name`` on ``net``."""
    if name not in REGISTRY:
        raise ValueError(f"unknown interpreter {name!r}; allowed: {', '.join(names())}")
    return REGISTRY[name](net, **kwargs)
