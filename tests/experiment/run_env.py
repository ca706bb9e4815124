"""The environment of a ``train.py`` subprocess in the CLI tests: no launcher variables inherited from the
caller (torchrun / SLURM / a DDP parent), ``src`` and a folder holding the test's ``sitecustomize`` hook on
PYTHONPATH, one thread, a private theta0 cache."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")


def train_env(tmp_path: Path, hook_source: str, **extra) -> dict:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(hook_source)
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS and not k.startswith("SLURM_")}
    return {**env, "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT / "src")]), "OMP_NUM_THREADS": "1",
            "INTERPFOOL_CACHE": str(tmp_path / "cache"), **extra}
