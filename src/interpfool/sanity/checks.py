"""The model-parameter randomisation test (Adebayo et al. 2018, Sec. 3.1): for each step of a cascading or
independent randomisation (``sanity.randomize``), the maps of every interpreter on the randomised model, compared
with that interpreter's maps on the unrandomised model (``sanity.similarity``), image by image.

An explainer that depends on the model's parameters gives maps that decorrelate as layers are randomised (it
*passes*); one whose maps stay the same (similarity ~1 whatever is randomised, e.g. an edge detector of the input)
*fails*. The target class is fixed across steps (``target="label"``: the true class; ``"pred"``: the unrandomised
model's prediction), so only the parameters change between steps. Stochastic interpreters (SmoothGrad with a null
seed) draw the same noise at every step (the global RNG is forked and reseeded with ``seed`` for each call), so the
unrandomised model's similarity to itself is exactly 1.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from interpfool.interpreters.base import zero_map_share
from interpfool.sanity.randomize import MODES, parameter_layers
from interpfool.sanity.similarity import METRICS, map_similarity


def _maps(make: Callable, net: nn.Module, x: torch.Tensor, target, batch_size: int, seed: int) -> torch.Tensor:
    """[N, H, W] maps of ``x`` on ``net`` (eval mode, no graph), in batches, the global RNG forked and seeded."""
    interp = make(net=net)
    device = next(net.parameters()).device
    out = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(device)
            tb = target[i:i + batch_size].to(device) if isinstance(target, torch.Tensor) else target
            out.append(interp(xb, tb).detach().cpu())
    return torch.cat(out)


def randomisation_test(net: nn.Module, interps: dict[str, Callable], x: torch.Tensor, target: torch.Tensor | str,
                       mode: str = "cascading", seed: int = 0, batch_size: int = 64,
                       size: tuple[int, int] | None = None, keep_maps: int = 0) -> dict:
    """Similarity of each interpreter's maps at every randomisation step of ``mode`` to its maps at step 0.

    net: the model (untouched: randomised copies only); interps: name -> factory(net=...); x: [N, C, H, W] images;
    target: [N] class indices (e.g. the labels; ``"pred"``: the unrandomised model's predictions, fixed for every
    step); size: the SSIM resolution (default: the input's). Returns ``{"mode", "steps": [labels], "layers":
    [[module names]] (input to output), "similarity": {interp: {metric: [S, N] float64}}, "zero_maps": {interp:
    [S]}, "maps": {interp: [S, keep_maps, H, W]}}``; step 0 is ``"original"``."""
    if mode not in MODES:
        raise ValueError(f"sanity mode={mode!r}; allowed: {', '.join(MODES)}")
    size = tuple(x.shape[-2:]) if size is None else size
    if isinstance(target, str) and target != "pred":
        raise ValueError(f"target={target!r}; allowed: a [N] tensor of classes or 'pred'")
    layers = parameter_layers(net)
    steps, reference = [], {}
    sims = {n: {m: [] for m in METRICS} for n in interps}
    zeros = {n: [] for n in interps}
    kept = {n: [] for n in interps}
    for label, model in MODES[mode](net, seed=seed, layers=layers):
        model.eval()
        steps.append(label)
        if isinstance(target, str):         # "pred": the unrandomised copy's predictions, fixed for every step
            device = next(model.parameters()).device
            with torch.no_grad():
                target = torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu()
                                    for i in range(0, x.shape[0], batch_size)])
        for name, make in interps.items():
            h = _maps(make, model, x, target, batch_size, seed)
            if label == "original":
                reference[name] = h
            for metric, values in map_similarity(reference[name], h, size).items():
                sims[name][metric].append(values)
            zeros[name].append(float(zero_map_share(h)))
            if keep_maps:
                kept[name].append(h[:keep_maps])
    return {"mode": mode, "steps": steps, "layers": layers,
            "similarity": {n: {m: torch.stack(v) for m, v in d.items()} for n, d in sims.items()},
            "zero_maps": zeros, "maps": {n: torch.stack(v) for n, v in kept.items() if v}}
