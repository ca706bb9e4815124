"""The sanity checks of a fooled run (issue 13 item 2): the randomisation test (``sanity.checks``) of theta0 and of
theta*, for every interpreter of ``eval.sanity.interpreters`` plus the edge-detector control, cascading and
independent, summarised per layer (mean, std over images) into ``sanity.json`` with the figures of Adebayo et al.
(similarity against the randomised layer, one line per interpreter; the maps at every cascading step).

Run by ``eval.py`` when ``eval.sanity.enabled=true`` (``jobs/eval.py``)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from interpfool.sanity.checks import randomisation_test
from interpfool.sanity.controls import EdgeDetector
from interpfool.sanity.randomize import MODES
from interpfool.sanity.similarity import METRICS

CONTROL = "edge (control)"
MODELS = ("theta0", "theta_star")


def first_images(loader, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` (image, label) pairs of ``loader``, on the CPU."""
    xs, ys, have = [], [], 0
    for batch in loader:
        x, y = batch[0], batch[1]
        xs.append(x[: n - have].cpu())
        ys.append(y[: n - have].cpu())
        have += xs[-1].shape[0]
        if have >= n:
            break
    return torch.cat(xs), torch.cat(ys)


def _stat(values: torch.Tensor, fn) -> float | None:
    v = values[~values.isnan()]
    return None if not v.numel() else float(fn(v))


def summarize(result: dict) -> dict:
    """JSON-able per-step summary of ``randomisation_test``'s result: for each interpreter and metric, the mean, the
    std over images and the number of images with a defined value, per step; the share of all-zero maps."""
    out = {"mode": result["mode"], "steps": result["steps"], "layers": result["layers"], "interpreters": {}}
    for name, metrics in result["similarity"].items():
        entry = {}
        for metric, values in metrics.items():
            entry[metric] = {"mean": [_stat(v, torch.mean) for v in values],
                             "std": [_stat(v, lambda t: t.std(unbiased=False)) for v in values],
                             "n": [int((~v.isnan()).sum()) for v in values]}
        entry["zero_maps"] = result["zero_maps"][name]
        out["interpreters"][name] = entry
    return out


def run_study(nets: dict[str, nn.Module], interps: dict[str, Callable], x: torch.Tensor, target,
              modes: tuple[str, ...] = tuple(MODES), seed: int = 0, batch_size: int = 64, keep_maps: int = 2,
              control: bool = True) -> tuple[dict, dict]:
    """(summary, maps): for each model of ``nets`` and each mode, ``summarize(randomisation_test(...))``; maps:
    {model: {mode: {interp: [S, keep, h, w]}}} for the figures."""
    interps = {**interps, **({CONTROL: EdgeDetector} if control else {})}
    summary, maps = {}, {}
    for model, net in nets.items():
        summary[model], maps[model] = {}, {}
        for mode in modes:
            result = randomisation_test(net, interps, x, target, mode=mode, seed=seed, batch_size=batch_size,
                                        keep_maps=keep_maps)
            summary[model][mode] = summarize(result)
            maps[model][mode] = result["maps"]
    return summary, maps


def verdict(summary: dict, metric: str = "spearman_abs", threshold: float = 0.5) -> dict:
    """Per model and interpreter: the mean similarity after the last cascading step (every layer random) and
    whether it is below ``threshold`` (passes: the maps depend on the parameters)."""
    out = {}
    for model, modes in summary.items():
        casc = modes.get("cascading")
        if casc is None:
            continue
        out[model] = {}
        for name, entry in casc["interpreters"].items():
            last = entry[metric]["mean"][-1]
            out[model][name] = {"all_random": last,
                                "passes": None if last is None or math.isnan(last) else bool(last < threshold)}
    return out


def write(summary: dict, maps: dict, images: torch.Tensor, out_dir: Path, title: str = "",
          info: dict | None = None) -> dict:
    """sanity.json, sanity_curves.png and sanity_maps_<model>.png in ``out_dir``; returns the report entry."""
    from interpfool.viz.sanity import save_sanity_curves, save_sanity_maps
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"curves": str(save_sanity_curves(summary, out_dir / "sanity_curves.png", title))}
    for model, modes in maps.items():
        if "cascading" in modes and modes["cascading"]:
            steps = summary[model]["cascading"]["steps"]
            paths[f"maps_{model}"] = str(save_sanity_maps(images, modes["cascading"], steps,
                                                          out_dir / f"sanity_maps_{model}.png",
                                                          f"{title}; {model}, cascading randomisation"))
    entry = {**(info or {}), "verdict": verdict(summary), "results": summary, "paths": paths}
    (out_dir / "sanity.json").write_text(json.dumps(entry, indent=2))
    return entry
