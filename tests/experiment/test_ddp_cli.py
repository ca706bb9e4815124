"""Real 2-process DDP runs of train.py through the command line (gloo on CPU, the default W&B logger):
ranks started by torchrun / SLURM (environment variables set here, as those launchers set them) and by
Lightning's own ``ddp`` launcher, including a local ``-m`` multirun. They check one theta0 training in
total, one set of run files written by rank 0, evaluation on the training device, a NaN on one rank
stopping every rank with exit code 3, each rank validating its own share of the val split, and each multirun
job running once in its own folder."""
import csv
import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from run_env import train_env

ROOT = Path(__file__).resolve().parents[2]
TINY_DDP = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_steps=2",
            "trainer.val_check_interval=2", "original.epochs=1", "data.train_size=64", "data.val_size=32",
            "data.test_size=32", "data.batch_size=8", "model.width=4", "eval.figure_images=2"]
RUN_FILES = ("config.yaml", "fooled.pt", "report.json", "heatmaps.png", "test_losses.csv")

# Loaded by every process of a run (PYTHONPATH): rank 1's loss turns NaN at step 1 when INTERPFOOL_TEST_NAN is set;
# with INTERPFOOL_TEST_VAL_DIR each rank records the images it validates.
NAN_HOOK = '''
import os
if os.environ.get("INTERPFOOL_TEST_NAN"):
    from interpfool.fooling.module import FoolingModule
    _objective = FoolingModule.objective
    def objective(self, *args, **kwargs):
        out = _objective(self, *args, **kwargs)
        if self.trainer.global_rank == 1 and self.trainer.global_step == 1:
            out["loss"] = out["loss"] * float("nan")
        return out
    FoolingModule.objective = objective
if os.environ.get("INTERPFOOL_TEST_VAL_DIR"):   # each rank lists the pixel sums of the val images it validates
    from interpfool.fooling.module import FoolingModule
    _validation_step = FoolingModule.validation_step
    def validation_step(self, batch, idx, dataloader_idx=0):
        path = os.path.join(os.environ["INTERPFOOL_TEST_VAL_DIR"], f"rank{self.trainer.global_rank}.txt")
        with open(path, "a") as f:
            f.writelines(f"{float(x.sum()):.6f}\\n" for x in batch[0])
        return _validation_step(self, batch, idx, dataloader_idx)
    FoolingModule.validation_step = validation_step
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, **extra) -> dict:
    return train_env(tmp_path, NAN_HOOK, INTERPFOOL_DIST_WAIT_S="240", **extra)


def _external_ranks(tmp_path: Path, launcher: str, args: list[str], **extra) -> list[subprocess.CompletedProcess]:
    """Two train.py processes started at once, with the variables torchrun or srun would give them."""
    port, rid = str(_free_port()), str(uuid.uuid4().int % 10**6)     # SLURM job ids are numbers
    procs = []
    for rank in (0, 1):
        if launcher == "torchrun":
            ranks = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                     "TORCHELASTIC_RUN_ID": rid}
        else:   # SLURM: Lightning's SLURMEnvironment reads these (srun --ntasks=2 on one node)
            ranks = {"SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NTASKS": "2", "SLURM_NNODES": "1",
                     "SLURM_NODEID": "0", "SLURM_JOB_ID": rid, "SLURM_JOB_NAME": "interpfool", "SLURM_NODELIST": "localhost",
                     "SLURM_NTASKS_PER_NODE": "2"}
        env = _env(tmp_path, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, **ranks, **extra)
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "train.py"), *TINY_DDP, *args], cwd=tmp_path, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    done = []
    for p in procs:
        out, err = p.communicate(timeout=400)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def _check_one_run(run_dir: Path, outs: list[str]) -> dict:
    text = "".join(outs)
    assert text.count("training it") == 1, text           # one theta0 training in total
    assert sum("report:" in o for o in outs) == 1 and "report:" in outs[0]
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    report = json.loads((run_dir / "report.json").read_text())
    assert report["steps"] == 2 and report["device"] == "cpu"   # evaluated on the training device
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1    # rank 0's W&B run only
    return report


@pytest.mark.parametrize("launcher", ["torchrun", pytest.param("slurm", marks=pytest.mark.slow)])
def test_externally_launched_ranks_train_theta0_once_and_rank0_writes_the_run(tmp_path, launcher):
    procs = _external_ranks(tmp_path, launcher, [])
    for p in procs:
        assert p.returncode == 0, p.stderr[-3000:]
    runs = list((tmp_path / "outputs").iterdir())
    assert len(runs) == 1, runs                               # one run folder shared by both ranks (no ${now})
    assert runs[0].name.startswith(f"{launcher}-")
    _check_one_run(runs[0], [p.stdout for p in procs])
    # rank 1 waits for rank 0's theta0, or (started late on a loaded machine) finds it cached; it never trains
    assert "waits for rank 0" in procs[1].stdout or "reusing cached" in procs[1].stdout, procs[1].stdout[-2000:]
    assert "training it" not in procs[1].stdout
    assert not (runs[0] / "train.log").read_text().count("rank 1")
    assert sorted(p.name for p in runs[0].glob("*.log")) == ["train.log", "train_rank1.log"]


def test_nan_on_one_rank_stops_every_rank_with_exit_3(tmp_path):
    procs = _external_ranks(tmp_path, "torchrun", ["logger=csv", "trainer.max_steps=4"], INTERPFOOL_TEST_NAN="1")
    for rank, p in enumerate(procs):
        assert p.returncode == 3, (rank, p.stderr[-3000:])
        assert "at step 1 (rank " in p.stderr.strip().splitlines()[-1]
    assert "loss is nan" in procs[1].stderr and "another rank" in procs[0].stderr


def test_ranks_validate_disjoint_shares_and_rank0_reports_the_whole_split(tmp_path):
    """5 val images in batches of 2 on 2 ranks: 3 + 2 images, each validated once (no padding duplicate, no
    hang on the uneven shards); the synced val metrics and rank 0's report both cover all 5."""
    seen = tmp_path / "seen"
    seen.mkdir()
    procs = _external_ranks(tmp_path, "torchrun", ["logger=csv", "data.val_size=5", "data.eval_batch_size=2",
                                                   "eval.split=val"], INTERPFOOL_TEST_VAL_DIR=str(seen))
    for p in procs:
        assert p.returncode == 0, p.stderr[-3000:]
    shares = [(seen / f"rank{rank}.txt").read_text().split() for rank in (0, 1)]
    assert [len(s) for s in shares] == [3, 2] and len(set(shares[0] + shares[1])) == 5
    run = next((tmp_path / "outputs").iterdir())
    report = json.loads((run / "report.json").read_text())
    assert report["n_images"] == 5
    rows = [r for r in csv.DictReader(open(run / "csv" / "metrics.csv")) if r.get("val/acc_top1")]
    assert len(rows) == 1                 # one validation, at step 2: the weights the report evaluates
    assert float(rows[0]["val/acc_top1"]) == pytest.approx(report["accuracy"]["theta_star"]["top1"])


@pytest.mark.slow
def test_lightning_launched_ddp_run(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *TINY_DDP, f"hydra.run.dir={run_dir}"],
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_one_run(run_dir, [proc.stdout])


@pytest.mark.slow
def test_local_multirun_with_ddp_runs_each_job_once_in_its_own_folder(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", *TINY_DDP, "logger=csv",
                           "fooling.lam=1,2", f"hydra.sweep.dir={sweep}"],
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Launching 2 jobs") == 1, proc.stdout
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for job, lam in (("0", 1.0), ("1", 2.0)):
        assert json.loads((sweep / job / "report.json").read_text())["lam"] == lam
        assert (sweep / job / "train_ddp_process_1.log").is_file()      # the child ran this job, in its folder
    assert proc.stdout.count("training it") == 1
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()
