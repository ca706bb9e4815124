"""End-of-run evaluation of theta0 against theta* (reused by eval.py).

For every requested interpreter: FSR of theta* (and of theta0, as the base rate) under the
fooling's test loss and interval, localisation (positive mass inside the object mask, pointing
game) and the share of all-zero maps; top-1 / top-5 accuracy of both models on the same images.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from interpfool.fooling.penalties.base import Fooling
from interpfool.interpreters.base import Interpreter
from interpfool.metrics import FoolingSuccessRate, Localisation, PointingGame

MODELS = ("theta0", "theta_star")


def _num_classes(net: nn.Module) -> int:
    return [m for m in net.modules() if isinstance(m, nn.Linear)][-1].out_features


def evaluate_pair(net0: nn.Module, net: nn.Module, batches: Iterable, interpreters: dict[str, Callable[..., Interpreter]],
                  fooling: Fooling, target: str = "label", device: torch.device | str = "cpu",
                  keep_maps: int = 0) -> dict:
    """Metrics of theta0 and theta* over ``batches`` of (x, y[, mask]); ``interpreters``: name -> factory(net=...).

    Returns a JSON-ready dict; with ``keep_maps`` > 0 also ``"figure"``: the first images and maps.
    """
    net0, net = net0.to(device).eval(), net.to(device).eval()
    classes = _num_classes(net)
    acc = {m: {k: MulticlassAccuracy(classes, top_k=min(k, classes), average="micro").to(device) for k in (1, 5)}
           for m in MODELS}
    built = {name: {"theta0": make(net=net0), "theta_star": make(net=net)} for name, make in interpreters.items()}
    fsr = {n: {m: FoolingSuccessRate().to(device) for m in MODELS} for n in built}
    loc = {n: {m: Localisation().to(device) for m in MODELS} for n in built}
    point = {n: {m: PointingGame().to(device) for m in MODELS} for n in built}
    losses = {n: {m: [] for m in MODELS} for n in built}
    zero = {n: {m: [0, 0] for m in MODELS} for n in built}
    figure: dict = {"images": [], "labels": [], "maps": {}}
    for batch in batches:
        x, y = batch[0].to(device), batch[1].to(device)
        mask = batch[2].to(device) if len(batch) > 2 else None
        for n, pair in built.items():
            maps = {}
            for m, interp in pair.items():
                with torch.enable_grad():
                    fwd = interp.forward(x)
                    maps[m] = interp.explain(fwd, target, labels=y)
                if n == next(iter(built)):
                    acc[m][1].update(fwd.logits.detach(), y)
                    acc[m][5].update(fwd.logits.detach(), y)
                if mask is not None:
                    loc[n][m].update(maps[m], mask)
                    point[n][m].update(maps[m], mask)
                zero[n][m][0] += int((maps[m].flatten(1).abs().amax(1) == 0).sum())
                zero[n][m][1] += maps[m].shape[0]
            h0 = maps["theta0"] if fooling.needs_original else None
            for m in MODELS:
                t = fooling.test_loss(maps[m], h0)
                fsr[n][m].update(fooling.success(t))
                losses[n][m].extend(t.cpu().tolist())
            taken = len(figure["images"])
            if keep_maps and taken < keep_maps:
                take = min(keep_maps - taken, x.shape[0])
                for m in MODELS:
                    figure["maps"].setdefault(f"{n} {m}", []).append(maps[m][:take].cpu())
        if keep_maps and len(figure["images"]) < keep_maps:
            take = min(keep_maps - len(figure["images"]), x.shape[0])
            figure["images"].extend(x[:take].cpu())
            figure["labels"].extend(y[:take].cpu().tolist())
    top1 = {m: float(acc[m][1].compute()) for m in MODELS}
    report = {
        "n_images": zero[next(iter(built))]["theta0"][1],
        "accuracy": {m: {"top1": top1[m], "top5": float(acc[m][5].compute())} for m in MODELS},
        "top1_drop_points": 100 * (top1["theta0"] - top1["theta_star"]),
        "fsr": {n: {m: float(fsr[n][m].compute()) for m in MODELS} for n in built},
        "test_loss_mean": {n: {m: sum(v) / max(1, len(v)) for m, v in losses[n].items()} for n in built},
        "zero_map_share": {n: {m: z[0] / max(1, z[1]) for m, z in zero[n].items()} for n in built},
        "fooling": {"name": fooling.name, "interval": list(fooling.interval)},
        "target": target,
    }
    if any(loc[n]["theta0"].total > 0 for n in built):
        report["localisation"] = {n: {m: {"mass_inside": float(loc[n][m].compute()),
                                          "pointing_game": float(point[n][m].compute())} for m in MODELS}
                                  for n in built}
    report["per_image_test_loss"] = losses
    if keep_maps:
        report["figure"] = {"images": torch.stack(figure["images"]), "labels": figure["labels"],
                            "maps": {k: torch.cat(v) for k, v in figure["maps"].items()}}
    return report
