"""A real 2-process DDP run (Lightning `ddp`, gloo on CPU) of Grad-CAM fooling: parameters are
identical on both ranks and equal a one-process run with the same global batch (within 1e-5)."""
import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("ddp_fooling_run.py")
ROOT = Path(__file__).resolve().parents[2]


def _run(out: Path, devices: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), str(devices)], cwd=out.parent, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_process_ddp_equals_one_process(tmp_path):
    _run(tmp_path / "ddp", 2)
    _run(tmp_path / "single", 1)
    rank0, rank1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1))
    single = torch.load(tmp_path / "single" / "rank0.pt")
    assert rank0.keys() == rank1.keys() == single.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks differ on {key}"
    worst = max(float((rank0[k].double() - single[k].double()).abs().max()) for k in rank0)
    print(f"max |DDP - single| over parameters: {worst:.3e}")
    assert worst < 1e-5
    # the run really trained: parameters moved from their initialisation
    torch.manual_seed(0)
    from interpfool import models
    fresh = models.build("small_vgg", num_classes=4, width=4, hidden=8).state_dict()
    assert max(float((single[k] - fresh[k]).abs().max()) for k in fresh if fresh[k].is_floating_point()) > 1e-4
