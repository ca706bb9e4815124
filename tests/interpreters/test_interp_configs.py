"""Every conf/interp/<name>.yaml instantiates (Hydra, _partial_) into the interpreter registered as <name>,
and the options it lists are the constructor's."""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interp_testnets import inputs, small_vgg  # noqa: E402

from interpfool import interpreters  # noqa: E402

CONF = Path(__file__).resolve().parents[2] / "conf" / "interp"
NAMES = sorted(p.stem for p in CONF.glob("*.yaml"))


def test_every_registered_interpreter_has_a_config():
    assert set(interpreters.names()) - {"lrp", "lrpT"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_instantiates_the_registered_class(name, compose_cfg):
    from hydra.utils import instantiate
    cfg = compose_cfg([f"interp={name}"]).interp        # the option as composed: its YAML over its typed schema
    if name not in interpreters.REGISTRY:
        pytest.skip(f"{name} is not registered on this branch")
    cls = interpreters.REGISTRY[name]
    options = set(cfg) - {"_target_", "_partial_"}
    assert options <= set(inspect.signature(cls.__init__).parameters), f"{name}: unknown options"
    for key in ("steps", "n"):                     # keep the test fast
        if key in cfg:
            cfg[key] = 3
    net = small_vgg()
    interp = instantiate(cfg)(net=net)
    assert type(interp) is cls
    h = interp(inputs(2, 32))
    assert h.shape[0] == 2 and torch.isfinite(h).all()
