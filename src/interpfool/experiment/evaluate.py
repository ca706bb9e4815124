"""Evaluation of theta0 against theta* (used at the end of train.py and by eval.py).

* ``evaluate_pair``: for every requested interpreter, FSR of theta* (and of theta0, the base rate)
  under the fooling's test loss and interval, localisation (positive mass inside the object mask,
  pointing game), the share of all-zero maps, per-image test losses; top-1 / top-5 accuracy of both
  models on the same images; the similarity of theta*'s maps to theta0's (SSIM, Pearson, Spearman,
  Kendall, MSE, top-k intersection, centre-of-mass shift in pixels; ``metrics.similarity``, which says
  at which resolution they are compared) and the output fidelity of theta* to theta0 (top-1 agreement,
  mean KL(p0 || p*)). Swap foolings (active) measure accuracy on the images and the FSR per
  class (c1, c2) on held-out collages.
* ``transfer_matrix``: FSR of every interpreter on models fooled through different interpreters.
* ``evaluate_aopc``: AOPC curves (MoRF / LeRF / random orders from theta0's and theta*'s maps).
* ``noise_robustness``: accuracy and FSR against Gaussian noise on the parameters (Heo Sec. 5).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from interpfool.fooling.module import fooling_maps
from interpfool.fooling.penalties.base import Fooling
from interpfool.experiment.original_maps import OriginalMaps, fingerprint
from interpfool.interpreters.base import Interpreter, resolve_target
from interpfool.metrics import AOPC, FoolingSuccessRate, Localisation, MapSimilarity, OutputFidelity, PointingGame
from interpfool.metrics.aopc import cell_grid, cell_relevance, perturbation_order, perturbation_scores, seeded_noise
from interpfool.metrics.robustness import perturb_parameters

MODELS = ("theta0", "theta_star")
# Evaluation runs on one process (global rank 0 under DDP, while the others are done): metrics must not
# all-gather over the training's process group, which the other ranks no longer serve.
LOCAL = {"sync_on_compute": False}
CSV_COLUMNS = ["image", "interpreter", "model", "class", "test_loss", "success"]


def _num_classes(net: nn.Module) -> int:
    return [m for m in net.modules() if isinstance(m, nn.Linear)][-1].out_features


def class_tags(fooling: Fooling) -> list[str]:
    """Column names of the test losses: ``[""]`` for one map per image, ``["c1", "c2"]`` for a swap."""
    return [f"c{k + 1}" for k in range(len(fooling.classes))] or [""]


def evaluate_pair(net0: nn.Module, net: nn.Module, batches: Iterable, interpreters: dict[str, Callable[..., Interpreter]],
                  fooling: Fooling, target: str = "label", device: torch.device | str = "cpu",
                  keep_maps: int = 0, collage_batches: Iterable | None = None, similarity: bool = True,
                  original_maps: OriginalMaps | None = None, interp_keys: dict[str, str] | None = None) -> dict:
    """Metrics of theta0 and theta* over ``batches`` of (x, y[, mask]); ``interpreters``: name -> factory(net=...).

    Swap foolings need ``collage_batches`` of (x, masks [B, n_classes, S, S]): maps, FSR and
    localisation come from them, accuracy from ``batches``. Returns a JSON-ready dict with
    ``per_image_test_loss`` rows (``CSV_COLUMNS``); with ``keep_maps`` > 0 also ``"figure"``.
    ``similarity=False`` leaves out the map similarity (Kendall's tau is the costly part) and the fidelity.
    ``original_maps``: a store of theta0's maps and logits (``experiment.original_maps``) that serves the
    interpreters named in ``interp_keys`` (name -> a string of the interpreter's settings) when deterministic.
    """
    swap = bool(fooling.classes)
    if swap and collage_batches is None:
        raise ValueError(f"{fooling.name} fooling is evaluated on collages: pass collage_batches")
    net0, net = net0.to(device).eval(), net.to(device).eval()
    classes = _num_classes(net)
    acc = {m: {k: MulticlassAccuracy(classes, top_k=min(k, classes), average="micro", **LOCAL).to(device) for k in (1, 5)}
           for m in MODELS}
    built = {name: {"theta0": make(net=net0), "theta_star": make(net=net)} for name, make in interpreters.items()}
    keys = {n: k for n, k in (interp_keys or {}).items() if n in built and built[n]["theta0"].deterministic}
    if original_maps is not None and keys:
        original_maps.bind(net0)
    tags = class_tags(fooling)
    fsr = {n: {m: [FoolingSuccessRate(**LOCAL).to(device) for _ in tags] for m in MODELS} for n in built}
    loc = {n: {m: Localisation(**LOCAL).to(device) for m in MODELS} for n in built}
    point = {n: {m: PointingGame(**LOCAL).to(device) for m in MODELS} for n in built}
    sim = {n: MapSimilarity(**LOCAL).to(device) for n in built} if similarity else {}
    fidelity = OutputFidelity(**LOCAL).to(device)
    losses, test_sum = [], {n: {m: [0.0, 0, 0] for m in MODELS} for n in built}
    zero = {n: {m: [0, 0] for m in MODELS} for n in built}
    figure: dict = {"images": [], "labels": [], "maps": {}}
    first = next(iter(built))

    n_images = 0

    def update_accuracy(model: str, logits: torch.Tensor, y: torch.Tensor) -> None:
        nonlocal n_images
        acc[model][1].update(logits.detach(), y)
        acc[model][5].update(logits.detach(), y)
        n_images += y.shape[0] if model == "theta0" else 0

    if swap:
        with torch.no_grad():
            for batch in batches:
                x, y = batch[0].to(device), batch[1].to(device)
                logits0, logits = net0(x), net(x)
                update_accuracy("theta0", logits0, y)
                update_accuracy("theta_star", logits, y)
                fidelity.update(logits0, logits)
    seen = 0
    for batch in (collage_batches if swap else batches):
        x = batch[0].to(device)
        y = None if swap else batch[1].to(device)
        mask = batch[2].to(device) if (not swap and len(batch) > 2) else (batch[1].to(device) if swap else None)
        outputs = {}
        batch_key = fingerprint(x, *batch[1:]) if original_maps is not None and keys else None
        for n, pair in built.items():
            maps = {}
            for m, interp in pair.items():
                key = None
                if m == "theta0" and original_maps is not None and n in keys:
                    key = (keys[n], target, tuple(fooling.classes), str(x.device), batch_key)
                found = original_maps.get(key) if key is not None else None
                if found is None:
                    with torch.enable_grad():
                        fwd = interp.forward(x)
                        maps[m] = fooling_maps(interp, fwd, fooling, target, y)
                    logits = fwd.logits.detach()
                    if key is not None:
                        original_maps.put(key, maps[m], logits)
                else:
                    maps[m], logits = found
                if not swap and n == first:
                    update_accuracy(m, logits, y)
                    outputs[m] = logits
                flat = maps[m].flatten(0, -3)                 # one [H, W] map per image (and class)
                if mask is not None:
                    loc[n][m].update(flat, mask.flatten(0, -3))
                    point[n][m].update(flat, mask.flatten(0, -3))
                zero[n][m][0] += int((flat.flatten(1).abs().amax(1) == 0).sum())
                zero[n][m][1] += flat.shape[0]
            if similarity:       # theta*'s map of each image (and class) against theta0's
                sim[n].update(maps["theta_star"].flatten(0, -3), maps["theta0"].flatten(0, -3), tuple(x.shape[-2:]))
            h0 = maps["theta0"] if fooling.needs_original else None
            for m in MODELS:
                t = fooling.test_loss(maps[m], h0).reshape(x.shape[0], len(tags))
                ok = fooling.success(t)
                t_rows, ok_rows = t.tolist(), ok.tolist()      # one host copy per batch, not one per image
                for k, tag in enumerate(tags):
                    fsr[n][m][k].update(ok[:, k])
                    losses.extend([seen + i, n, m, tag, t_rows[i][k], ok_rows[i][k]] for i in range(x.shape[0]))
                defined = ~t.isnan()                          # top-k: NaN where theta0's map has no top cells
                test_sum[n][m][0] += float(t.nansum())
                test_sum[n][m][1] += int(defined.sum())
                test_sum[n][m][2] += t.numel() - int(defined.sum())
            taken = len(figure["images"])
            if keep_maps and taken < keep_maps:
                take = min(keep_maps - taken, x.shape[0])
                for m in MODELS:
                    for k, tag in enumerate(tags):
                        h = maps[m][:take, k] if swap else maps[m][:take]
                        figure["maps"].setdefault(" ".join(filter(None, (n, m, tag))), []).append(h.cpu())
        if keep_maps and len(figure["images"]) < keep_maps:
            take = min(keep_maps - len(figure["images"]), x.shape[0])
            figure["images"].extend(x[:take].cpu())
            figure["labels"].extend((y[:take].cpu().tolist() if y is not None else [None] * take))
        if outputs:
            fidelity.update(outputs["theta0"], outputs["theta_star"])
        seen += x.shape[0]
    top1 = {m: float(acc[m][1].compute()) for m in MODELS}
    rates = {n: {m: [float(r.compute()) for r in fsr[n][m]] for m in MODELS} for n in built}
    report = {
        "n_images": n_images,               # images of the accuracy
        "n_fsr_images": seen,               # images of the maps (collages for a swap fooling)
        "accuracy": {m: {"top1": top1[m], "top5": float(acc[m][5].compute())} for m in MODELS},
        "top1_drop_points": 100 * (top1["theta0"] - top1["theta_star"]),
        # FSR per interpreter and model; for a swap fooling the mean of FSR(c1) and FSR(c2)
        "fsr": {n: {m: sum(r) / len(r) for m, r in d.items()} for n, d in rates.items()},
        "test_loss_mean": {n: {m: s / max(1, c) for m, (s, c, _) in d.items()} for n, d in test_sum.items()},
        # share of (image, class) tests whose test loss is undefined (NaN, counted as no success)
        "undefined_test_share": {n: {m: u / max(1, c + u) for m, (_, c, u) in d.items()} for n, d in test_sum.items()},
        "zero_map_share": {n: {m: z[0] / max(1, z[1]) for m, z in zero[n].items()} for n in built},
        "fooling": {"name": fooling.name, "interval": list(fooling.interval)},
        **(similarity_report(sim, fidelity) if similarity else {}),
        "target": target,
    }
    if swap:
        report["fsr_per_class"] = {n: {m: dict(zip(tags, r)) for m, r in d.items()} for n, d in rates.items()}
        report["classes"] = dict(zip(tags, fooling.classes))
    if any(loc[n]["theta0"].total > 0 for n in built):
        report["localisation"] = {n: {m: {"mass_inside": float(loc[n][m].compute()),
                                          "pointing_game": float(point[n][m].compute())} for m in MODELS}
                                  for n in built}
    report["per_image_test_loss"] = losses
    if keep_maps:
        report["figure"] = {"images": torch.stack(figure["images"]), "labels": figure["labels"],
                            "maps": {k: torch.cat(v) for k, v in figure["maps"].items()}}
    return report


def _finite(value: float) -> float | None:
    """JSON has no NaN: a mean over no defined image (e.g. no map with positive mass) becomes null."""
    return value if math.isfinite(value) else None


def similarity_report(sim: dict[str, MapSimilarity], fidelity: OutputFidelity) -> dict:
    """The ``similarity`` (per interpreter, theta* against theta0) and ``fidelity`` entries of a report."""
    return {"similarity": {n: {k: _finite(v) for k, v in s.compute().items()} for n, s in sim.items()},
            # share of maps left out of com_shift_px: one of the two maps had no positive mass
            "similarity_undefined_share": {n: s.undefined_share()["com_shift_px"] for n, s in sim.items()},
            "fidelity": {k: float(v) for k, v in fidelity.compute().items()}}


def transfer_matrix(pairs: dict[str, tuple[nn.Module, nn.Module]], interpreters: dict[str, Callable[..., Interpreter]],
                    fooling: Fooling, batches: Iterable, target: str = "label", device: torch.device | str = "cpu",
                    collage_batches: Iterable | None = None) -> dict[str, dict[str, float]]:
    """Rows: the interpreter each model was fooled through (``pairs``: row -> (theta0, theta*));
    columns: FSR of theta* under every interpreter of ``interpreters`` (Heo Table 1 layout)."""
    return {row: fsr_row(evaluate_pair(net0, net, batches, interpreters, fooling, target, device,
                                       collage_batches=collage_batches, similarity=False))
            for row, (net0, net) in pairs.items()}


def fsr_row(result: dict) -> dict[str, float]:
    """One row of the transfer matrix from an ``evaluate_pair`` result: FSR of theta* per interpreter."""
    return {n: v["theta_star"] for n, v in result["fsr"].items()}


def matrix_markdown(matrix: dict[str, dict[str, float]], corner: str = "fooled through") -> str:
    """A transfer matrix as a Markdown table of percentages."""
    columns = list(dict.fromkeys(c for row in matrix.values() for c in row))
    lines = [f"| {corner} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row, values in matrix.items():
        lines.append(f"| {row} | " + " | ".join(f"{100 * values[c]:.1f}" if c in values else "" for c in columns) + " |")
    return "\n".join(lines)


AOPC_ORDERS = ("morf_h0", "lerf_h0", "morf_hstar", "lerf_hstar", "random")


def evaluate_aopc(net0: nn.Module, net: nn.Module, batches: Iterable, interp: Callable[..., Interpreter],
                  target: str = "label", device: torch.device | str = "cpu", cell: int = 4, steps: int = 100,
                  noise_std: float = 0.3, seed: int = 0, images: int = 200, chunk: int = 1024) -> dict:
    """AOPC curves (``metrics.aopc``) of theta0 and theta* for the orders given by theta0's map (h0),
    theta*'s map (hstar) — MoRF and LeRF — and a random order, on the first ``images`` images.

    Maps come from ``interp`` for ``target`` on each model; the perturbed score is the logit of the
    class the maps explain (the label, or for ``target="pred"`` the perturbed model's prediction on x^(0)).
    """
    models = {"theta0": net0.to(device).eval(), "theta_star": net.to(device).eval()}
    explainers = {m: interp(net=model) for m, model in models.items()}
    curves = {m: {o: AOPC(steps, **LOCAL).to(device) for o in AOPC_ORDERS} for m in models}
    seen = 0
    for batch in batches:
        if seen >= images:
            break
        x, y = batch[0][:images - seen].to(device), batch[1][:images - seen].to(device)
        index = torch.arange(seen, seen + x.shape[0])
        size = tuple(x.shape[-2:])
        rows, cols = cell_grid(size, cell)
        h = {m: e(x, target, labels=y) for m, e in explainers.items()}
        orders = {"random": perturbation_order(None, "random", index, seed, rows * cols)}
        for tag, m in (("h0", "theta0"), ("hstar", "theta_star")):
            relevance = cell_relevance(h[m], size, cell)
            for kind in ("morf", "lerf"):
                orders[f"{kind}_{tag}"] = perturbation_order(relevance, kind, index, seed)
        noise = seeded_noise(tuple(x.shape[1:]), index, seed, noise_std)
        for m, model in models.items():
            with torch.no_grad():
                cls = resolve_target(target, model(x), y)
            for name, order in orders.items():
                curves[m][name].update(perturbation_scores(model, x, cls, order, noise, cell, steps, chunk))
        seen += x.shape[0]
    computed = {m: {o: metric.compute().tolist() for o, metric in d.items()} for m, d in curves.items()}
    return {"cell": cell, "steps": steps, "noise_std": noise_std, "seed": seed, "images": seen, "target": target,
            "aopc": {m: {o: c[-1] for o, c in d.items()} for m, d in computed.items()}, "curves": computed}


def noise_robustness(net0: nn.Module, net: nn.Module, batches: Iterable,
                     interpreters: dict[str, Callable[..., Interpreter]], fooling: Fooling, sigmas: Iterable[float],
                     trials: int = 1, seed: int = 0, scale: str = "relative", target: str = "label",
                     device: torch.device | str = "cpu", collage_batches: Iterable | None = None) -> dict:
    """Top-1 accuracy and FSR of theta0 + noise and theta* + noise against sigma (Heo Fig. 4b), the
    mean over ``trials`` seeded draws (``metrics.robustness.perturb_parameters``). FSR is always taken
    against the maps of the clean theta0. theta0 and theta* get the same draws (paired)."""
    models = {"theta0": net0, "theta_star": net}
    out: dict = {"sigmas": [float(s) for s in sigmas], "scale": scale, "trials": trials, "seed": seed}
    for m in models:
        out[m] = {"top1": [], "fsr": {n: [] for n in interpreters}}
    for sigma in out["sigmas"]:
        for m, model in models.items():
            top1, fsr = [], {n: [] for n in interpreters}
            for trial in range(trials):
                noisy = perturb_parameters(model, sigma, torch.Generator().manual_seed(seed * 10_007 + trial), scale)
                r = evaluate_pair(net0, noisy, batches, interpreters, fooling, target, device,
                                  collage_batches=collage_batches, similarity=False)
                top1.append(r["accuracy"]["theta_star"]["top1"])
                for n in interpreters:
                    fsr[n].append(r["fsr"][n]["theta_star"])
            out[m]["top1"].append(sum(top1) / trials)
            for n in interpreters:
                out[m]["fsr"][n].append(sum(fsr[n]) / trials)
    return out


def evaluate_defenses(net0: nn.Module, net: nn.Module, batches: Iterable, interp: Callable[..., Interpreter],
                      fooling: Fooling, specs: Iterable[str], target: str = "label", device: torch.device | str = "cpu",
                      collage_batches: Iterable | None = None, aopc: dict | None = None,
                      integration_budget: int | None = None) -> dict:
    """How much of the fooling each explanation-time defense undoes (``interpfool.defenses``), on the
    checkpoints as they are: FSR of theta* (and theta0's base rate) under the undefended and the defended
    map, and with ``aopc`` (``evaluate_aopc``'s keyword arguments) the faithfulness cost: AOPC of theta0's
    MoRF order from the defended map on theta0, next to the undefended map's and the random order's.
    A defense that undoes the fooling by drawing unfaithful maps shows as an AOPC near the random order's.
    ``integration_budget``: ``noise`` / ``path`` without a value average budget // s maps of a method that draws
    s samples itself (``defenses.within_budget``); the row's ``spec`` says the count used."""
    from interpfool.defenses import check_budget, defend, within_budget
    makers = {"none": interp}
    used = {"none": "none"}
    check_budget(integration_budget)   # a bad budget is an error, not "not applicable"
    first = interp(net=net0)
    out: dict = {"interpreter": first.name, "defenses": {}, "not_applicable": {}}
    for spec in specs:
        try:
            used[spec] = within_budget(spec, first.samples, integration_budget)
            defend(interp, used[spec])(net=net0)        # e.g. ``layer`` on an input-level method
        except ValueError as err:
            out["not_applicable"][spec] = str(err)
            print(f"defense {spec} not applicable to {out['interpreter']}: {err}")
            continue
        makers[spec] = defend(interp, used[spec])
    specs = [s for s in makers if s != "none"]
    for spec, make in makers.items():
        r = evaluate_pair(net0, net, batches, {spec: make}, fooling, target, device, collage_batches=collage_batches,
                          similarity=False)
        row = {"fsr_theta_star": r["fsr"][spec]["theta_star"], "fsr_theta0": r["fsr"][spec]["theta0"],
               "zero_map_share_theta_star": r["zero_map_share"][spec]["theta_star"]}
        if used[spec] != spec:
            row["spec"] = used[spec]
        if aopc is not None and not fooling.classes:
            a = evaluate_aopc(net0, net, batches, make, target, device=device, **aopc)["aopc"]["theta0"]
            row.update({"aopc_theta0_morf": a["morf_h0"], "aopc_theta0_random": a["random"]})
        out["defenses"][spec] = row
    before = out["defenses"]["none"]["fsr_theta_star"]
    for spec in specs:
        out["defenses"][spec]["fsr_undone"] = before - out["defenses"][spec]["fsr_theta_star"]
    return out
