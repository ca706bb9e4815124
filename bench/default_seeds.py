"""The default run (`python train.py`, i.e. `make run`) over seeds and thread counts, one process at a time:
theta0 / theta* top-1 on the test split, the drop, Grad-CAM Location FSR, the selected step, wall time; mean +- std
per thread count, and whether every run meets the bar (drop <= 2 points, FSR >= 80%). ``--repeat`` runs the first
seed of each thread count a second time and checks theta0, fooled.pt and report.json are identical.

    python bench/default_seeds.py --seeds 0 1 2 3 4 --threads 2 1 --out /tmp/default_seeds [--repeat] [-- key=value ...]

Every run trains its own theta0 (a fresh cache folder per run): about 90 s + 40 s at 2 threads on an idle 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ("seconds", "fooling_seconds", "wall_seconds", "paths", "path", "run_dir")


def run(out: Path, seed: int, threads: int, extra: list[str]) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    start = time.time()
    subprocess.run([sys.executable, str(ROOT / "train.py"), f"seed={seed}", "logger=csv", f"cache_dir={out / 'cache'}",
                    f"hydra.run.dir={out / 'run'}", *extra], cwd=ROOT, env=env, check=True,
                   stdout=open(out.with_suffix(".log"), "w"), stderr=subprocess.STDOUT)
    report = json.loads((out / "run" / "report.json").read_text())
    report["wall_seconds"] = time.time() - start
    return report


def numbers(report):
    return {k: numbers(v) for k, v in report.items() if k not in VOLATILE} if isinstance(report, dict) else report


def same_weights(a: Path, b: Path) -> bool:
    x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--out", type=Path, default=Path("/tmp/default_seeds"))
    parser.add_argument("--repeat", action="store_true")
    parser.add_argument("extra", nargs="*", help="train.py overrides (after --)")
    args = parser.parse_args()
    print("| threads | seed | theta0 top-1 | theta* top-1 | drop (points) | FSR | selected step | wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    ok = True
    for threads in args.threads:
        drops, fsrs = [], []
        for seed in args.seeds:
            out = args.out / f"t{threads}_seed{seed}"
            r = run(out, seed, threads, args.extra)
            acc, fsr = r["accuracy"], r["fsr"][r["interpreter"]]["theta_star"]
            drops.append(r["top1_drop_points"])
            fsrs.append(100 * fsr)
            ok &= r["top1_drop_points"] <= 2 and fsr >= 0.8
            print(f"| {threads} | {seed} | {100 * acc['theta0']['top1']:.2f}% | {100 * acc['theta_star']['top1']:.2f}% | "
                  f"{r['top1_drop_points']:.2f} | {100 * fsr:.1f}% | {r['selected']['step']} | {r['wall_seconds']:.0f} |",
                  flush=True)
            if args.repeat and seed == args.seeds[0]:
                again = args.out / f"t{threads}_seed{seed}_again"
                r2 = run(again, seed, threads, args.extra)
                theta0 = [next((d / "cache" / "originals").glob("*.pt")) for d in (out, again)]
                print(f"  repeat of seed {seed}, {threads} threads: theta0 identical {same_weights(*theta0)}, fooled.pt "
                      f"identical {same_weights(out / 'run' / 'fooled.pt', again / 'run' / 'fooled.pt')}, report "
                      f"numbers equal {numbers(r) == numbers(r2)}")
        if len(drops) > 1:
            print(f"| {threads} | mean +- std | | | {statistics.mean(drops):.2f} +- {statistics.stdev(drops):.2f} | "
                  f"{statistics.mean(fsrs):.1f} +- {statistics.stdev(fsrs):.1f}% | | |")
    print("bar (drop <= 2 points, FSR >= 80%) met by every run:", ok)


if __name__ == "__main__":
    main()
