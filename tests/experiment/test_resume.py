"""Kill a real train.py process after k steps, resume it with ckpt_path=last, and get the weights
of an uninterrupted run with the same seed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tiny_run import TINY

ROOT = Path(__file__).resolve().parents[2]
STEPS, EVERY, KILL_AFTER = 300, 5, 20
ARGS = [a for a in TINY if not a.startswith(("trainer.max_steps", "trainer.val_check_interval"))] + [
    f"trainer.max_steps={STEPS}", f"trainer.val_check_interval={STEPS}", f"checkpoint_every={EVERY}",
    "logger=csv", "eval.figure_images=1", "data.train_size=64"]


def _cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *ARGS, f"hydra.run.dir={run_dir}", *extra]


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "INTERPFOOL_CACHE": str(tmp_path / "cache"),
            "OMP_NUM_THREADS": "1"}


def _step_of(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"])
    except Exception:  # noqa: BLE001 - not there yet
        return -1


def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path):
    env = _env(tmp_path)
    straight = tmp_path / "straight"
    subprocess.run(_cmd(straight), cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(killed), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while _step_of(last) < KILL_AFTER:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _step_of(last)
    assert KILL_AFTER <= killed_at < STEPS and not (killed / "fooled.pt").exists()

    # Starting a fresh run in that folder is refused (nothing is overwritten); resuming works.
    refused = subprocess.run(_cmd(killed), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "already holds a run" in refused.stderr
    subprocess.run(_cmd(killed, "ckpt_path=last"), cwd=tmp_path, env=env, check=True, capture_output=True,
                   timeout=600)
    a = torch.load(straight / "fooled.pt")
    b = torch.load(killed / "fooled.pt")
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    print(f"killed at step {killed_at}, resumed to {STEPS}: max |resumed - uninterrupted| = {worst:.3e}")
    assert worst <= 1e-6
    # theta0 is not in the checkpoints (reproducible from the cache): compare with the cached original
    (original,) = (tmp_path / "cache" / "originals").glob("*.pt")
    theta0 = torch.load(original, weights_only=True)
    assert not any(k.startswith("net0.") for k in torch.load(killed / "checkpoints" / "last.ckpt",
                                                             weights_only=False)["state_dict"])
    moved = max(float((a[k].double() - theta0[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    assert moved > 1e-4, "fooling changed the weights"


@pytest.mark.parametrize("arg, expected", [("ckpt_path=last", "ckpt_path=last but"),
                                           ("ckpt_path=/nope.ckpt", "ckpt_path='/nope.ckpt' is not a file")])
def test_bad_resume_arguments(tmp_path, arg, expected):
    proc = subprocess.run(_cmd(tmp_path / "run", arg), cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
