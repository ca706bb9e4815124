"""``LocalGpusLauncher``: Hydra's joblib launcher (loky worker processes) plus one GPU slot per worker.

Hydra imports every module under ``hydra_plugins`` at each start, so this one imports only Hydra's base class;
joblib, the joblib plugin and torch are imported when a sweep is set up. The plan (n_jobs, GPU blocks) is
checked in ``setup``, before Hydra writes anything into the sweep folder, so a bad value ends the command with
one line and exit code 2 (``interpfool.experiment.cli.fail``)."""
from __future__ import annotations

import atexit
import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class LocalGpusLauncher(Launcher):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.plan = None
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from interpfool.experiment.cli import BadInput, fail
        from interpfool.experiment.local_gpus import make_plan, new_lock_dir

        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context
        try:
            import hydra_plugins.hydra_joblib_launcher  # noqa: F401
        except ImportError:
            fail("hydra/launcher=local_gpus needs hydra-joblib-launcher, which is not installed: "
                 "pip install -e '.[gpus]'")
        try:
            plan = make_plan(self.settings)
        except BadInput as err:
            fail(str(err))
        lock_dir = new_lock_dir()
        atexit.register(shutil.rmtree, lock_dir, ignore_errors=True)   # after the last batch of the sweep
        self.plan = dataclasses.replace(plan, lock_dir=lock_dir)
        accelerator = str(config.get("trainer", {}).get("accelerator", "cpu"))
        if plan.blocks and accelerator == "cpu":
            log.warning("local_gpus: GPUs are visible but trainer.accelerator=cpu: the jobs will not use them "
                        "(add trainer=gpu or trainer=ddp)")

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra.core.singleton import Singleton
        from hydra.core.utils import configure_log, filter_overrides, setup_globals
        from joblib import Parallel, delayed

        from interpfool.experiment.local_gpus import parent_entry, run_in_slot, slot_devices

        assert self.config is not None and self.plan is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        plan = self.plan
        slots = "; ".join(f"slot {s}: GPUs {','.join(slot_devices(s, plan.blocks))}"
                          for s in range(min(plan.n_jobs, 16))) if plan.blocks else "CPU"
        log.info(f"local_gpus: launching {len(job_overrides)} jobs, {plan.n_jobs} at a time ({slots}); "
                 f"sweep output dir: {sweep_dir}")
        for note in plan.notes:
            log.info(f"local_gpus: {note}")
        for idx, overrides in enumerate(job_overrides):
            log.info(f"\t#{initial_job_idx + idx} : {' '.join(filter_overrides(overrides))}")
        singleton_state = Singleton.get_state()
        entry = parent_entry()          # a trainer=ddp job's ranks re-run this script, not loky's worker
        # loky: fresh worker processes (Hydra is not thread-safe); batch_size=1: a free worker takes one job at a time
        runs = Parallel(n_jobs=plan.n_jobs, backend="loky", batch_size=1, pre_dispatch="n_jobs",
                        verbose=int(self.settings.get("verbose", 0)))(
            delayed(run_in_slot)(plan, entry, initial_job_idx + idx, overrides, self.hydra_context, self.config,
                                 self.task_function, singleton_state)
            for idx, overrides in enumerate(job_overrides))
        assert all(isinstance(r, JobReturn) for r in runs)
        return runs
