"""The typed schema cannot miss a key: every leaf of the default config and of every option of every group gets a
value of the wrong type and, where its schema field has a range or choices, one outside it; each must end in one
line `error: <key>=...; allowed: ...` (exit 2 through the CLI), never a traceback, never acceptance.

The cases are generated from the composed configs and the schema's field metadata, so a new key is covered without
a new test. Each case applies its override the way Hydra's composition does (its override parser and
``ConfigLoaderImpl._apply_overrides_to_config`` on the composed config) and then runs ``validate.check``; a sample
goes through the whole ``cli.preflight`` and three through a real ``python train.py`` subprocess.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.nodes import AnyNode, BooleanNode, FloatNode, IntegerNode, StringNode

from interpfool.experiment import cli, schema, validate
from interpfool.experiment.cli import CONF_DIR, BadInput, one_line

ROOT = Path(__file__).resolve().parents[2]
# group options that compose only with another option (their leaves are walked with it)
COMPANIONS = {("fooling", "active"): ["experiment=synthetic_active"]}


def compose_plain(config_name: str, overrides: list[str]) -> DictConfig:
    return cli.compose_config(config_name, overrides)


def leaves(cfg: DictConfig, prefix: str = ""):
    """(dotted key, node, parent schema type, field metadata) of every leaf; dict-typed fields count as leaves."""
    owner = OmegaConf.get_type(cfg)
    fields = {f.name: f for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else {}
    for key in cfg.keys():
        node = cfg._get_node(key)
        meta = dict(fields[key].metadata) if key in fields else {}
        typed = isinstance(node, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(node))
        if typed and not node._is_none():
            yield from leaves(node, f"{prefix}{key}.")
        elif key in fields or not fields:
            yield f"{prefix}{key}", node, owner, meta


def wrong_values(node, meta: dict) -> list[tuple[str, str]]:
    """(override value, what is wrong) for a leaf: the wrong type, then values outside its range / choices."""
    out = []
    if isinstance(node, (IntegerNode, FloatNode)):
        out.append(("abc", "type"))
    if isinstance(node, IntegerNode):
        out.append(("1.5", "type"))
    if isinstance(node, BooleanNode):
        out.append(("maybe", "type"))
    if isinstance(node, ListConfig) or meta.get("kind") in ("floats", "ints", "interpreters", "defenses"):
        out.append(("5", "type"))
    if isinstance(node, DictConfig):
        out.append(("5", "type"))
    kind = meta.get("kind")
    if kind in ("int", "float"):
        for bound, step in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
            if meta.get(bound) is not None:
                value = meta[bound] + step
                out.append((str(int(value)) if kind == "int" else repr(float(value)), "range"))
        if kind == "float":
            out += [("inf", "range"), ("nan", "range"), ("-inf", "range")]
        if not meta.get("nullable") and node._value() is not None:
            out.append(("null", "range"))
    if kind == "choice":
        out.append(("bogus_choice", "range"))
    if kind == "interpreters":
        out.append(("[gradcam,bogus_interp]", "range"))
    if kind == "defenses":
        out += [("[softplus:3,bogus]", "range"), ("[softplus:abc]", "range"), ("[noise:1.5]", "range")]
    if kind == "devices":
        out += [("abc", "range"), ("0", "range"), ("-2", "range"), ("[]", "range"), ("[-1]", "range")]
    if kind in ("floats", "ints"):
        if meta.get("length"):
            out.append(("[" + ",".join(["1"] * (meta["length"] + 1)) + "]", "range"))
        for bound in ("ge", "gt"):
            if meta.get(bound) is not None:
                out.append((f"[{int(meta[bound]) - 1}]" if kind == "ints" else f"[{float(meta[bound]) - 1}]", "range"))
        if kind == "floats":
            out.append(("[inf]", "range"))
    return out


def refusal(cfg: DictConfig, key: str, value: str) -> str | None:
    """Apply ``key=value`` as Hydra's composition does, then the range walk; the one-line error, or None if taken."""
    cfg = copy.deepcopy(cfg)
    override = OverridesParser.create().parse_overrides([f"{key}={value}"])
    try:
        ConfigLoaderImpl._apply_overrides_to_config(override, cfg)
    except Exception as err:  # noqa: BLE001 - the composition's own error, as the CLI would print it
        return one_line(err)
    try:
        validate.check(cfg)
    except BadInput as err:
        return str(err)
    return None


def configs():
    """(config name, group overrides, the keys this config covers) for the default and every group option."""
    yield "config", [], None
    yield "eval", [], None
    yield "audit", [], "audit."
    for group in schema.GROUP_SCHEMAS:
        for option in cli.group_options(group):
            yield "config", [f"{group}={option}", *COMPANIONS.get((group, option), [])], group + "."
    yield "config", ["experiment=lerma_presoftmax"], "lerma."
    yield "config", ["experiment=attacks"], "attacks."
    yield "config", ["experiment=adv_fooling"], "adv_fooling."


def all_cases():
    cases = []
    for name, overrides, only in configs():
        cfg = compose_plain(name, overrides)
        for key, node, owner, meta in leaves(cfg):
            if only and not key.startswith(only):
                continue
            for value, why in wrong_values(node, meta):
                cases.append((name, overrides, key, value, why, cfg))
    return cases


CASES = all_cases()


def test_every_group_option_has_a_schema():
    for group, options in schema.GROUP_SCHEMAS.items():
        assert sorted(options) == cli.group_options(group), group
        for option in options:
            text = (CONF_DIR / group / f"{option}.yaml").read_text()
            assert f"- schema_{option}" in text, f"conf/{group}/{option}.yaml does not start from its schema"
    for name, overrides, _ in configs():
        cfg = compose_plain(name, overrides)
        for group in schema.GROUP_SCHEMAS:
            assert dataclasses.is_dataclass(OmegaConf.get_type(cfg[group])), (overrides, group)
        validate.check(cfg)                       # every shipped option passes its own schema
    for experiment in cli.group_options("experiment"):     # experiments set keys of the same schema: all valid
        for interp in ("gradcam", "lrpT"):
            validate.check(compose_plain("config", [f"experiment={experiment}", f"interp={interp}"]))


def test_every_leaf_refuses_a_wrong_type_and_an_out_of_range_value():
    keys = {(c[0], c[2]) for c in CASES}
    typed = [c for c in CASES if c[4] == "type"]
    ranged = [c for c in CASES if c[4] == "range"]
    accepted, not_one_line, refused_own = [], [], []
    for (name, key), cfg in {(c[0] + str(c[1]), c[2]): c[5] for c in CASES}.items():   # control: its own value passes
        parent, _, leaf = key.rpartition(".")
        node = (OmegaConf.select(cfg, parent) if parent else cfg)._get_node(leaf)
        own = None if node._is_none() else node._value() if node._is_interpolation() else \
            OmegaConf.to_container(node) if isinstance(node, (DictConfig, ListConfig)) else node._value()
        text = "null" if own is None else str(own).lower() if isinstance(own, bool) else repr(own) \
            if isinstance(own, float) else str(own).replace("'", "") if isinstance(own, (dict, list)) else str(own)
        if isinstance(own, str) and own.startswith("${"):
            text = "'" + own + "'"
        line = refusal(cfg, key, text)
        if line is not None:
            refused_own.append((name, key, text, line))
    assert not refused_own, refused_own[:8]
    for name, overrides, key, value, why, cfg in CASES:
        line = refusal(cfg, key, value)
        if line is None:
            accepted.append((overrides, f"{key}={value}"))
        elif "\n" in line or key.rsplit(".", 1)[-1] not in line or "allowed" not in line:
            not_one_line.append((f"{key}={value}", line))
    print(f"schema test: {len(keys)} leaf keys, {len(CASES)} values ({len(typed)} wrong types, {len(ranged)} "
          f"out of range)")
    assert not accepted, f"{len(accepted)} bad values accepted, e.g. {accepted[:8]}"
    assert not not_one_line, not_one_line[:8]
    assert len(keys) > 150 and len(CASES) > 400       # the walk really found the config's leaves


def test_the_cases_cover_every_schema_field():
    """Every field with metadata in every schema class is reached by some case (a field no config uses is dead)."""
    names = {c[2].rsplit(".", 1)[-1] for c in CASES}
    missing = []
    for cls in vars(schema).values():
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == schema.__name__:
            missing += [f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls)
                        if f.metadata and f.name not in names]
    assert not missing, missing


def test_a_sample_goes_through_the_whole_preflight(capsys):
    sample = random.Random(0).sample(CASES, 12)
    for name, overrides, key, value, why, _ in sample:
        with pytest.raises(SystemExit) as exit_:
            cli.preflight(name, [*overrides, f"{key}={value}"])
        assert exit_.value.code == cli.EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "allowed" in err[0], (key, value, err)


@pytest.mark.parametrize("override,expected", [
    ("fooling.lam=inf", "error: fooling.lam=inf; allowed: a finite number >= 0"),
    ("trainer.max_steps=abc", "error: trainer.max_steps='abc'; allowed: an integer"),
    ("+model.depth=3", "error: unknown key model.depth=3; allowed keys of model:"),
])
def test_cli_exits_2_with_one_line_and_writes_nothing(override, expected, tmp_path):
    from run_env import train_env
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), override, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                          env=train_env(tmp_path, ""), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not run_dir.exists()                                   # refused before Hydra made the run folder


def test_schema_choices_match_the_code():
    """The schema spells each choice list where the code defines it; a drift would refuse a valid value."""
    from interpfool.experiment import loggers
    from interpfool.interpreters import base, paths, smoothgrad
    from interpfool.lrp import composites
    from interpfool.data import imagenet
    from interpfool.fooling.penalties import location
    from interpfool.jobs import JOBS, lerma
    from interpfool.metrics import robustness
    assert schema.SCORES == base.SCORES and schema.NORMALIZATIONS == base.NORMALIZATIONS
    assert schema.IG_METHODS == paths.METHODS and schema.BASELINES == paths.BASELINES
    assert schema.RNGS == smoothgrad.RNGS and schema.COMPOSITES == tuple(composites.COMPOSITES)
    assert (schema.MAXPOOL_RULES, schema.AVGPOOL_RULES, schema.ADD_RULES, schema.BN_FIRST_RULES) == \
        (composites.MAXPOOL_RULES, composites.AVGPOOL_RULES, composites.ADD_RULES, composites.BN_FIRST_RULES)
    assert schema.CHECK_IMAGES == imagenet.CHECK_IMAGES and schema.MASK_KINDS == location.MASK_KINDS
    assert schema.LOGGER_KINDS == loggers.LOGGER_KINDS and schema.WANDB_MODES == loggers.WANDB_MODES
    assert set(schema.JOBS) == set(JOBS) and schema.ROBUSTNESS_SCALES == robustness.SCALES
    assert schema.LERMA_WEIGHTS == lerma.WEIGHTS and set(schema.LERMA_SHIFT_DTYPES) == set(lerma.SHIFT_DTYPES)
    from interpfool.attacks import explanation
    from interpfool.jobs import attacks
    assert schema.ATTACK_METHODS == attacks.METHODS and schema.ATTACK_FOOLINGS == tuple(attacks.FOOLINGS)
    assert set(schema.ATTACK_KEEPS) == set(explanation.KEEPS)
    from interpfool.fooling import module
    assert schema.ADAM_IMPLEMENTATIONS == module.ADAM_IMPLEMENTATIONS
    assert math.isfinite(schema.OriginalConfig().lr)


@pytest.mark.parametrize("override,expected", [
    ("trainer.accelerator=gpu", "trainer.accelerator='gpu': No supported gpu backend found!"),
    ("trainer.devices=[0,1]", "trainer.devices=[0, 1]: `devices` selected with `CPUAccelerator`"),
    ("+trainer.gradient_clip_val=abc", "trainer.gradient_clip_val='abc': `gradient_clip_val` should be"),
])
def test_lightning_judges_the_trainer_before_theta0_as_one_line(compose_cfg, tmp_path, override, expected):
    """What only Lightning can tell (no GPU here, devices the accelerator cannot take, an extra Trainer argument of the
    wrong type) is asked in the build phase: one line, before any theta0 is trained or cached."""
    import torch

    from interpfool.experiment.build import checked_build
    from tiny_run import TINY
    if override == "trainer.accelerator=gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BadInput) as err:
        checked_build(compose_cfg(TINY + [f"cache_dir={tmp_path}", override]))
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())
