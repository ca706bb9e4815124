"""Experiment loggers: W&B (offline by default, everything inside the run folder) or CSV.

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
    rank_zero = is_rank_zero()            # ranks > 0 get Lightning's dummy experiment: no W&B files of theirs
    for var, sub in (("WANDB_DIR", ""), ("WANDB_CACHE_DIR", "wandb_cache"), ("WANDB_CONFIG_DIR", "wandb_config"),
                     ("WANDB_DATA_DIR", "wandb_data"), ("WANDB_ARTIFACT_DIR", "wandb_artifacts")):
        path = run_dir / sub
        if rank_zero:
            path.mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(path)
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    return WandbLogger(project=cfg.get("project", "interpfool"), name=run_name, save_dir=str(run_dir),
                       offline=mode == "offline", mode=mode, group=cfg.get("group") or group, tags=list(cfg.get("tags") or []),
                       config=config)


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
