"""Rank awareness without a second process: rank detection from launcher variables, the shared run folder
of externally launched ranks, the launcher variables restored after a job, W&B on ranks > 0, the all-reduced
NaN decision, and evaluation on the training device rather than where Lightning's teardown left the model."""
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from interpfool.experiment import distributed as d

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "TORCHELASTIC_RUN_ID", "SLURM_PROCID",
               "SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_RESTART_COUNT", "MASTER_PORT", "MASTER_ADDR")


@pytest.fixture
def clean_env(monkeypatch):
    for k in LAUNCH_VARS:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.mark.parametrize("env, rank, launch", [
    ({}, 0, None),
    ({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "TORCHELASTIC_RUN_ID": "abc"}, 3, "torchrun"),
    ({"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "77"}, 1, "slurm"),
    ({"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}, 1, None),    # a child of Lightning's launcher
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_ID": "77"}, 0, None),   # one task: Lightning launches
])
def test_rank_and_launcher_from_the_environment(clean_env, env, rank, launch):
    for k, v in env.items():
        clean_env.setenv(k, v)
    assert (d.global_rank(), d.external_launch()) == (rank, launch)


def test_external_ranks_share_one_run_folder(clean_env):
    clean_env.setenv("RANK", "1")
    clean_env.setenv("WORLD_SIZE", "2")
    clean_env.setenv("TORCHELASTIC_RUN_ID", "r42")
    argv = d.external_launch_argv(["fooling.lam=2"])
    assert argv == ["fooling.lam=2", "hydra.run.dir=outputs/torchrun-r42", "hydra.sweep.dir=multirun/torchrun-r42",
                    "hydra.output_subdir=null", "hydra.job.name=train_rank1"]
    assert d.external_launch_argv(["hydra.run.dir=x", "hydra.sweep.dir=y"])[:2] == ["hydra.run.dir=x",
                                                                                     "hydra.sweep.dir=y"]
    clean_env.setenv("TORCHELASTIC_RUN_ID", "none")            # torchrun without --rdzv-id / --standalone
    with pytest.raises(ValueError, match=r"hydra.run.dir=<unset> under torchrun"):
        d.external_launch_argv([])


def test_train_py_without_a_shared_run_id_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RANK": "0", "WORLD_SIZE": "2",
           "TORCHELASTIC_RUN_ID": "none"}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("error: hydra.run.dir=<unset> under torchrun") and "allowed:" in proc.stderr


def test_end_of_job_restores_the_launcher_variables(clean_env):
    before = d.launcher_env()
    os.environ.update({"LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "1234"})   # what Lightning's launcher sets
    d.end_of_job(before)
    assert all(k not in os.environ for k in ("LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT"))


def test_wandb_summary_on_a_rank_above_zero_is_a_no_op(tmp_path, monkeypatch):
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from lightning.pytorch.loggers import WandbLogger

    from interpfool.experiment.loggers import log_summary, wandb_run_dir

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, mode="offline")
    log_summary(logger, {"final/x": 1.0}, histograms={"h": [1.0, 2.0]})
    assert wandb_run_dir(logger) is None


def _trainer(world: int, other_rank_bad: bool):
    reduced = []

    def reduce(t, reduce_op):
        reduced.append(reduce_op)
        return torch.maximum(t, torch.tensor(float(other_rank_bad)))
    return SimpleNamespace(global_step=5, world_size=world, global_rank=0,
                           strategy=SimpleNamespace(reduce=reduce)), reduced


def test_nan_on_another_rank_stops_this_rank_too():
    """The fallback (an optimizer that cannot skip a step on the device): a host read, all-reduced by Lightning."""
    from interpfool.experiment.callbacks import NonFiniteLoss, StopOnNonFiniteLoss

    trainer, reduced = _trainer(2, other_rank_bad=True)
    with pytest.raises(NonFiniteLoss, match=r"non-finite on another rank .* at step 5 \(rank 0\)"):
        StopOnNonFiniteLoss(1).on_before_backward(trainer, None, torch.tensor(1.0))
    assert reduced == ["max"]
    trainer, _ = _trainer(2, other_rank_bad=False)
    StopOnNonFiniteLoss(1).on_before_backward(trainer, None, torch.tensor(1.0))   # all finite: goes on


@pytest.mark.parametrize("arrived", ["cpu", "event"])
def test_on_the_device_an_inf_loss_on_another_rank_with_finite_gradients_here_stops_this_rank_too(monkeypatch,
                                                                                                   arrived):
    """The device path under DDP: this rank's loss and (all-reduced) gradients are finite, another rank's loss is
    Inf; the flags' all-reduce (max) makes this rank skip the step too (found_inf) and raise. With an event (a GPU)
    the host read is taken a fixed ``every`` steps after its copy, waiting if needed, never on whether the copy
    happens to have arrived, so every rank raises at the same step."""
    from interpfool.experiment import callbacks as guards
    from interpfool.experiment.callbacks import NonFiniteLoss, StopOnNonFiniteLoss

    class NeverQueried:
        waited = 0

        def query(self):
            raise AssertionError("under DDP the read must not depend on when the copy arrives")

        def synchronize(self):
            NeverQueried.waited += 1
    if arrived == "event":
        monkeypatch.setattr(guards, "_device_event", lambda device: NeverQueried())
    reduced = []

    def all_reduce(t, op):
        reduced.append((op, t.clone()))
        t.copy_(torch.maximum(t, torch.tensor([float(len(reduced) == 2)] * 2)))   # the other rank: Inf at 2nd step
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1, fused=True)
    trainer = SimpleNamespace(global_step=5, world_size=2, global_rank=0, optimizers=[opt], precision_plugin=None)
    guard, after_5 = StopOnNonFiniteLoss(1), None

    def step(n):
        trainer.global_step = n
        p.grad = torch.full((3,), 0.5)
        guard.on_before_backward(trainer, None, torch.tensor(1.0))
        guard.on_before_optimizer_step(trainer, None, opt)
        opt.step()
    step(5)
    after_5 = p.detach().clone()
    stop = pytest.raises(NonFiniteLoss, match=r"non-finite on another rank \(here 1.0\) at step 6 \(rank 0\)")
    if arrived == "cpu":
        with stop:
            step(6)                  # raised before step 6's optimizer step
    else:
        step(6)                      # read: step 5's copy (clean); step 6 skipped on the device
        with stop:
            step(7)                  # read: step 6's copy, one step after it was queued, on every rank alike
        assert NeverQueried.waited == 2
    assert [op for op, _ in reduced] == [torch.distributed.ReduceOp.MAX] * len(reduced)
    assert torch.equal(reduced[1][1], torch.zeros(2))          # this rank: loss and gradients finite
    assert float(opt.found_inf) == 1.0 and torch.equal(p.detach(), after_5)


def test_eval_device_follows_trainer_accelerator(monkeypatch):
    cfg = OmegaConf.create({"trainer": {"accelerator": "cpu"}})
    assert d.eval_device(cfg) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    for acc in ("gpu", "cuda", "auto"):
        assert d.eval_device(OmegaConf.create({"trainer": {"accelerator": acc}})) == torch.device("cuda", 1)


def test_evaluation_runs_on_the_training_device_not_where_teardown_left_the_model(compose_cfg, tmp_path, monkeypatch):
    """Lightning's teardown moves the module to the CPU after fit; on a GPU the evaluation must go back to the
    strategy's root device. Here the training device is made distinguishable: the strategy reports cpu:0."""
    from lightning.pytorch.strategies import SingleDeviceStrategy

    from tiny_run import TINY
    from interpfool.jobs import train as pipeline

    monkeypatch.setattr(SingleDeviceStrategy, "root_device", property(lambda self: torch.device("cpu", 0)))
    seen = []
    real = pipeline.evaluate_pair

    def spy(*args, **kwargs):
        seen.append(args[6] if len(args) > 6 else kwargs["device"])
        return real(*args, **kwargs)
    monkeypatch.setattr(pipeline, "evaluate_pair", spy)
    report = pipeline.run(compose_cfg(TINY + [f"cache_dir={tmp_path / 'cache'}", "logger=csv"]), tmp_path / "run")
    assert seen == [torch.device("cpu", 0)] and report["device"] == "cpu:0"
