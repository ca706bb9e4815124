"""Command-line entry shared by train.py and eval.py.

Bad input ends with ONE line on stderr naming the value and what is allowed, and exit code 2:
* composition errors (an unknown group option or key, a value of the wrong type: the typed schema of
  ``experiment.schema``) and values outside their range (``experiment.validate``) are caught by composing
  the config once with Hydra's compose API before ``@hydra.main`` runs (single runs; a multirun's jobs
  are checked by ``experiment.build.checked_build``);
* value errors raised while building objects (``ValueError`` / ``FileNotFoundError`` from the
  build phase, before any training) are caught in the task function.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import interpfool.experiment.schema  # noqa: F401 - registers the typed schema with Hydra's ConfigStore

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
EXIT_BAD_INPUT = 2
EXIT_TRAINING_FAILED = 3


class BadInput(Exception):
    """A user-facing, one-line error."""


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


# OmegaConf's type errors -> what the schema field allows
_TYPE_WORDS = (("converted to Integer", "an integer"), ("converted to Float", "a number"),
               ("not a valid bool", "true or false"), ("is not a ListConfig", "a list [a, b, ...]"),
               ("is not a DictConfig", "a mapping {key: value}"), ("is not a subclass of", "an option of this group"),
               ("Incompatible value", "a value of the field's type"))


def _type_error(text: str, cause: str) -> str | None:
    """``Error merging override KEY=VALUE`` (the schema refused the value's type) as ``KEY=VALUE; allowed: ...``."""
    merged = re.search(r"Error merging override ([\w.]+)=(.*)", text)
    if not merged:
        return None
    key, value = merged.group(1), merged.group(2).strip()
    allowed = next((words for marker, words in _TYPE_WORDS if marker in cause), None)
    if allowed is None:
        allowed = " ".join(cause.split("full_key:")[0].split()) or "a value of the field's type"
    return f"{key}={value!r}; allowed: {allowed}"


def one_line(err: BaseException, conf_dir: Path = CONF_DIR) -> str:
    """A Hydra/OmegaConf composition error as one line naming the value and what is allowed."""
    text = str(err)
    typed = _type_error(text, str(err.__cause__ or ""))
    if typed:
        return typed
    schema = re.search(r"Key '([\w]+)' not in '(\w+)'\s+full_key: ([\w.]+)", str(err.__cause__ or text))
    if schema and "Could not override" not in text:
        return f"unknown key {schema.group(3)}: not in the schema of this config ({schema.group(2)})"
    missing = re.search(r"Could not find '([\w/+.-]+)/([\w.-]+)'", text)
    if missing:
        group, option = missing.group(1).lstrip("+"), missing.group(2)
        allowed = group_options(group, conf_dir)
        return f"{group}={option} is not an option; allowed: {', '.join(allowed)}"
    override = re.search(r"Could not override '([\w.]+)'", text)
    if override:
        return (f"unknown option {override.group(1)!r}: no such key in the config "
                f"(see `python train.py --help`; to add a new key use +{override.group(1)}=...)")
    appended = re.search(r"Could not append to config\. An item is already at '([\w.]+)'", text)
    if appended:
        return f"{appended.group(1)} already exists; set it without '+'"
    return " ".join(text.split())


def _is_single_run(argv: list[str]) -> bool:
    return not any(a.startswith("-") for a in argv)


def _is_hydra_override(arg: str) -> bool:
    return arg.lstrip("+~").startswith(("hydra.", "hydra/"))


def preflight(config_name: str, argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Compose once so unknown options fail with one line before Hydra starts a run.

    Overrides of Hydra's own settings (``hydra.run.dir=...``) are left to Hydra."""
    if not _is_single_run(argv):
        return
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=[a for a in argv if not _is_hydra_override(a)])
    except Exception as err:  # noqa: BLE001 - any composition failure is the user's input
        fail(one_line(err, conf_dir))
    finally:
        GlobalHydra.instance().clear()
    from interpfool.experiment.validate import check
    try:
        check(cfg)          # ranges, choices, finite numbers: before Hydra creates the run folder
    except BadInput as err:
        fail(str(err))


def guarded(task: Callable, *args, **kwargs):
    """Run ``task``; a build-phase ``BadInput`` -> one line, exit 2; a non-finite loss -> one line, exit 3."""
    from interpfool.experiment.callbacks import NonFiniteLoss

    try:
        return task(*args, **kwargs)
    except BadInput as err:
        fail(str(err))
    except NonFiniteLoss as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_TRAINING_FAILED)
