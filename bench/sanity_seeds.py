"""The sanity checks (Adebayo et al. 2018) of fooled runs over seeds: ``eval.py ckpt=<run> eval.sanity.enabled=true``
on each run folder (skipped where ``<run>/sanity/sanity.json`` exists), then mean +- std over the runs of each
per-run mean similarity, per model (theta0, theta*), mode, interpreter, metric and randomised layer; the verdict
(similarity after every layer is random, Spearman of the absolute maps) per run; the figure in the paper's style.

    python train.py seed=0 hydra.run.dir=outputs/sanity_runs/seed0     # and seeds 1, 2 (the default run)
    python bench/sanity_seeds.py outputs/sanity_runs/seed0 outputs/sanity_runs/seed1 outputs/sanity_runs/seed2 \
        --json docs/results/sanity_checks.json --figure docs/figures/sanity_checks.png [-- key=value ...]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

EVAL = ["eval.sanity.enabled=true", "eval.aopc.images=0", "eval.robustness.sigmas=[]", "eval.split=test",
        "logger=csv"]


def evaluate(run: Path, extra: list[str], threads: int) -> dict:
    out = run / "sanity"
    if not (out / "sanity.json").is_file():
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
        start = time.time()
        cmd = [sys.executable, str(ROOT / "eval.py"), f"ckpt={run}", *EVAL, f"hydra.run.dir={out}", *extra]
        with open(run / "sanity.log", "w") as log:
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
        (out / "wall_seconds.txt").write_text(f"{time.time() - start:.0f}\n")
    return json.loads((out / "sanity.json").read_text())


def _mean_std(values: list) -> tuple[float | None, float | None]:
    v = [x for x in values if x is not None]
    if not v:
        return None, None
    return statistics.fmean(v), (statistics.pstdev(v) if len(v) > 1 else 0.0)


def aggregate(results: list[dict]) -> dict:
    """{model: {mode: {"steps", "interpreters": {name: {metric: {"mean": [...], "std": [...], "runs": n}}}}}}:
    mean and std over runs of each run's mean over images."""
    out: dict = {}
    first = results[0]["results"]
    for model, modes in first.items():
        out[model] = {}
        for mode, summary in modes.items():
            interps = {}
            for name, entry in summary["interpreters"].items():
                interps[name] = {}
                for metric in ("spearman_abs", "spearman_raw", "ssim"):
                    per_step = list(zip(*[r["results"][model][mode]["interpreters"][name][metric]["mean"]
                                          for r in results]))
                    stats = [_mean_std(list(s)) for s in per_step]
                    interps[name][metric] = {"mean": [m for m, _ in stats], "std": [d for _, d in stats],
                                             "runs": len(results)}
            out[model][mode] = {"steps": summary["steps"], "layers": summary["layers"], "interpreters": interps}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="eval.py overrides (after --)")
    args = parser.parse_args()
    results, runs = [], []
    for run in args.runs:
        sanity = evaluate(run, args.extra, args.threads)
        report = json.loads((run / "report.json").read_text())
        results.append(sanity)
        wall = run / "sanity" / "wall_seconds.txt"
        runs.append({"run": str(run), "seed": report["seed"],
                     "fsr_gradcam_theta_star": report["fsr"]["gradcam"]["theta_star"],
                     "top1_theta0": report["accuracy"]["theta0"]["top1"],
                     "top1_theta_star": report["accuracy"]["theta_star"]["top1"],
                     "verdict": sanity["verdict"], "images": sanity["images"], "split": sanity["split"],
                     "sanity_wall_seconds": float(wall.read_text()) if wall.is_file() else None})
    agg = aggregate(results)
    print("| model | interpreter | Spearman |abs| after the top layer | after all layers | SSIM after all layers |")
    print("|---|---|---|---|---|")
    for model, modes in agg.items():
        for name, e in modes["cascading"]["interpreters"].items():
            a, s = e["spearman_abs"], e["ssim"]
            print(f"| {model} | {name} | {a['mean'][1]:.2f} ± {a['std'][1]:.2f} | {a['mean'][-1]:.2f} ± "
                  f"{a['std'][-1]:.2f} | {s['mean'][-1]:.2f} ± {s['std'][-1]:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": "python bench/sanity_seeds.py " + " ".join(str(r) for r in args.runs)
                       + (" -- " + " ".join(args.extra) if args.extra else ""),
            "eval_overrides": EVAL + args.extra, "runs": runs,
            "aggregate": "mean and std over runs of each run's mean over images", "results": agg}, indent=1))
    if args.figure:
        from interpfool.viz.sanity import save_sanity_curves
        save_sanity_curves(agg, args.figure, f"small_vgg (synthetic), Location-fooled Grad-CAM: mean ± std over "
                                             f"{len(results)} seeds; solid θ0, dashed θ*")
        maps = Path(results[0]["paths"].get("maps_theta_star", ""))
        if maps.is_file():
            shutil.copy(maps, args.figure.with_name(args.figure.stem + "_maps_theta_star.png"))
        maps0 = Path(results[0]["paths"].get("maps_theta0", ""))
        if maps0.is_file():
            shutil.copy(maps0, args.figure.with_name(args.figure.stem + "_maps_theta0.png"))


if __name__ == "__main__":
    main()
