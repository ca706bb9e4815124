"""One walk over a composed config that checks every value against its schema field (``experiment.schema``).

Hydra has already refused wrong types and unknown keys while composing; this walk checks what a type cannot say:
ranges, choices, finite numbers, registered interpreter names, and keys added with ``+`` to a typed node. The first
violation raises ``BadInput`` with one line ``<key>=<value>; allowed: <what>``.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from interpfool.experiment.cli import BadInput

_REFERENCE = re.compile(r"\$\{[\w.]+\}")     # a plain reference to another key (no resolver)


def describe(meta: dict) -> str:
    """What a field allows, in words (the ``allowed:`` part of the error)."""
    kind = meta.get("kind")
    null = " or null" if meta.get("nullable") else ""
    if kind == "choice":
        return ", ".join(meta["options"]) + null
    if kind == "devices":
        return "an integer >= 1, -1 (all), a list of device indices >= 0, or auto"
    if kind == "interpreters":
        from interpfool import interpreters
        return "a list of interpreter names from " + ", ".join(interpreters.names()) + null
    if kind == "defenses":
        from interpfool.defenses import DEFENSES
        return "a list of defense specs name[:value] from " + ", ".join(
            f"{n}[:{p}]" for n, (_, p, _) in DEFENSES.items())
    bounds = []
    for key, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(key) is not None:
            bounds.append(f"{sign} {meta[key]}")
    bound = (" " + " and ".join(bounds)) if bounds else ""
    if kind == "int":
        return f"an integer{bound}{null}"
    if kind == "float":
        return f"a finite number{bound}{null}"
    if kind in ("floats", "ints"):
        what = "integers" if kind == "ints" else "finite numbers"
        size = f"{meta['length']} " if meta.get("length") else ""
        least = f" (at least {meta['min_length']})" if meta.get("min_length") else ""
        return f"a list of {size}{what}{bound}{least}{null}"
    return "?"


def _in_bounds(x: float, meta: dict) -> bool:
    return not ((meta.get("ge") is not None and not x >= meta["ge"]) or (meta.get("gt") is not None and not x > meta["gt"])
                or (meta.get("le") is not None and not x <= meta["le"]) or (meta.get("lt") is not None and not x < meta["lt"]))


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def value_ok(value: Any, meta: dict) -> bool:
    """Whether ``value`` (plain Python, resolved) satisfies a field's metadata."""
    kind = meta.get("kind")
    if value is None:
        return bool(meta.get("nullable"))
    if kind == "choice":
        return value in meta["options"]
    if kind == "int":
        return _is_int(value) and _in_bounds(value, meta)
    if kind == "float":
        return _is_real(value) and math.isfinite(value) and _in_bounds(value, meta)
    if kind in ("floats", "ints"):
        if not isinstance(value, (list, tuple)):
            return False
        if meta.get("length") is not None and len(value) != meta["length"]:
            return False
        if meta.get("min_length") is not None and len(value) < meta["min_length"]:
            return False
        element = _is_int if kind == "ints" else (lambda v: _is_real(v) and math.isfinite(v))
        return all(element(v) and _in_bounds(v, meta) for v in value)
    if kind == "devices":
        return value == "auto" or (_is_int(value) and (value >= 1 or value == -1)) or (
            isinstance(value, (list, tuple)) and len(value) > 0 and all(_is_int(v) and v >= 0 for v in value))
    if kind == "interpreters":
        from interpfool import interpreters
        return isinstance(value, (list, tuple)) and all(v in interpreters.REGISTRY for v in value)
    if kind == "defenses":
        from interpfool.defenses import parse
        if not isinstance(value, (list, tuple)):
            return False
        try:
            for v in value:
                parse(v)
        except ValueError:
            return False
        return True
    return True


def _shown(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    return repr(value) if isinstance(value, str) else str(value).replace("'", "")


def check(cfg: DictConfig, path: str = "") -> None:
    """Walk ``cfg``; raise ``BadInput`` at the first value its schema field does not allow."""
    schema = OmegaConf.get_type(cfg)
    fields = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else {}
    extra = schema.extra_keys() if hasattr(schema, "extra_keys") else set()
    # this node's own values first, then its sub-configs: `seed=-1` is reported as seed, not as data.seed
    for key in sorted(cfg.keys(), key=lambda k: isinstance(cfg._get_node(k), DictConfig)):
        full = f"{path}{key}"
        if fields and key not in fields and key not in extra:
            raise BadInput(f"unknown key {full}={_shown(cfg._get_node(key)._value())}; allowed keys of "
                           f"{path.rstrip('.') or 'the config'}: {', '.join(k for k in fields if k != '_partial_')}"
                           + (" or a Lightning Trainer argument" if extra else ""))
        node = cfg._get_node(key)
        if isinstance(node._value(), str) and _REFERENCE.fullmatch(node._value()):
            continue        # `${data.num_classes}`: the key it names is checked where it lives
        if OmegaConf.is_missing(cfg, key):
            raise BadInput(f"{full} is not set; it has no default (set {full}=...)")
        try:
            value = cfg[key]
        except Exception as err:  # noqa: BLE001 - an interpolation that does not resolve, a wrong type behind it
            raise BadInput(f"{full}={_shown(node._value())} does not resolve: {' '.join(str(err).split()[:20])}") \
                from None
        meta = dict(fields[key].metadata) if key in fields else {}
        if meta:
            plain = OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
            if not value_ok(plain, meta):
                raise BadInput(f"{full}={_shown(plain)}; allowed: {describe(meta)}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"{full}={value}; allowed: a finite number")
        if isinstance(value, DictConfig):
            check(value, full + ".")

