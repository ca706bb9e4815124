"""hydra/launcher=local_gpus: the GPU plan for faked GPU counts, slot claiming, the one-line errors, and a real
``train.py -m`` with two parallel CPU jobs (no GPU in CI: the device assignment is checked through the plan and
``enter_slot``, not on hardware)."""
import json
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import pytest
from run_env import train_env
import torch

from interpfool.experiment import local_gpus as lg
from interpfool.experiment.cli import BadInput
from interpfool.experiment.original import atomic_save

ROOT = Path(__file__).resolve().parents[2]
GPUS8 = [str(i) for i in range(8)]
TINY = ["trainer.max_steps=2", "trainer.val_check_interval=2", "original.epochs=1", "data.train_size=64",
        "data.val_size=32", "data.test_size=32", "data.batch_size=8", "model.width=4", "eval.figure_images=2",
        "logger=csv"]

# Loaded by every process of the sweep (PYTHONPATH): each job records its number, worker pid and slot, and waits at
# a barrier until both jobs have started. Run one after the other, job 0 would wait alone and fail after 60 s.
BARRIER_HOOK = '''
import os
if os.environ.get("INTERPFOOL_TEST_BARRIER"):
    import json, time
    from pathlib import Path
    import interpfool.jobs.train as pipeline
    _run = pipeline.run
    def run(cfg, run_dir, group=None):
        from hydra.core.hydra_config import HydraConfig
        folder, num = Path(os.environ["INTERPFOOL_TEST_BARRIER"]), HydraConfig.get().job.num
        (folder / f"arrived{num}").write_text(str(os.getpid()))
        start = time.time()
        while len(list(folder.glob("arrived*"))) < 2:
            if time.time() - start > 60:
                raise RuntimeError(f"job {num}: the other job did not start within 60 s (jobs not parallel)")
            time.sleep(0.1)
        report = _run(cfg, run_dir, group=group)
        (folder / f"job{num}.json").write_text(json.dumps({"pid": os.getpid(), "start": start, "end": time.time(),
            "slot": os.environ.get("INTERPFOOL_LAUNCH_SLOT"), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}))
        return report
    pipeline.run = run
'''


# ---- the plan: which GPUs a worker slot gets --------------------------------------------------------------------

@pytest.mark.parametrize("per_job, slots, expected", [
    (1, range(10), [("0",), ("1",), ("2",), ("3",), ("4",), ("5",), ("6",), ("7",), ("0",), ("1",)]),
    (2, range(5), [("0", "1"), ("2", "3"), ("4", "5"), ("6", "7"), ("0", "1")]),
    (3, range(3), [("0", "1", "2"), ("3", "4", "5"), ("0", "1", "2")]),      # GPUs 6 and 7 stay idle
    (8, range(2), [tuple(GPUS8), tuple(GPUS8)]),
])
def test_slots_map_to_disjoint_gpu_blocks_of_eight_gpus(per_job, slots, expected):
    blocks = lg.gpu_blocks(GPUS8, per_job)
    assert [lg.slot_devices(s, blocks) for s in slots] == expected
    plan = lg.make_plan({"devices_per_job": per_job}, gpus=GPUS8, cpus=64)
    assert plan.n_jobs == 8 // per_job                      # one job per block by default
    used = [g for b in plan.blocks for g in b]
    assert len(used) == len(set(used))                      # the default n_jobs never shares a GPU
    assert any("idle" in n for n in plan.notes) == (8 % per_job != 0)


def test_plan_defaults_and_more_jobs_than_gpus():
    assert lg.make_plan({}, gpus=[], cpus=2).n_jobs == 2           # CPU-only: the CPU count
    assert lg.make_plan({"n_jobs": 3}, gpus=[], cpus=2).n_jobs == 3
    assert lg.make_plan({"n_jobs": 3}, gpus=[], cpus=2).blocks == ()
    plan = lg.make_plan({"n_jobs": 4}, gpus=["0", "1"], cpus=8)    # small jobs: two per GPU
    assert plan.n_jobs == 4 and [lg.slot_devices(s, plan.blocks) for s in range(4)] == [("0",), ("1",)] * 2
    assert lg.slot_devices(0, ()) is None


def test_visible_gpus_follow_the_parents_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert lg.visible_gpus() == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4, 6,GPU-abc")
    assert lg.visible_gpus() == ["4", "6", "GPU-abc"]
    plan = lg.make_plan({"devices_per_job": 1})
    assert [lg.slot_devices(s, plan.blocks) for s in range(3)] == [("4",), ("6",), ("GPU-abc",)]


@pytest.mark.parametrize("settings, gpus, message", [
    ({"n_jobs": 0}, GPUS8, "hydra.launcher.n_jobs=0; allowed: an integer >= 1, or null"),
    ({"n_jobs": True}, [], "hydra.launcher.n_jobs=True; allowed: an integer >= 1"),
    ({"n_jobs": "2"}, [], "hydra.launcher.n_jobs='2'; allowed: an integer >= 1"),
    ({"devices_per_job": 0}, GPUS8, "hydra.launcher.devices_per_job=0; allowed: an integer from 1 to 8"),
    ({"devices_per_job": 9}, GPUS8, "hydra.launcher.devices_per_job=9; allowed: an integer from 1 to 8 (the visible"),
    ({"devices_per_job": 0}, [], "hydra.launcher.devices_per_job=0; allowed: an integer >= 1"),
    ({"slot_wait_s": 0}, [], "hydra.launcher.slot_wait_s=0; allowed: a number of seconds > 0"),
    ({"verbose": -1}, [], "hydra.launcher.verbose=-1; allowed: an integer >= 0"),
    ({"n_job": 2}, [], "hydra.launcher.n_job=2; allowed: keys n_jobs, devices_per_job, verbose, slot_wait_s"),
])
def test_bad_settings_are_one_line_errors(settings, gpus, message):
    with pytest.raises(BadInput) as err:
        lg.make_plan(settings, gpus=gpus, cpus=2)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


# ---- slots held by workers --------------------------------------------------------------------------------------

def test_each_claim_gets_a_free_slot_and_a_released_slot_is_taken_again(tmp_path, monkeypatch):
    monkeypatch.setattr(lg, "_held", {})
    first = lg.claim_slot(tmp_path, 2)
    held_first = lg._held["file"]
    assert lg.claim_slot(tmp_path, 2) == 1 != first == 0     # flock: a second open file cannot take slot 0
    with pytest.raises(RuntimeError, match="no free slot of 2"):
        lg.claim_slot(tmp_path, 2, wait_s=0.3)
    held_first.close()                                       # the worker holding slot 0 exits
    assert lg.claim_slot(tmp_path, 2) == 0


def test_enter_slot_restricts_cuda_to_the_slots_gpus_once_per_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(lg, "_held", {})
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)   # as in a fresh worker
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,4,5")
    plan = lg.make_plan({"devices_per_job": 2}, gpus=["2", "3", "4", "5"], cpus=2)
    other = open(tmp_path / "slot0.lock", "a")               # another worker holds slot 0
    import fcntl
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    import dataclasses
    plan = dataclasses.replace(plan, lock_dir=str(tmp_path))
    assert lg.enter_slot(plan) == (1, ("4", "5"))
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,5" and os.environ[lg.SLOT_ENV] == "1"
    other.close()
    assert lg.enter_slot(plan) == (1, ("4", "5"))            # the next job of this worker: same slot, same GPUs
    monkeypatch.delenv(lg.SLOT_ENV)


# ---- the theta0 cache under concurrent jobs ---------------------------------------------------------------------

def _save_many(path: str, value: float, n: int) -> None:
    torch.set_num_threads(1)
    for _ in range(n):
        atomic_save({"w": torch.full((64, 1024), value)}, Path(path))


def test_concurrent_saves_of_one_theta0_never_leave_a_partial_file(tmp_path):
    """Two parallel jobs with the same theta0 key both train it and save it to the same cache path. atomic_save
    writes a private temp file and renames it over the path, so a reader sees no file or a whole one (either
    writer's: the same config and seed give the same weights), never a mix; a plain torch.save could be read
    half-written."""
    path = tmp_path / "originals" / "key.pt"
    ctx = mp.get_context("fork")          # the writers need nothing new: no start-up import
    writers = [ctx.Process(target=_save_many, args=(str(path), v, 12)) for v in (1.0, 2.0)]
    for w in writers:
        w.start()
    def read() -> None:
        w = torch.load(path, weights_only=True)["w"]
        assert w.shape == (64, 1024) and float(w.min()) == float(w.max()) in (1.0, 2.0)

    while any(w.is_alive() for w in writers):
        if path.is_file():
            read()
    for w in writers:
        w.join()
        assert w.exitcode == 0
    read()
    assert sorted(p.name for p in path.parent.iterdir()) == ["key.pt"]   # no temp file left


# ---- train.py -m hydra/launcher=local_gpus ----------------------------------------------------------------------

def _env(tmp_path: Path, **extra) -> dict:
    return train_env(tmp_path, BARRIER_HOOK, **extra)


def test_two_jobs_run_at_once_in_two_workers_each_once_in_its_own_folder(tmp_path):
    """CUDA_VISIBLE_DEVICES="": the CPU path, also on a machine with GPUs."""
    sweep, barrier = tmp_path / "sweep", tmp_path / "barrier"
    barrier.mkdir()
    env = _env(tmp_path, INTERPFOOL_TEST_BARRIER=str(barrier), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=local_gpus",
                             "hydra.launcher.n_jobs=2", "fooling.lam=1,2", *TINY, f"hydra.sweep.dir={sweep}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "local_gpus: launching 2 jobs, 2 at a time (CPU)" in out + err
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    jobs = {n: json.loads((barrier / f"job{n}.json").read_text()) for n in (0, 1)}
    for n, lam in ((0, 1.0), (1, 2.0)):
        assert json.loads((sweep / str(n) / "report.json").read_text())["lam"] == lam
        log = (sweep / str(n) / "train.log").read_text()
        assert log.count("local_gpus: worker pid") == 1                  # ran once, in this folder
        assert f"worker pid {jobs[n]['pid']}, slot {jobs[n]['slot']}: CPU" in log
    assert out.count("report:") == 2
    # in parallel: two worker processes (not the launching one), two slots, overlapping in time
    assert len({jobs[0]["pid"], jobs[1]["pid"], proc.pid}) == 3
    assert {jobs[0]["slot"], jobs[1]["slot"]} == {"0", "1"}
    assert jobs[0]["start"] < jobs[1]["end"] and jobs[1]["start"] < jobs[0]["end"]
    assert jobs[0]["cuda"] == jobs[1]["cuda"] == ""                 # CPU-only: left as it was
    # both trained the same theta0 at once and saved it atomically: one whole cache file, no temp file left
    cached = list((tmp_path / "cache" / "originals").iterdir())
    assert [p.suffix for p in cached] == [".pt"], cached
    torch.load(cached[0], weights_only=True)


@pytest.mark.parametrize("override, line", [
    ("hydra.launcher.n_jobs=0", "error: hydra.launcher.n_jobs=0; allowed: an integer >= 1, or null (visible GPUs // "
                                "devices_per_job; without GPUs: the CPU count)"),
    ("hydra.launcher.devices_per_job=-1", "error: hydra.launcher.devices_per_job=-1; allowed: an integer "),
])
def test_bad_launcher_value_exits_2_with_one_line_before_writing_anything(tmp_path, override, line):
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=local_gpus", override,
                           "fooling.lam=1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith(line), proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sweep").exists()


def test_a_job_in_a_worker_relaunches_train_py_for_its_ddp_ranks(monkeypatch):
    """Lightning's ddp launcher re-runs ``__main__`` for ranks > 0; in a loky worker that is loky's own program
    unless ``as_parent_script`` puts the parent's script back for the job."""
    from lightning.fabric.strategies.launchers.subprocess_script import _basic_subprocess_cmd

    worker_main = sys.modules["__main__"]
    entry = {"argv": [str(ROOT / "train.py"), "-m", "fooling.lam=1,2"], "spec": None, "file": str(ROOT / "train.py")}
    monkeypatch.setattr(sys, "argv", ["/somewhere/popen_loky_posix.py", "--pipe", "3"])
    with lg.as_parent_script(entry):
        assert _basic_subprocess_cmd() == [sys.executable, str(ROOT / "train.py"), "-m", "fooling.lam=1,2"]
    assert sys.modules["__main__"] is worker_main and sys.argv[1:] == ["--pipe", "3"]
    with lg.as_parent_script({**entry, "spec": "json.tool"}):          # python -m json.tool ...
        assert _basic_subprocess_cmd()[:3] == [sys.executable, "-m", "json.tool"]


@pytest.mark.slow
def test_ddp_jobs_in_parallel_workers_start_their_ranks_in_their_own_folders(tmp_path):
    """trainer=ddp with 2 CPU ranks per job, 2 jobs at once: 4 processes; each job's rank 1 runs that job."""
    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=local_gpus",
                           "hydra.launcher.n_jobs=2", "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
                           "fooling.lam=1,2", *TINY, f"hydra.sweep.dir={sweep}"],
                          cwd=tmp_path, env=_env(tmp_path, CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job, lam in (("0", 1.0), ("1", 2.0)):
        assert json.loads((sweep / job / "report.json").read_text())["lam"] == lam
        assert (sweep / job / "train_ddp_process_1.log").is_file()      # the job's rank 1 ran in its folder
    assert proc.stdout.count("report:") == 2
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()
