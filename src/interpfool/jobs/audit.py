"""``python eval.py audit ckpt=... [audit.reference=original|path]``: inspect a model, without its training
history, for evidence that its explanations were manipulated (Heo et al. 2019; Lerma & Lucas 2023).

Evidence on the model alone (``metrics.manipulation``), on the first ``audit.images`` images of the
held-out split:
  * hidden logit shift: a class-uniform logit component the softmax cannot see (Lerma & Lucas, eq. 2);
  * pre- vs post-softmax maps that disagree (the same method on z_c and on y_c);
  * maps that no longer depend on the class (Grad-CAM of a Lerma-shifted model, DESIGN.md 2.4);
  * maps that AOPC (Samek et al. 2016) finds less faithful than a random order (a paired test per image; with a
    reference, also less faithful than the reference's maps relative to random).
With a reference model (``audit.reference``: ``original`` = the cached theta0 of the run's config, or a
state dict), also: the FSR test of every passive fooling (Heo Sec. 4.2) of the model's maps against the
reference's, their rank similarity, and outputs that agree (top-1 agreement, KL) while the maps do not.

Each piece of evidence is a number and a flag (thresholds in ``audit.thresholds``; docs/defenses_audit.md says how
they were set and what they gave); the verdict is "manipulated" when any flag is raised.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Callable, Iterable

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from interpfool.data.first_images import FirstImages
from interpfool.experiment.build import checked_build, eval_loaders, interp_factory
from interpfool.experiment.cli import BadInput
from interpfool.experiment.evaluate import evaluate_pair
from interpfool.experiment.original import seed_all
from interpfool.fooling.penalties import CenterMassFooling, LocationFooling, TopKFooling
from interpfool.metrics.aopc import (aopc_per_image, cell_grid, cell_relevance, perturbation_order, perturbation_scores,
                                     seeded_noise)
from interpfool.metrics.fidelity import output_fidelity
from interpfool.metrics.manipulation import class_agreement, pre_post_agreement, uniform_logit_share
from interpfool.metrics.spearman import spearman

PASSIVE_TESTS = {"location": LocationFooling, "topk": TopKFooling, "center_mass": CenterMassFooling}


def model_evidence(net: nn.Module, batches: list, make: Callable, aopc: dict | None, device="cpu") -> dict:
    """Evidence on ``net`` alone, for the interpreter ``make(net=..., score=...)``."""
    net = net.to(device).eval()
    logit_map, prob_map = make(net=net, score="logit"), make(net=net, score="prob")
    logits, pre_post, classes = [], [], []
    for batch in batches:
        x = batch[0].to(device)
        with torch.no_grad():
            z = net(x)
        logits.append(z.double().cpu())
        top2 = z.topk(2, 1).indices
        first = logit_map(x, top2[:, 0])                  # the top class's logit map, used by both comparisons
        pre_post.append(pre_post_agreement(first, prob_map(x, top2[:, 0])))
        classes.append(class_agreement(first, logit_map(x, top2[:, 1])))
    out = {"uniform_logit_share": uniform_logit_share(torch.cat(logits)),
           "pre_post_spearman": float(torch.cat(pre_post).mean()),
           "class_spearman": float(torch.cat(classes).mean())}
    if aopc is not None:
        per_image = aopc_per_image_orders(net, batches, make, device=device, **aopc)
        out.update({"aopc_morf": float(per_image["morf"].mean()), "aopc_random": float(per_image["random"].mean()),
                    "aopc_per_image": {k: v.tolist() for k, v in per_image.items()}})
    return out, torch.cat(logits)


def aopc_per_image_orders(net: nn.Module, batches: list, make: Callable, device="cpu", cell: int = 4, steps: int = 100,
                          noise_std: float = 0.3, seed: int = 0, images: int = 100, chunk: int = 1024
                          ) -> dict[str, torch.Tensor]:
    """Per-image AOPC (Samek et al. 2016, eq. 12) of the MoRF order of ``make``'s map of the predicted class, and of
    the seeded random order, on the first ``images`` images ([n] float64 each). Noise and random order are seeded by
    the image index (``metrics.aopc``), so the values are paired across orders and across models."""
    explain = make(net=net.to(device).eval())
    out: dict[str, list] = {"morf": [], "random": []}
    seen = 0
    for batch in batches:
        if seen >= images:
            break
        x = batch[0][:images - seen].to(device)
        index = torch.arange(seen, seen + x.shape[0])
        size = tuple(x.shape[-2:])
        rows, cols = cell_grid(size, cell)
        with torch.no_grad():
            cls = net(x).argmax(1)
        orders = {"morf": perturbation_order(cell_relevance(explain(x, cls), size, cell), "morf", index, seed),
                  "random": perturbation_order(None, "random", index, seed, rows * cols)}
        noise = seeded_noise(tuple(x.shape[1:]), index, seed, noise_std)
        for kind, order in orders.items():
            out[kind].append(aopc_per_image(perturbation_scores(net, x, cls, order, noise, cell, steps, chunk)))
        seen += x.shape[0]
    return {k: torch.cat(v) for k, v in out.items()}


def reference_evidence(net: nn.Module, reference: nn.Module, batches: list, make: Callable, aopc: dict | None = None,
                       device="cpu") -> dict:
    """Evidence of ``net`` against ``reference`` on the same images and interpreter."""
    out: dict = {"fsr": {}, "fsr_reference": {}}
    for name, test in PASSIVE_TESTS.items():
        r = evaluate_pair(reference, net, batches, {"m": lambda net: make(net=net)}, test(), "pred", device,
                          similarity=False)
        out["fsr"][name] = r["fsr"]["m"]["theta_star"]
        out["fsr_reference"][name] = r["fsr"]["m"]["theta0"]
    rho, ref_logits, logits = [], [], []
    ref_map, map_ = make(net=reference.to(device).eval()), make(net=net.to(device).eval())
    for batch in batches:
        x = batch[0].to(device)
        with torch.no_grad():
            z_ref, z = reference(x), net(x)
        cls = z_ref.argmax(1)              # the class the reference predicts, explained by both
        rho.append(spearman(ref_map(x, cls), map_(x, cls)))
        ref_logits.append(z_ref.double().cpu())
        logits.append(z.double().cpu())
    out["map_spearman"] = float(torch.cat(rho).mean())
    agree, kl = output_fidelity(torch.cat(ref_logits), torch.cat(logits))
    out.update({"top1_agreement": float(agree.double().mean()), "kl_ref_model": float(kl.mean())})
    out["reference"], _ = model_evidence(reference, batches, make, aopc, device)   # the same evidence, unmanipulated
    return out


def aopc_below(evidence: dict, reference: dict | None = None) -> float:
    """One-sided p-value that the MoRF order of the model's maps drops the score less than the random order
    (per-image AOPC, paired by image: Wilcoxon signed-rank of d = AOPC_MoRF - AOPC_random, alternative d < 0).
    With the ``reference``'s per-image values (same images, noise and random orders), of d_model - d_reference
    instead, and 1 unless the model's own mean d is below 0: maps less faithful than random *and* than the
    reference's maps relative to random. Some honest maps are already below random (docs/defenses_audit.md: small
    DenseNet's SimpleG_T); the reference's own d is what separates those from manipulated ones. Images where the
    orders coincide (d = 0: all-zero maps fall back to the random order) carry no evidence and are left out;
    no other image: p = 1."""
    from scipy.stats import wilcoxon
    d = torch.tensor(evidence["aopc_per_image"]["morf"]) - torch.tensor(evidence["aopc_per_image"]["random"])
    if reference is not None:
        if d.mean() >= 0:
            return 1.0
        d = d - (torch.tensor(reference["aopc_per_image"]["morf"]) - torch.tensor(reference["aopc_per_image"]["random"]))
    d = d[d != 0]
    return float(wilcoxon(d.numpy(), alternative="less").pvalue) if len(d) else 1.0


def flags(evidence: dict, t: DictConfig | dict) -> dict[str, bool]:
    """Each piece of evidence against its threshold (``audit.thresholds``). With a reference, the model-alone
    evidence is judged by its change from the reference's own (an honest model's pre- and post-softmax maps
    already differ where its softmax saturates); without one, by absolute thresholds."""
    ref = evidence.get("reference")
    if ref is None:
        f = {"hidden_logit_shift": evidence["uniform_logit_share"] > t["uniform_logit_share"],
             "pre_post_disagree": evidence["pre_post_spearman"] < t["pre_post_spearman"],
             "class_independent_maps": evidence["class_spearman"] > t["class_spearman"]}
    else:
        f = {"hidden_logit_shift": evidence["uniform_logit_share"] - ref["uniform_logit_share"] > t["change"],
             "pre_post_disagree": ref["pre_post_spearman"] - evidence["pre_post_spearman"] > t["change"],
             "class_independent_maps": evidence["class_spearman"] - ref["class_spearman"] > t["change"]}
    if "aopc_per_image" in evidence:
        f["maps_less_faithful_than_random"] = aopc_below(evidence, ref) < t["aopc_p"]
    if "fsr" in evidence:
        gain = {k: evidence["fsr"][k] - evidence["fsr_reference"][k] for k in evidence["fsr"]}
        f["fooled_against_reference"] = max(gain.values()) > t["fsr_gain"]
        f["outputs_agree_maps_do_not"] = (evidence["top1_agreement"] >= t["top1_agreement"]
                                          and evidence["map_spearman"] < t["map_spearman"])
    return f


def audit_model(net: nn.Module, batches: list, make: Callable, thresholds, reference: nn.Module | None = None,
                aopc: dict | None = None, device="cpu") -> dict:
    """The audit of ``net`` (and against ``reference`` when given): evidence, flags, verdict."""
    evidence, _ = model_evidence(net, batches, make, aopc, device)
    if reference is not None:
        evidence.update(reference_evidence(net, reference, batches, make, aopc, device))
    if "aopc_per_image" in evidence:        # the AOPC flag's p-value, reported next to the flag it decides
        evidence["aopc_p"] = aopc_below(evidence, evidence.get("reference"))
    raised = flags(evidence, thresholds)
    return {"evidence": evidence, "flags": raised,
            "verdict": "manipulated" if any(raised.values()) else "no evidence of manipulation"}


def run_audit(cfg: DictConfig, out_dir: Path, argv: list[str]) -> dict:
    from interpfool.jobs.eval import find_original, load_state, resolve_ckpt, run_config, saved_config
    from interpfool.models import presoftmax_shift
    weights, run_dir = resolve_ckpt(cfg.ckpt)
    saved = saved_config(run_dir)
    ccfg = run_config(cfg, saved, argv)
    seed_all(ccfg.seed)
    built = checked_build(ccfg)
    a = cfg.audit
    net = load_state(copy.deepcopy(built.net), weights, "ckpt")
    if a.presoftmax_k is not None:                  # the model as delivered with a pre-softmax shift
        net = presoftmax_shift(net, float(a.presoftmax_k), tuple(a.presoftmax_position))
    reference = None
    if a.reference == "original":
        reference, _ = find_original(ccfg, built, cfg.get("cache_dir"), saved)
    elif a.reference:
        if not Path(str(a.reference)).is_file():
            raise BadInput(f"audit.reference={a.reference!r} is not a file; allowed: null, original, a state dict")
        reference = load_state(copy.deepcopy(built.net), Path(str(a.reference)), "audit.reference")
    try:
        make = interp_factory(a.interpreter)
    except ValueError as err:
        raise BadInput(f"audit.interpreter: {err}") from None
    loader, _ = eval_loaders(built.data, ccfg.eval.split, LocationFooling())
    batches = list(FirstImages(loader, int(a.images)))
    aopc = {k: v for k, v in OmegaConf.to_container(a.aopc).items() if k != "interpreter"} if a.aopc.images else None
    if aopc is not None:
        rows, cols = cell_grid(tuple(batches[0][0].shape[-2:]), int(a.aopc.cell))
        if not 1 <= int(a.aopc.steps) <= rows * cols:
            raise BadInput(f"audit.aopc.steps={a.aopc.steps}; allowed: 1..{rows * cols} (cells of {a.aopc.cell} px "
                           f"in these {batches[0][0].shape[-2]}x{batches[0][0].shape[-1]} images), or audit.aopc.images=0")
    result = audit_model(net, batches, make, a.thresholds, reference, aopc)
    result.update({"ckpt": str(weights), "reference": None if reference is None else str(a.reference),
                   "interpreter": a.interpreter, "images": sum(b[0].shape[0] for b in batches),
                   "split": ccfg.eval.split, "thresholds": OmegaConf.to_container(a.thresholds)})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "audit.json").write_text(json.dumps(result, indent=2))
    print(f"verdict: {result['verdict']}")
    for name, raised in result["flags"].items():
        print(f"  {'FLAG' if raised else 'ok  '} {name}")
    print(f"audit:   {out_dir / 'audit.json'}")
    return result
