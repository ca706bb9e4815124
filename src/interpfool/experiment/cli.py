"""Command-line entry shared by train.py and eval.py.

Bad input ends with ONE line on stderr naming the value and what is allowed, and exit code 2:
* composition errors (an unknown group option or key, a value of the wrong type: the typed schema of
  ``experiment.schema``) and values outside their range (``experiment.validate``) are caught by composing
  the config once with Hydra's compose API before ``@hydra.main`` runs (single runs; a multirun's jobs
  are checked by ``experiment.build.checked_build``);
* value errors raised while building objects (``ValueError`` / ``FileNotFoundError`` from the
  build phase, before any training) are caught in the task function;
* a run folder that cannot be created or written (``hydra.run.dir=`` under a file or a read-only
  folder) is refused by ``preflight`` before Hydra creates it (single runs only).

Exit codes: 2 bad input (``BadInput``), 3 training failed (a NaN/Inf loss), 4 a file could not be
written (``WriteFailed``: disk full, no permission; the temp file is removed and an earlier file at
that path is left as it was). Each ends with ONE line ``error: ...`` on stderr, never a traceback.
"""
from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path
from typing import Callable

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import interpfool.experiment.schema  # noqa: F401 - registers the typed schema with Hydra's ConfigStore

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
EXIT_BAD_INPUT = 2
EXIT_TRAINING_FAILED = 3
EXIT_IO_FAILED = 4


class BadInput(Exception):
    """A user-facing, one-line error."""


class WriteFailed(Exception):
    """A file could not be written (disk full, no permission): one line naming the path, exit code 4."""

    @classmethod
    def of(cls, err: BaseException, path: str | os.PathLike) -> "WriteFailed":
        if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            what = "no space left on device"
        elif isinstance(err, OSError) and err.strerror:
            what = err.strerror[:1].lower() + err.strerror[1:]
        else:
            what = f"write failed ({reason(err)})"
        return cls(f"{what} while writing {path} (nothing was replaced: an earlier file there is unchanged)")


def reason(err: BaseException, width: int = 120) -> str:
    """``Type: message`` of an exception, on one line and at most about ``width`` characters."""
    text = " ".join(str(err).split())
    if len(text) > width:
        cut = text.rfind(". ", 0, width)
        text = text[:cut] if cut > 0 else text[:width] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


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


def unwritable_dir(path: Path) -> str | None:
    """Why the folder ``path`` can neither be used nor created (``None``: it can): the nearest part of it that
    exists must be a writable folder."""
    probe = Path(os.path.abspath(path))
    while not os.path.lexists(probe):
        probe = probe.parent
    if not probe.exists():
        return f"{probe} is a broken link"
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def check_run_dir(argv: list[str]) -> None:
    """A ``hydra.run.dir=`` given on the command line must be a folder this process can create and write;
    else one line, exit 2, before Hydra tries (its own error is a traceback). With an interpolation
    (``out/${now:%H-%M-%S}``) the fixed part before it is checked."""
    given = [a for a in argv if a.startswith("hydra.run.dir=")]
    if not given:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser
    value = str(OverridesParser.create().parse_overrides(given[-1:])[0].value())
    literal = value.split("${", 1)[0]
    path = Path(literal) if "${" not in value or literal.endswith("/") else Path(literal).parent
    problem = unwritable_dir(path)
    if problem:
        fail(f"hydra.run.dir={value!r} cannot be created or written: {problem}; "
             f"allowed: a folder this user can create and write")


def compose_config(config_name: str, overrides: list[str], conf_dir: Path = CONF_DIR) -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides`` through Hydra's compose API, as the entry points compose it."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def preflight(config_name: str, argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Compose once so unknown options fail with one line before Hydra starts a run, and check that an
    explicit ``hydra.run.dir=`` can be written (``check_run_dir``). Other overrides of Hydra's own settings
    are left to Hydra."""
    if not _is_single_run(argv):
        return
    try:
        cfg = compose_config(config_name, [a for a in argv if not _is_hydra_override(a)], conf_dir)
    except Exception as err:  # noqa: BLE001 - any composition failure is the user's input
        fail(one_line(err, conf_dir))
    from interpfool.experiment.validate import check
    try:
        check(cfg)          # ranges, choices, finite numbers: before Hydra creates the run folder
    except BadInput as err:
        fail(str(err))
    check_run_dir(argv)


def guarded(task: Callable, *args, **kwargs):
    """Run ``task``; a build-phase ``BadInput`` -> one line, exit 2; a non-finite loss -> one line, exit 3;
    a file that could not be written (``WriteFailed``, or a disk-full ``OSError`` from anywhere) -> one line,
    exit 4."""
    from interpfool.experiment.callbacks import NonFiniteLoss

    try:
        return task(*args, **kwargs)
    except BadInput as err:
        fail(str(err))
    except NonFiniteLoss as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_TRAINING_FAILED)
    except WriteFailed as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_IO_FAILED)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"error: no space left on device while writing {err.filename or 'a run file'}", file=sys.stderr)
        sys.exit(EXIT_IO_FAILED)
