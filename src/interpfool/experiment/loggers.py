"""Experiment loggers: W&B (offline by default, everything inside the run folder's ``wandb/``) or CSV.

DESIGN.md 4: online W&B with a key but no network blocks for ~100 s, so offline is forced unless
the config asks for ``online``; Hydra multirun jobs share one process, so every job ends with
``wandb.finish()`` (``finish_logger``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from interpfool.experiment.distributed import is_rank_zero

LOGGER_KINDS = ("wandb", "csv", "none")
WANDB_MODES = ("offline", "online", "disabled")


def make_logger(cfg: Any, run_dir: Path, run_name: str, config: dict, group: str | None = None) -> Logger | None:
    kind = cfg.kind
    if kind not in LOGGER_KINDS:
        raise ValueError(f"logger.kind={kind!r}; allowed: {', '.join(LOGGER_KINDS)}")
    if kind == "none":
        return None
    if kind == "csv":
        return CSVLogger(save_dir=str(run_dir), name="csv", version="")
    mode = cfg.get("mode", "offline")
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.mode={mode!r}; allowed: {', '.join(WANDB_MODES)}")
    if is_rank_zero():                    # ranks > 0 get Lightning's dummy experiment: no W&B files of theirs
        run_dir.mkdir(parents=True, exist_ok=True)
    for var, path in wandb_dirs(run_dir).items():
        os.environ[var] = str(path)       # W&B creates the ones it uses
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    logger = WandbLogger(project=cfg.get("project", "interpfool"), name=run_name, save_dir=str(run_dir),
                         offline=mode == "offline", mode=mode, group=cfg.get("group") or group,
                         tags=list(cfg.get("tags") or []), config=config)
    # Lightning (2.6) passes wandb.init(anonymous=None) whatever it is given; wandb (0.31 here) deprecates the setting
    # and warned on every run ("The anonymous setting has no effect ..."). Left out, wandb.init leaves it unset.
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def wandb_dirs(run_dir: Path) -> dict[str, Path]:
    """Where W&B writes, all inside the run folder's one ``wandb/`` folder: the runs (``wandb/offline-run-*``,
    under ``WANDB_DIR``), and W&B's cache (core logs), config, data (artifact staging) and artifact folders, which
    would otherwise go to ``~/.cache/wandb``, ``~/.config/wandb`` and ``~/.local/share/wandb``."""
    wandb = run_dir / "wandb"
    return {"WANDB_DIR": run_dir, "WANDB_CACHE_DIR": wandb / "cache", "WANDB_CONFIG_DIR": wandb / "config",
            "WANDB_DATA_DIR": wandb / "data", "WANDB_ARTIFACT_DIR": wandb / "artifacts"}


def wandb_run_dir(logger: Logger | None) -> str | None:
    """The folder of the W&B run (offline-run-...), or None."""
    if isinstance(logger, WandbLogger) and _real_run(logger):
        return str(Path(logger.experiment.dir).parent)
    return None


def _real_run(logger: WandbLogger) -> bool:
    """False on DDP ranks > 0, where Lightning hands out a dummy experiment (no ``dir``, no ``summary``)."""
    from lightning.pytorch.loggers.logger import DummyExperiment

    return not isinstance(logger.experiment, DummyExperiment)


def log_summary(logger: Logger | None, metrics: dict[str, float], images: dict[str, Path] | None = None,
                table: tuple[str, list[str], list[list]] | None = None,
                histograms: dict[str, list[float]] | None = None) -> None:
    """Final numbers, figures, a table and histograms (W&B only), to whichever logger is active."""
    if logger is None:
        return
    logger.log_metrics(metrics)
    if isinstance(logger, WandbLogger) and _real_run(logger):
        for key, path in (images or {}).items():
            logger.log_image(key=key, images=[str(path)])
        if table:
            key, columns, rows = table
            logger.log_table(key=key, columns=columns, data=rows)
        if histograms:
            import wandb
            logger.experiment.log({key: wandb.Histogram(values) for key, values in histograms.items() if values})
        for key, value in metrics.items():
            logger.experiment.summary[key] = value


def finish_logger(logger: Logger | None) -> None:
    if isinstance(logger, WandbLogger):
        import wandb
        wandb.finish()
    elif logger is not None:
        logger.finalize("success")
