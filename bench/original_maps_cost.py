"""Cost of the end-of-run evaluation's transfer row with theta0's maps recomputed in every run against served by
the per-process store (``experiment/original_maps.py``), as in a leaderboard multirun whose jobs share a theta0.

theta0 is a freshly initialised small model (small_resnet by default, 10 classes, 28 x 28 x 1 like Fashion-MNIST),
theta* two parameter-perturbed copies; ``--images`` random images in one batch; the 11 interpreters of the
leaderboard with its evaluation settings (SmoothGrad n = 16 unseeded, so never stored; IG and RSI-Grad-CAM 16
steps); Location fooling. The store is filled by theta*_1's evaluation, then theta*_2's evaluation runs with
and without it, interleaved, ``--reps`` times; the medians and their ratio are printed, and whether the two reports
are identical.

    OMP_NUM_THREADS=1 python bench/original_maps_cost.py --model small_resnet --images 200 --reps 3 [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial

import _common
import torch

from interpfool.experiment.evaluate import evaluate_pair
from interpfool.experiment.original_maps import OriginalMaps
from interpfool.fooling import LocationFooling
from interpfool.interpreters.registry import build
from interpfool.metrics import perturb_parameters
from interpfool.models.small_densenet import SmallDenseNet
from interpfool.models.small_resnet import SmallResNet
from interpfool.models.small_vgg import SmallVGG

MODELS = {"small_vgg": SmallVGG, "small_resnet": SmallResNet, "small_densenet": SmallDenseNet}
EVAL_KWARGS = {"smoothgrad": {"n": 16}, "ig": {"steps": 16}, "rsigradcam": {"steps": 16}}
NAMES = ["gradcam", "gradcam_pos", "gradcampp", "rsigradcam", "simpleg", "simplegT", "gradinput", "smoothgrad", "ig",
         "lrp", "lrpT"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="small_resnet")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net0 = MODELS[a.model](num_classes=10).eval()
    nets = [perturb_parameters(net0, 0.1, torch.Generator().manual_seed(s)).eval() for s in (1, 2)]
    x, y = torch.randn(a.images, 3, 28, 28), torch.randint(0, 10, (a.images,))
    interps = {n: partial(build, n, **EVAL_KWARGS.get(n, {})) for n in NAMES}
    keys = {n: json.dumps([n, EVAL_KWARGS.get(n, {})]) for n in NAMES}
    store = OriginalMaps()

    def run(net, served):
        torch.manual_seed(0)                      # the unseeded SmoothGrad draws the same noise either way
        t = time.perf_counter()
        r = evaluate_pair(net0, net, [(x, y)], interps, LocationFooling(), similarity=False,
                          original_maps=store if served else None, interp_keys=keys)
        return time.perf_counter() - t, json.dumps(r, sort_keys=True)

    run(nets[0], True)                            # fills the store
    times = {"recomputed": [], "served": []}
    reports = {}
    for _ in range(a.reps):
        for name in times:
            dt, reports[name] = run(nets[1], name == "served")
            times[name].append(dt)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"model": a.model, "images": a.images, "threads": a.threads, "seconds": times, "median": med,
           "ratio_served_over_recomputed": med["served"] / med["recomputed"],
           "reports_identical": reports["served"] == reports["recomputed"], "machine": _common.machine(torch.device("cpu"))}
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
