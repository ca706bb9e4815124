"""Fool an explanation: `python train.py [group=option ...] [key=value ...]`.

Default: small_vgg on the offline synthetic benchmark, Location fooling of Grad-CAM, W&B offline.
`python train.py --help` lists the config groups and their options.
"""
import sys
from importlib import import_module
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from interpfool.experiment.cli import fail, guarded, preflight
from interpfool.experiment.distributed import external_launch_argv, job_argv
from interpfool.jobs import JOBS


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    job = cfg.get("job", "fool")
    if job not in JOBS:
        fail(f"job={job!r}; allowed: {', '.join(JOBS)}")
    if job in ("lerma", "attacks"):   # experiment=lerma_presoftmax / attacks: measurements on theta0, no fooling
        guarded(import_module(JOBS[job]).run, cfg, Path(HydraConfig.get().runtime.output_dir))
        return None
    run = import_module(JOBS[job]).run
    hydra_cfg = HydraConfig.get()
    # Each multirun job is its own W&B run, grouped by sweep (unless logger.group is set).
    group = "sweep-" + "-".join(Path(hydra_cfg.sweep.dir).parts[-2:]) if hydra_cfg.mode == RunMode.MULTIRUN else None
    argv, sys.argv[1:] = sys.argv[1:], job_argv(sys.argv[1:])    # DDP children re-run this job, not the sweep
    try:
        report = guarded(run, cfg, Path(hydra_cfg.runtime.output_dir), group=group)
    finally:
        sys.argv[1:] = argv
    return None if report is None else report["fsr"][report["interpreter"]]["theta_star"]   # None: DDP rank > 0


if __name__ == "__main__":
    try:
        sys.argv[1:] = external_launch_argv(sys.argv[1:])   # torchrun / SLURM ranks: one shared run folder
    except ValueError as err:
        fail(str(err))
    preflight("config", sys.argv[1:])
    main()
