"""``experiment=lerma_presoftmax``: the pre-softmax manipulation of Lerma & Lucas (2023), measured (DESIGN.md 2.4).

On the configured model (default: the cached synthetic-benchmark small_vgg original; ``lerma.weights=random``:
the randomly initialised model as built) and its manipulated copy z' = z + K * sum_k A_{pqk}
(``models.presoftmax_shift``), on ``lerma.images`` images of ``lerma.split``:

* outputs: max |softmax(z') - softmax(z)| (float32, and float64 on a double copy), argmax agreement;
* training: max |dCE/dtheta' - dCE/dtheta| over every original parameter (eval mode, and train mode with the
  same dropout draw and batch statistics);
* every interpreter in ``lerma.post_interpreters``: Spearman between the post-softmax maps of the two models
  (should be 1 up to float error) and between their pre-softmax maps;
* the interpreters in ``lerma.interpreters`` in detail, pre-softmax: share of the map's mass in the cells that
  feed the chosen pooling position (``models.feeding_cells``), class (in)dependence = Spearman between the
  maps of the two most likely classes of the same image, and agreement (Spearman) with the channel-sum of the
  target-layer activations, for the original and the manipulated model.

Writes ``report.json`` and figures like the paper's Figure 3 (rows: images; columns: original pre-softmax,
manipulated pre-softmax, original post-softmax, manipulated post-softmax), one per detailed interpreter.
Maps with undefined Spearman (a constant map, e.g. all-zero Grad-CAM) are left out of the means and counted.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning_utilities.core.apply_func import apply_to_collection
from omegaconf import DictConfig, OmegaConf
from torch import nn

from interpfool import interpreters
from interpfool.experiment.cli import BadInput
from interpfool.metrics.spearman import spearman as metrics_spearman
from interpfool.models import capture_inputs, feeding_cells, presoftmax_shift
from interpfool.viz.heatmap_grid import save_heatmap_grid

DETAIL_DEFAULT = ("gradcam", "simplegT", "lrp", "lrpT")
# path / sampling methods are costly; the identities checked here do not depend on their step counts
CHEAP_KWARGS = {"smoothgrad": {"n": 8, "seed": 0}, "ig": {"steps": 8}, "rsigradcam": {"steps": 8}}
WEIGHTS = ("original", "random")
SHIFT_DTYPES = {"float64": torch.float64, "model": None}


# -- small measures ---------------------------------------------------------------------------------------

def spearman(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-sample Spearman rank correlation of [B, ...] maps (``metrics.spearman``: average ranks for ties);
    NaN where a map is constant (undefined, left out of the means and counted)."""
    def varies(h: torch.Tensor) -> torch.Tensor:
        flat = h.flatten(1)
        return flat.amax(1) > flat.amin(1)
    rho = metrics_spearman(a, b)
    return torch.where(varies(a) & varies(b), rho, torch.full_like(rho, math.nan)).cpu().numpy()


def mass_share(h: torch.Tensor, region: torch.Tensor) -> np.ndarray:
    """Per-sample share of sum |h| inside ``region`` ([H, W] bool); NaN for an all-zero map."""
    mass = h.detach().abs().double().flatten(1)
    inside = (mass * region.flatten().to(mass.device)).sum(1)
    total = mass.sum(1)
    return torch.where(total > 0, inside / total, torch.full_like(total, math.nan)).cpu().numpy()


def summary(values: np.ndarray, at_least: float | None = None) -> dict:
    """Mean / median / min / max over the defined values, how many were undefined, and the share >= at_least."""
    values = np.asarray(values, dtype=float)
    ok = values[~np.isnan(values)]
    out = {"n": int(values.size), "undefined": int(values.size - ok.size)}
    if ok.size:
        out.update(mean=float(ok.mean()), median=float(np.median(ok)), min=float(ok.min()), max=float(ok.max()))
        if at_least is not None:
            out[f"share_ge_{at_least}"] = float((ok >= at_least).mean())
    return out


# -- outputs and training gradients -----------------------------------------------------------------------

def compare_outputs(net: nn.Module, shifted: nn.Module, x: torch.Tensor) -> dict:
    """Softmax deviation (float32 and float64), argmax agreement, the shift t and its uniformity over classes."""
    with torch.no_grad():
        z, zs = net(x), shifted(x)
        shift = zs - z
        p, ps = z.softmax(1), zs.softmax(1)
        net64 = copy.deepcopy(net).double()
        shifted64 = presoftmax_shift(net64, shifted.presoftmax_k, shifted.presoftmax_position)
        x64 = x.double()
        p64, ps64 = net64(x64).softmax(1), shifted64(x64).softmax(1)
    t = shift[:, 0]
    return {"softmax_max_abs_dev": float((p - ps).abs().max()),
            "softmax_max_abs_dev_float64": float((p64 - ps64).abs().max()),
            "argmax_agreement": float((z.argmax(1) == zs.argmax(1)).float().mean()),
            "t": {"mean": float(t.mean()), "min": float(t.min()), "max": float(t.max())},
            "logit_range": float((z.amax(1) - z.amin(1)).mean()),
            "shift_nonuniformity": float((shift - t[:, None]).abs().max())}


def _buffers(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.named_buffers()}


def compare_ce_grads(net: nn.Module, shifted: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """max |dCE/dtheta (shifted) - dCE/dtheta (original)| over every parameter of the original (shared by the
    shifted model); eval mode, and train mode with the same dropout draw (BatchNorm buffers restored)."""
    params = [p for p in net.parameters()]
    flags = [p.requires_grad for p in params]
    was_training = net.training
    result = {"n_parameters": int(sum(p.numel() for p in params)), "n_tensors": len(params)}
    try:
        for p in params:
            p.requires_grad_(True)
        for mode in ("eval", "train"):
            grads = []
            for model in (net, shifted):
                saved = _buffers(net)
                net.train(mode == "train")
                with torch.random.fork_rng(devices=[]), torch.enable_grad():
                    torch.manual_seed(1234)
                    loss = F.cross_entropy(model(x), y)
                    grads.append(torch.autograd.grad(loss, params, allow_unused=True))
                with torch.no_grad():
                    for k, v in net.named_buffers():
                        v.copy_(saved[k])
            dev, scale, worst = 0.0, 0.0, None
            for (name, _), g0, g1 in zip(net.named_parameters(), *grads):
                if g0 is None or g1 is None:
                    continue
                d = float((g0 - g1).abs().max())
                if d >= dev:
                    dev, worst = d, name
                scale = max(scale, float(g0.abs().max()))
            result[mode] = {"max_abs_dev": dev, "max_abs_grad": scale, "relative": dev / scale if scale else 0.0,
                            "worst_parameter": worst}
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        net.train(was_training)
    return result


# -- maps -------------------------------------------------------------------------------------------------

def _maps(name: str, model: nn.Module, x: torch.Tensor, classes: Sequence[torch.Tensor], score: str,
          kwargs: dict) -> list[torch.Tensor]:
    interp = interpreters.build(name, model, score=score, **kwargs)
    with torch.enable_grad():
        fwd = interp.forward(x)
        return [interp.explain(fwd, c) for c in classes]


def measure(net: nn.Module, shifted: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
            detail: Sequence[str] = DETAIL_DEFAULT, post: Sequence[str] | None = None,
            interp_kwargs: dict | None = None, corner_threshold: float = 0.9, keep_maps: int = 0,
            float64_post: bool = True, pool_input_gradcam: bool = True) -> dict:
    """All measurements of the module docstring on the batch ``x`` (target: the original's predicted class;
    ``y``: labels for the CE gradient, default the predictions). ``keep_maps``: also return the first maps.

    ``float64_post``: also compare the post-softmax maps on float64 copies. In float32 a saturated prediction
    (y_c rounds to 1) has a post-softmax gradient below float32 resolution, where the rounding residual of the
    t path (softmax's Jacobian sums to ~1e-7 instead of 0) dominates; in float64 the identity is visible.
    ``pool_input_gradcam``: also Grad-CAM at the input of ``last_pool``, where every channel weight gets the
    same shift (DESIGN.md 2.4), as ``gradcam@<last_pool>``."""
    net.eval()
    post = list(interpreters.names() if post is None else post)
    names = list(dict.fromkeys([*detail, *post]))
    kwargs = {**CHEAP_KWARGS, **(interp_kwargs or {})}
    with torch.no_grad():
        logits = net(x)
    top2 = logits.topk(2, dim=1).indices
    pred, second = top2[:, 0], top2[:, 1]
    y = pred if y is None else y
    size = tuple(x.shape[-2:])
    probs = logits.softmax(1).amax(1)
    margin = 1 - logits.double().softmax(1).amax(1)          # 1 - y_c, resolved in float64
    unsure = margin >= 1e-3
    report = {"k": shifted.presoftmax_k, "position": list(shifted.presoftmax_position), "last_pool": net.last_pool,
              "shift_dtype": str(getattr(shifted, "presoftmax_dtype", None) or "model"),
              "target_layer": net.target_layer, "n_images": int(x.shape[0]), "image_size": list(size),
              "saturated_float32": int((probs == 1).sum()), "unsure_images": int(unsure.sum()),
              "one_minus_max_prob": [float(f"{v:.3g}") for v in margin.tolist()],
              "outputs": compare_outputs(net, shifted, x), "ce_gradient": compare_ce_grads(net, shifted, x, y),
              "interpreters": {}}
    if float64_post:
        net64 = copy.deepcopy(net).double()
        shifted64 = presoftmax_shift(net64, shifted.presoftmax_k, shifted.presoftmax_position)
    regions = {}
    for layer in (net.target_layer, None):
        region = feeding_cells(net, layer, size, shifted.presoftmax_position)
        regions[layer] = region
        report[f"feeding_cells_{'input' if layer is None else 'target_layer'}"] = {
            "shape": list(region.shape), "cells": int(region.sum()), "area_share": float(region.float().mean())}
    with torch.no_grad(), capture_inputs(net, [net.target_layer]) as store:
        net(x)
    channel_sum = store[net.target_layer].sum(1)
    figures = {}
    for name in names:
        kw = kwargs.get(name, {})
        start = time.perf_counter()
        full = name in detail
        classes = [pred, second] if full else [pred]
        pre0 = _maps(name, net, x, classes, "logit", kw)
        pre1 = _maps(name, shifted, x, classes, "logit", kw)
        post0 = _maps(name, net, x, [pred], "prob", kw)[0]
        post1 = _maps(name, shifted, x, [pred], "prob", kw)[0]
        region = regions[net.target_layer] if pre0[0].shape[-2:] == regions[net.target_layer].shape else \
            regions[None] if pre0[0].shape[-2:] == regions[None].shape else None
        entry = {
            "post_softmax_spearman": summary(spearman(post0, post1), 0.99),
            "post_softmax_max_abs_dev": float((post0 - post1).abs().max()),
            "post_softmax_spearman_where_1-y_c>=1e-3": summary(spearman(post0[unsure], post1[unsure]), 0.99),
            "post_softmax_spearman_per_image": [round(float(v), 4) for v in spearman(post0, post1)],
            "pre_softmax_spearman_original_vs_manipulated": summary(spearman(pre0[0], pre1[0])),
            "map_shape": list(pre0[0].shape[-2:]),
        }
        if float64_post:
            p0 = _maps(name, net64, x.double(), [pred], "prob", kw)[0]
            p1 = _maps(name, shifted64, x.double(), [pred], "prob", kw)[0]
            entry["post_softmax_spearman_float64"] = summary(spearman(p0, p1), 0.99)
            entry["post_softmax_spearman_float64_per_image"] = [round(float(v), 4) for v in spearman(p0, p1)]
            entry["post_softmax_max_abs_dev_float64"] = float((p0 - p1).abs().max())
        if region is not None:
            for tag, h in (("original", pre0[0]), ("manipulated", pre1[0])):
                entry[f"corner_mass_{tag}"] = summary(mass_share(h, region), corner_threshold)
            entry["corner_region_area_share"] = float(region.float().mean())
        if full:
            entry["class_independence_spearman"] = {"original": summary(spearman(pre0[0], pre0[1]), 0.95),
                                                    "manipulated": summary(spearman(pre1[0], pre1[1]), 0.95)}
            entry["post_softmax_class_spearman"] = {
                "original": summary(spearman(post0, _maps(name, net, x, [second], "prob", kw)[0]), 0.95)}
            if pre0[0].shape[-2:] == channel_sum.shape[-2:]:
                entry["channel_sum_spearman"] = {"original": summary(spearman(pre0[0], channel_sum), 0.95),
                                                 "manipulated": summary(spearman(pre1[0], channel_sum), 0.95)}
            if keep_maps:
                figures[name] = {"original pre-softmax": pre0[0][:keep_maps], "manipulated pre-softmax":
                                 pre1[0][:keep_maps], "original post-softmax": post0[:keep_maps],
                                 "manipulated post-softmax": post1[:keep_maps]}
        entry["seconds"] = time.perf_counter() - start
        report["interpreters"][name] = entry
    if pool_input_gradcam and "gradcam" in detail:
        report["interpreters"][f"gradcam@{net.last_pool}"] = _pool_input_gradcam(net, shifted, x, pred, second,
                                                                                  corner_threshold)
    if keep_maps:
        report["_figures"] = figures
        report["_classes"] = pred[:keep_maps].tolist()
    return report


def _pool_input_gradcam(net: nn.Module, shifted: nn.Module, x: torch.Tensor, pred: torch.Tensor,
                        second: torch.Tensor, corner_threshold: float) -> dict:
    """Grad-CAM at the input A of the last pooling layer: d t / d A^k is the pooling routing, the same for every
    channel (max-pool: one winner per window; average pool: 1/window), so each channel weight gets the same
    shift and the map tends to the channel-sum of A."""
    layer = net.last_pool
    with torch.no_grad(), capture_inputs(net, [layer]) as store:
        net(x)
    channel_sum = store[layer].sum(1)
    maps = {}
    for tag, model in (("original", net), ("manipulated", shifted)):
        maps[tag] = _maps("gradcam", model, x, [pred, second], "logit", {"layer": layer})
    region = feeding_cells(net, layer, tuple(x.shape[-2:]), shifted.presoftmax_position)
    return {"layer": layer, "map_shape": list(channel_sum.shape[-2:]),
            "class_independence_spearman": {t: summary(spearman(m[0], m[1]), 0.95) for t, m in maps.items()},
            "channel_sum_spearman": {t: summary(spearman(m[0], channel_sum), 0.95) for t, m in maps.items()},
            "corner_mass": {t: summary(mass_share(m[0], region), corner_threshold) for t, m in maps.items()},
            "corner_region_area_share": float(region.float().mean())}


# -- the job ----------------------------------------------------------------------------------------------

def _settings(cfg: DictConfig) -> dict:
    lc = OmegaConf.to_container(cfg.get("lerma") or {}, resolve=True)
    s = {"k": 10.0, "position": [0, 0], "weights": "original", "split": "val", "images": 64, "figure_images": 6,
         "interpreters": list(DETAIL_DEFAULT), "post_interpreters": None, "interp_kwargs": {},
         "corner_threshold": 0.9, "float64_post": True, "shift_dtype": "float64", **lc}
    if s["shift_dtype"] not in SHIFT_DTYPES:
        raise ValueError(f"lerma.shift_dtype={s['shift_dtype']!r}; allowed: {', '.join(SHIFT_DTYPES)}")
    if s["weights"] not in WEIGHTS:
        raise ValueError(f"lerma.weights={s['weights']!r}; allowed: {', '.join(WEIGHTS)}")
    for key in ("images", "figure_images"):
        if isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < (1 if key == "images" else 0):
            raise ValueError(f"lerma.{key}={s[key]!r}; allowed: an integer >= {1 if key == 'images' else 0}")
    known = interpreters.names()
    for name in [*s["interpreters"], *(s["post_interpreters"] or [])]:
        if name not in known:
            raise ValueError(f"unknown interpreter {name!r} in lerma; allowed: {', '.join(known)}")
    return s


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """The job: build and check, get the model, manipulate it, measure, write report.json and the figures."""
    from interpfool.experiment.distributed import eval_device
    from interpfool.experiment.build import checked_build
    from interpfool.experiment.original import obtain_original

    L.seed_everything(cfg.seed, workers=True, verbose=False)   # before the build: it draws the initial weights
    built = checked_build(cfg)
    try:
        s = _settings(cfg)
        data = built.data.dataset(s["split"])
        count = min(s["images"], len(data))
        items = [data[i] for i in range(count)]
        x = torch.stack([it[0] for it in items])
        y = torch.as_tensor([int(it[1]) for it in items])
        probe = presoftmax_shift(built.net, s["k"], s["position"], dtype=SHIFT_DTYPES[s["shift_dtype"]])
        was_training = built.net.training
        built.net.eval()
        with torch.no_grad():
            probe(x[:1])               # the position must lie inside the pooling output at this image size
        built.net.train(was_training)
    except ValueError as err:
        raise BadInput(" ".join(str(err).split())) from None
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if s["weights"] == "random":
        net, info = built.net, {"status": "random", "seed": cfg.seed}
    else:
        net, info = obtain_original(cfg, built, cfg.trainer.get("accelerator", "cpu"))
    device = eval_device(cfg)              # trainer.accelerator: the maps are computed where training would run
    net.eval().to(device)
    x_host, x, y = x, x.to(device), y.to(device)
    shifted = presoftmax_shift(net, probe.presoftmax_k, probe.presoftmax_position, dtype=probe.presoftmax_dtype)
    with torch.no_grad():
        accuracy = float((net(x).argmax(1) == y).float().mean())
    start = time.time()
    report = measure(net, shifted, x, y, detail=s["interpreters"], post=s["post_interpreters"],
                     interp_kwargs=s["interp_kwargs"], corner_threshold=s["corner_threshold"],
                     float64_post=bool(s["float64_post"]),
                     keep_maps=s["figure_images"])
    report["device"] = str(device)
    figures = apply_to_collection(report.pop("_figures", {}), torch.Tensor, lambda t: t.detach().cpu())
    classes, x = report.pop("_classes", []), x_host
    paths = {}
    images = built.data.denormalize(x[:s["figure_images"]])
    for name, columns in figures.items():
        paths[name] = str(save_heatmap_grid(images, columns, run_dir / f"figure3_{name}.png",
                                            row_titles=[f"class {c}" for c in classes]))
    report.update({"model": cfg.model.name, "weights": info, "split": s["split"], "seconds": time.time() - start,
                   "figures": paths, "accuracy_on_these_images": accuracy if s["weights"] == "original" else None})
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    print(f"report:  {run_dir / 'report.json'}")
    for path in paths.values():
        print(f"figure:  {path}")
    return report
