"""Which process is this? Rank detection that works before Lightning starts, and the few
cross-rank hand-offs of a run (theta0 cache, run folder, end of a multirun job).

Launchers and the variables they set (read in this order, as ``lightning.fabric.utilities.rank_zero``):
* torchrun / torch.distributed.elastic: ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``TORCHELASTIC_RUN_ID``;
* SLURM (``srun``): ``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``, ``SLURM_JOB_ID``;
* Lightning's own ``ddp`` launcher: rank 0 is the process the user started (no variable); the
  children it starts get ``LOCAL_RANK`` (and ``NODE_RANK``) and re-run the script.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

WAIT_ENV = "INTERPFOOL_DIST_WAIT_S"      # how long a rank > 0 waits for rank 0's theta0 (seconds)


def global_rank() -> int:
    """This process's global rank from the launcher's environment (0 when there is none)."""
    for key in ("RANK", "SLURM_PROCID"):
        if os.environ.get(key) not in (None, ""):
            if key == "SLURM_PROCID" and int(os.environ.get("SLURM_NTASKS", "1")) <= 1 \
                    and "LOCAL_RANK" in os.environ:
                break                      # a single SLURM task running Lightning's own launcher
            return int(os.environ[key])
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")) or 0)
    if local or node:                      # a child of Lightning's launcher
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0) or _devices_hint()
        return node * per_node + local
    return 0


def _devices_hint() -> int:
    world, nodes = int(os.environ.get("WORLD_SIZE", "1") or 1), int(os.environ.get("NUM_NODES", "1") or 1)
    return max(1, world // max(1, nodes))


def is_rank_zero() -> bool:
    return global_rank() == 0


def external_launch() -> str | None:
    """``"torchrun"`` or ``"slurm"`` when the ranks were started outside this program (each process runs
    the whole script from the top at the same time), else None (one process, or Lightning's launcher)."""
    if "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1):
        return "torchrun"
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_PROCID" in os.environ:
        return "slurm"
    return None


def shared_run_id() -> str | None:
    """An id every rank of an externally launched job sees the same: torchrun's rendezvous id or SLURM's job
    (and step) id. None when there is none to share (torchrun without ``--rdzv-id`` / ``--standalone``)."""
    launch = external_launch()
    if launch == "torchrun":
        rid = os.environ.get("TORCHELASTIC_RUN_ID", "")
        return None if rid in ("", "none") else f"torchrun-{rid}"
    if launch == "slurm" and os.environ.get("SLURM_JOB_ID"):
        step = os.environ.get("SLURM_STEP_ID")
        return f"slurm-{os.environ['SLURM_JOB_ID']}" + (f".{step}" if step not in (None, "", "0") else "")
    return None


def slurm_requeued() -> bool:
    """A SLURM job that was requeued (preempted / timed out and restarted with the same job id)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0


def file_signature(path: Path) -> tuple | None:
    """(inode, mtime, size) of ``path``, None when it is not there: changes when the file is replaced."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def wait_for_file(path: Path, what: str, timeout: float | None = None, poll: float = 0.5,
                  replacing: tuple | None = None) -> None:
    """Block until ``path`` exists (rank 0 writes it atomically: temp file + rename, so once it is there it
    is complete); with ``replacing`` (a ``file_signature`` of the file read before), until that file has been
    replaced by another (rank 0 rewrites an unreadable cache entry). Raises ``TimeoutError`` after ``timeout``
    seconds (default ``$INTERPFOOL_DIST_WAIT_S`` or 6 hours); a crashed rank 0 ends the job earlier through the
    launcher (torchrun / srun kill the rest)."""
    timeout = float(os.environ.get(WAIT_ENV, 6 * 3600)) if timeout is None else timeout
    start = time.monotonic()
    while not Path(path).is_file() or (replacing is not None and file_signature(Path(path)) in (replacing, None)):
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"rank {global_rank()} waited {timeout:.0f} s for {what} at {path} (written by rank 0; "
                               f"on several nodes cache_dir must be a shared folder)")
        time.sleep(poll)


LAUNCHER_VARS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def launcher_env() -> dict[str, str | None]:
    """The variables Lightning's ``ddp`` launcher sets in rank 0's own environment, as they are before a fit."""
    return {k: os.environ.get(k) for k in LAUNCHER_VARS}


def end_of_job(before: dict[str, str | None] | None = None) -> None:
    """After a job whose Trainer launched its own ranks (not under torchrun / SLURM): close the process group
    and restore the launcher's variables, so that the next job of a multirun in this process starts new
    ranks on a fresh group (with ``LOCAL_RANK`` left set Lightning would take the next job as externally
    launched and wait for ranks that never come)."""
    import torch.distributed as dist

    if external_launch() or global_rank() != 0:
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key, value in (before or {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def eval_device(cfg) -> "torch.device":
    """The device of an evaluation outside a Trainer (eval.py, the lerma job): ``trainer.accelerator`` as
    Lightning reads it (cpu | gpu/cuda | mps | auto), on this process's local rank."""
    import torch

    acc = str(cfg.trainer.get("accelerator", "cpu")) if cfg.get("trainer") is not None else "cpu"
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local % max(1, torch.cuda.device_count()) if torch.cuda.is_available() else local)
    if acc == "mps" or (acc == "auto" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return torch.device("mps")
    return torch.device("cpu")


VALUE_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


def external_launch_argv(argv: list[str]) -> list[str]:
    """train.py's arguments for a rank started by torchrun / SLURM. Hydra resolves ``${now}`` per process, so
    the ranks would each open their own run folder (seconds apart): unless ``hydra.run.dir`` /
    ``hydra.sweep.dir`` is given, both become ``outputs|multirun/<torchrun-<rdzv id> | slurm-<job id>>``, the
    same on every rank. Ranks > 0 also leave Hydra's own files (``.hydra/``, the job log) to rank 0, as
    Lightning does for the children it launches. Raises ``ValueError`` when there is no shared id."""
    launch = external_launch()
    if launch is None:
        return argv
    given = {a.split("=", 1)[0].lstrip("+") for a in argv if "=" in a}
    out = list(argv)
    if not {"hydra.run.dir", "hydra.sweep.dir"} <= given:
        rid = shared_run_id()
        if rid is None:
            raise ValueError(f"hydra.run.dir=<unset> under {launch} without a rendezvous id (each rank would resolve "
                             f"${{now}} itself); allowed: hydra.run.dir=<folder>, or torchrun --standalone / --rdzv-id=<id>")
        if "hydra.run.dir" not in given:
            out.append(f"hydra.run.dir=outputs/{rid}")
        if "hydra.sweep.dir" not in given:
            out.append(f"hydra.sweep.dir=multirun/{rid}")
    if global_rank() != 0:
        out += ["hydra.output_subdir=null", f"hydra.job.name=train_rank{global_rank()}"]
    return out


def job_argv(argv: list[str]) -> list[str]:
    """Inside a multirun job whose Trainer launches its own DDP ranks: Lightning re-runs the script with
    ``sys.argv[1:]`` and ``hydra.run.dir=<HydraConfig run.dir>``, which would be ``-m`` with the whole sweep
    and the single-run folder, so every child would start the sweep again. Point both at this job: its own
    overrides (no ``-m``, no sweep lists) and its output folder. Returns the argv to restore afterwards."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN or external_launch():
        return argv
    flags, i = [], 0
    while i < len(argv):                     # keep --config-name / --config-dir and their values
        a = argv[i]
        if a.split("=", 1)[0] in VALUE_FLAGS:
            flags.append(a)
            if "=" not in a and i + 1 < len(argv):
                flags.append(argv[i + 1])
                i += 1
        i += 1
    with read_write(hc), open_dict(hc):
        hc.run.dir = hc.runtime.output_dir
    return [*flags, *hc.overrides.task]
