"""One sweep across the GPUs of one machine: ``python train.py -m ... hydra/launcher=local_gpus``.

The launcher (``hydra_plugins.interpfool_local_gpus``, a thin layer over Hydra's joblib launcher) runs the
multirun's jobs in ``n_jobs`` parallel loky worker processes. This module holds what it adds: the plan (how
many workers, which GPUs each may use), checked with the project's one-line errors, and the slot a worker
claims before its first job.

Why slots held by workers and not ``GPU = job number mod n``: joblib hands the next job to whichever worker is
free, so jobs finish and start out of order. With a fixed job -> GPU map, job 2 of 2 GPUs would start on GPU 0
as soon as job 1 finished, while job 0 still ran there (two jobs on one GPU, one GPU idle). Instead each of the
``n_jobs`` workers claims one slot for its whole life (an exclusive ``flock`` on a slot file, released by the
kernel if the worker dies, so a replacement worker takes the freed slot), and slot ``s`` owns GPU block
``s mod n_blocks`` (block ``b`` = visible GPUs ``b*devices_per_job .. (b+1)*devices_per_job - 1``). At most
``n_jobs`` workers exist, so slots never collide, and a job always runs on its worker's GPUs.

Why ``CUDA_VISIBLE_DEVICES``: it is set in the worker before the worker's first job, i.e. before that process
initialises CUDA (a loky worker is a freshly executed interpreter: nothing the parent initialised carries over),
and it stays the same for the worker's life, so it is never changed under an initialised CUDA context. Every
job then sees only its own GPUs as cuda:0..k-1: ``trainer=gpu`` (devices 1) takes the first, ``trainer=ddp``
(devices -1: all visible) takes the block, and the DDP ranks Lightning starts inherit the variable.
"""
from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import sys
import tempfile
import time
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from interpfool.experiment.cli import BadInput

log = logging.getLogger(__name__)

SETTINGS = ("n_jobs", "devices_per_job", "verbose", "slot_wait_s")
SLOT_ENV = "INTERPFOOL_LAUNCH_SLOT"        # set in a worker once it holds a slot (read by the job's log line)


@dataclass(frozen=True)
class Plan:
    """``n_jobs`` parallel workers; worker slot ``s`` gets ``blocks[s % len(blocks)]`` (no GPUs: ``blocks`` empty)."""
    n_jobs: int
    blocks: tuple[tuple[str, ...], ...] = ()
    lock_dir: str = ""
    slot_wait_s: float = 600.0
    notes: tuple[str, ...] = field(default=())


def _int_setting(key: str, value: Any, allowed: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"hydra.launcher.{key}={value!r}; allowed: {allowed}")
    return value


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (indices or UUIDs) in CUDA's order.

    ``torch.cuda.device_count`` asks NVML first, so counting does not initialise CUDA here; the entries come from
    the parent's ``CUDA_VISIBLE_DEVICES`` when it is set, so a worker's subset is a subset of what the user
    allowed (``CUDA_VISIBLE_DEVICES=4,5 python train.py -m ...`` uses GPUs 4 and 5 only)."""
    import torch

    count = torch.cuda.device_count()
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is None:
        return [str(i) for i in range(count)]
    return [d.strip() for d in given.split(",") if d.strip()][:count]


def gpu_blocks(gpus: Sequence[str], devices_per_job: int) -> tuple[tuple[str, ...], ...]:
    """Disjoint blocks of ``devices_per_job`` GPUs, in order; GPUs left over (8 GPUs, 3 per job: 2) stay idle."""
    return tuple(tuple(gpus[b * devices_per_job:(b + 1) * devices_per_job])
                 for b in range(len(gpus) // devices_per_job))


def slot_devices(slot: int, blocks: Sequence[Sequence[str]]) -> tuple[str, ...] | None:
    """The GPUs of worker slot ``slot``: block ``slot mod n_blocks`` (None: CPU-only, nothing to restrict)."""
    return tuple(blocks[slot % len(blocks)]) if blocks else None


def make_plan(settings: dict[str, Any], gpus: Sequence[str] | None = None, cpus: int | None = None) -> Plan:
    """Check the launcher's settings and decide the number of parallel jobs and the GPU blocks.

    ``n_jobs`` (default null): GPUs visible -> ``visible // devices_per_job`` (one job per block); CPU-only -> the
    CPU count (joblib then gives each worker ``cpus // n_jobs`` OpenMP threads unless ``OMP_NUM_THREADS`` is set).
    A larger ``n_jobs`` than blocks is allowed: several small jobs then share a block (slot ``s`` -> block
    ``s mod n_blocks``). Raises ``BadInput`` (one line) on an unknown key or a bad value."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise BadInput(f"hydra.launcher.{unknown[0]}={settings[unknown[0]]!r}; allowed: keys {', '.join(SETTINGS)}")
    gpus = visible_gpus() if gpus is None else list(gpus)
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    per_job = _int_setting("devices_per_job", settings.get("devices_per_job", 1),
                           f"an integer from 1 to {len(gpus)} (the visible GPUs)" if gpus else "an integer >= 1")
    if gpus and per_job > len(gpus):
        raise BadInput(f"hydra.launcher.devices_per_job={per_job}; allowed: an integer from 1 to {len(gpus)} "
                       f"(the visible GPUs)")
    n_jobs = _int_setting("n_jobs", settings.get("n_jobs"), "an integer >= 1, or null (visible GPUs // "
                          "devices_per_job; without GPUs: the CPU count)", allow_none=True)
    wait = settings.get("slot_wait_s", 600)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not wait > 0:
        raise BadInput(f"hydra.launcher.slot_wait_s={wait!r}; allowed: a number of seconds > 0")
    verbose = settings.get("verbose", 0)
    if isinstance(verbose, bool) or not isinstance(verbose, int) or verbose < 0:
        raise BadInput(f"hydra.launcher.verbose={verbose!r}; allowed: an integer >= 0 (joblib's progress messages)")
    blocks = gpu_blocks(gpus, per_job)
    notes = []
    if not gpus:
        n_jobs = n_jobs or cpus
        notes.append(f"no GPU visible: {n_jobs} parallel jobs on the CPU")
        if per_job != 1:
            notes.append(f"hydra.launcher.devices_per_job={per_job} has no effect without GPUs")
    else:
        n_jobs = n_jobs or len(blocks)
        idle = len(gpus) - len(blocks) * per_job
        if idle:
            notes.append(f"{idle} of {len(gpus)} GPUs stay idle ({len(gpus)} is not a multiple of "
                         f"devices_per_job={per_job})")
    return Plan(n_jobs=n_jobs, blocks=blocks, slot_wait_s=float(wait), notes=tuple(notes))


# ---- in the worker -------------------------------------------------------------------------------------------

_held: dict[str, Any] = {}                 # this worker's slot: {"lock_dir", "slot", "file"} (kept open = locked)


def claim_slot(lock_dir: str | Path, n_slots: int, wait_s: float = 600.0, poll: float = 0.2) -> int:
    """Lock one of ``n_slots`` slot files in ``lock_dir`` for the rest of this process's life; return its number.

    ``flock`` locks belong to the open file, so the kernel releases a slot when its worker exits or crashes (loky
    replaces idle or dead workers) and the replacement takes it. Waits up to ``wait_s`` for a free slot (a worker
    being shut down while its replacement starts), then raises ``RuntimeError``."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        for slot in range(n_slots):
            f = open(lock_dir / f"slot{slot}.lock", "a")      # Python's fds are not inherited by DDP children
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            _held.update(lock_dir=str(lock_dir), slot=slot, file=f)
            return slot
        if time.monotonic() - start > wait_s:
            raise RuntimeError(f"local_gpus: no free slot of {n_slots} in {lock_dir} after {wait_s:.0f} s "
                               f"(more live workers than hydra.launcher.n_jobs)")
        time.sleep(poll)


def enter_slot(plan: Plan) -> tuple[int, tuple[str, ...] | None]:
    """In a worker, before a job: hold a slot (claimed at the worker's first job, kept after) and restrict CUDA to
    the slot's GPUs. Refuses to restrict a process whose CUDA is already initialised (the variable would be
    silently ignored and the job would run on another job's GPU)."""
    if _held.get("lock_dir") != plan.lock_dir:
        if _held.get("file") is not None:
            _held["file"].close()
        claim_slot(plan.lock_dir, plan.n_jobs, plan.slot_wait_s)
        devices = slot_devices(_held["slot"], plan.blocks)
        if devices is not None:
            import torch

            if torch.cuda.is_initialized() and os.environ.get("CUDA_VISIBLE_DEVICES") != ",".join(devices):
                raise RuntimeError("local_gpus: CUDA is already initialised in this worker; cannot move it to "
                                   f"GPUs {','.join(devices)}")
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
        os.environ[SLOT_ENV] = str(_held["slot"])
    return _held["slot"], slot_devices(_held["slot"], plan.blocks)


def parent_entry() -> dict[str, Any]:
    """How the parent was started (``python train.py ...`` or ``python -m ...``), for ``as_parent_script``."""
    main = sys.modules["__main__"]
    return {"argv": list(sys.argv), "spec": getattr(getattr(main, "__spec__", None), "name", None),
            "file": getattr(main, "__file__", None)}


@contextmanager
def as_parent_script(entry: dict[str, Any]):
    """Inside a loky worker, look like the parent's script while a job runs.

    Lightning's ``ddp`` launcher starts a job's other ranks by re-running ``__main__`` (``python <argv[0]>`` or
    ``python -m <__main__.__spec__.name>``, with ``sys.argv[1:]``, which train.py points at the job). A loky
    worker's ``__main__`` is loky's own ``popen_loky_posix`` module, so without this the ranks of a
    ``trainer=ddp`` job would start loky's worker program (``error: the following arguments are required:
    --pipe``). A stand-in ``__main__`` naming train.py (and the parent's argv) is put in place for the job and
    the worker's own restored afterwards."""
    saved_main, saved_argv = sys.modules["__main__"], sys.argv
    stand_in = types.ModuleType("__main__")
    stand_in.__file__ = entry["file"]
    stand_in.__spec__ = importlib.util.find_spec(entry["spec"]) if entry["spec"] else None
    sys.modules["__main__"], sys.argv = stand_in, list(entry["argv"])
    try:
        yield
    finally:
        sys.modules["__main__"], sys.argv = saved_main, saved_argv


def run_in_slot(plan: Plan, entry: dict[str, Any], idx: int, *job_args: Any) -> Any:
    """A loky worker's entry for job ``idx``: take this worker's slot, then run the job as Hydra's joblib
    launcher does (sweep config of the job, its own folder ``hydra.sweep.subdir``), as the parent's script."""
    from hydra_plugins.hydra_joblib_launcher._core import execute_job

    slot, devices = enter_slot(plan)
    task_function = job_args[-2]
    args = (*job_args[:-2], _LoggedTask(task_function, slot, devices), job_args[-1])
    with as_parent_script(entry):
        return execute_job(idx, *args)


class _LoggedTask:
    """The task function, preceded by one line in the job's own log naming its worker, slot and GPUs (Hydra has
    configured the job's logging by then)."""

    def __init__(self, task_function, slot: int, devices: tuple[str, ...] | None):
        self.task_function, self.slot, self.devices = task_function, slot, devices
        self.__name__ = getattr(task_function, "__name__", "task")

    def __call__(self, cfg):
        where = f"GPUs {','.join(self.devices)} (CUDA_VISIBLE_DEVICES)" if self.devices is not None else "CPU"
        log.info(f"local_gpus: worker pid {os.getpid()}, slot {self.slot}: {where}")
        return self.task_function(cfg)


def new_lock_dir() -> str:
    """A private folder for one launcher's slot files (removed by the launcher when the sweep ends)."""
    return tempfile.mkdtemp(prefix="interpfool-slots-")
