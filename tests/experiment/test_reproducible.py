"""Same seed + config + thread count -> the same theta0 and fooled weights, bit for bit, and the same report,
in two separate train.py processes (each with its own theta0 cache and its own PYTHONHASHSEED); another seed
-> other weights.

Why separate processes: this torch seeds its default generator from the OS at start-up (torch.initial_seed()
differs in every process), so anything drawn from the global RNG before the job seeds it (a model's initial
weights) differs between processes while looking fine inside one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["data.train_size=128", "data.val_size=32", "data.test_size=32", "original.epochs=1", "model.width=8",
         "trainer.max_steps=6", "trainer.val_check_interval=3", "eval.figure_images=1", "logger=csv"]
VOLATILE = ("seconds", "fooling_seconds", "paths", "path", "run_dir")   # timings and file locations


def _train(tmp_path: Path, name: str, hash_seed: str, *extra: str) -> Path:
    out = tmp_path / name
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": hash_seed}
    env.pop("INTERPFOOL_CACHE", None)
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *SMALL, *extra, f"cache_dir={out / 'cache'}",
                           f"hydra.run.dir={out / 'run'}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _theta0(out: Path) -> dict:
    (path,) = (out / "cache" / "originals").glob("*.pt")
    return torch.load(path, weights_only=True)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _numbers(report: dict):
    if isinstance(report, dict):
        return {k: _numbers(v) for k, v in report.items() if k not in VOLATILE}
    return report


def test_same_seed_gives_bit_identical_weights_and_report_across_processes(tmp_path):
    a = _train(tmp_path, "a", "1")
    b = _train(tmp_path, "b", "2")
    assert _same(_theta0(a), _theta0(b)), "theta0 differs between two processes with the same seed"
    fooled = [torch.load(out / "run" / "fooled.pt", weights_only=True) for out in (a, b)]
    assert _same(*fooled), "fooled.pt differs between two processes with the same seed"
    reports = [json.loads((out / "run" / "report.json").read_text()) for out in (a, b)]
    assert reports[0]["selected"]["weights"] == "best"                 # the default protocol ran
    assert _numbers(reports[0]) == _numbers(reports[1])

    other = _train(tmp_path, "other", "1", "seed=1", "trainer.max_steps=1", "trainer.val_check_interval=1")
    theta0 = _theta0(other)
    assert not any(torch.equal(theta0[k], _theta0(a)[k]) for k in theta0 if k.endswith("weight")), \
        "seed=1 trained the same theta0 as seed=0"
