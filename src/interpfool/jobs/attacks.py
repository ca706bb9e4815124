"""``experiment=attacks``: attack the input or the model? Input attacks on the cached theta0 (no fooling is trained).

On ``attacks.images`` images of ``eval.split`` (a random subset seeded by ``seed``):

* accuracy against eps (pixel units) of FGSM (Goodfellow et al. 2015), the notes' max-normalised gradient step,
  BIM (Kurakin et al. 2017), PGD (Madry et al. 2018) and random sign noise of the same L-inf norm (the control);
* the lecture-style figure: image, perturbation (scaled up), adversarial image, predicted class and confidence
  before / after (FGSM at ``attacks.figure_eps``);
* explanation attacks (``attacks.explanation``: the Location / Top-k / Center-mass objectives on the input,
  ``interpfool.attacks.explanation_attack``) judged by the FSR test of the matching fooling (its test loss and
  interval R, against theta0's map of the clean image; the class explained is ``target``), with the prediction
  kept, next to random sign noise of the same eps and next to the model manipulation's FSR: a fooled checkpoint
  evaluated on the same images (``attacks.fooled_ckpt``), else the numbers of docs/results/<data>.json, labelled as
  coming from those runs (other images: their whole held-out split).

Writes report.json, report.md (the tables), accuracy_vs_eps.png and lecture_figure.png in the run folder.
``python -m interpfool.jobs.attacks summary <run dirs> --json J --doc-table T --figure F`` pools runs (seeds).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from interpfool import attacks
from interpfool.experiment import distributed as dist_env
from interpfool.experiment.build import checked_build, eval_loaders
from interpfool.experiment.cli import CONF_DIR, BadInput
from interpfool.experiment.original import atomic_write_text, obtain_original, seed_all
from interpfool.fooling.penalties import CenterMassFooling, LocationFooling, TopKFooling
from interpfool.models.builders import load_state_file

METHODS = ("fgsm", "gradient_step", "bim", "pgd", "noise")
FOOLINGS = {"location": LocationFooling, "topk": TopKFooling, "center_mass": CenterMassFooling}
REFERENCE_FILES = {"SyntheticDataModule": "synthetic.json", "FashionMNISTDataModule": "fashion_mnist.json"}
LABELS = {"fgsm": "FGSM", "gradient_step": "gradient step (g / max|g|)", "bim": "BIM", "pgd": "PGD",
          "noise": "random sign noise"}


# -- inputs -------------------------------------------------------------------------------------------------------

def check_settings(a: DictConfig) -> None:
    """Choices the schema cannot express (lists of names)."""
    for key, given, allowed in (("attacks.methods", a.methods, METHODS),
                                ("attacks.explanation.foolings", a.explanation.foolings, tuple(FOOLINGS))):
        bad = [m for m in given if m not in allowed]
        if bad or not given:
            raise BadInput(f"{key}={list(given)}; allowed: a non-empty list of {', '.join(allowed)}")
    if not a.clamp[0] < a.clamp[1]:
        raise BadInput(f"attacks.clamp={list(a.clamp)}; allowed: [low, high] with low < high")


def take_images(loader, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random subset of ``n`` images of the split (seeded by ``seed``), in a fixed order."""
    xs, ys = [], []
    for batch in loader:
        xs.append(batch[0])
        ys.append(batch[1])
    x, y = torch.cat(xs), torch.cat(ys)
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return x[pick], y[pick]


def pixel_stats(data) -> dict:
    """The data module's normalisation: pixel = x * std + mean."""
    return {"mean": getattr(data, "mean", None), "std": getattr(data, "std", None)}


def chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


# -- accuracy against eps -----------------------------------------------------------------------------------------

def perturb(method: str, net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, a: DictConfig, stats: dict,
            gen: torch.Generator) -> torch.Tensor:
    kw = dict(stats, clamp=tuple(a.clamp))
    alpha = float(a.alpha_factor) * eps / int(a.steps) if eps > 0 else 1.0
    if method == "fgsm":
        return attacks.fgsm(net, x, y, eps, **kw)
    if method == "gradient_step":
        return attacks.gradient_step(net, x, y, eps, **kw)
    if method == "bim":
        return attacks.bim(net, x, y, eps, alpha, int(a.steps), **kw)
    if method == "pgd":
        return attacks.pgd(net, x, y, eps, alpha, int(a.steps), generator=gen, **kw)
    return attacks.random_noise(x, eps, generator=gen, **kw)


def accuracy_vs_eps(net: nn.Module, x: torch.Tensor, y: torch.Tensor, a: DictConfig, stats: dict, seed: int,
                    device) -> dict:
    out = {}
    for method in a.methods:
        gen = torch.Generator().manual_seed(seed)        # PGD starts / noise: a function of the seed alone
        accs = []
        for eps in a.eps:
            hits = 0
            for s in chunks(len(x), int(a.batch_size)):
                xb, yb = x[s].to(device), y[s].to(device)
                adv = perturb(method, net, xb, yb, float(eps), a, stats, gen)
                with torch.no_grad():
                    hits += int((net(adv).argmax(1) == yb).sum())
            accs.append(hits / len(x))
        out[method] = accs
    return out


# -- explanation attacks against model manipulation ----------------------------------------------------------------

def fooling_test(name: str, interval) -> object:
    return FOOLINGS[name](interval=tuple(float(v) for v in interval))


def maps_of(interp, x: torch.Tensor, target: str, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        return interp(x, target, labels=y)


def explanation_study(cfg: DictConfig, net0: nn.Module, make_interp, x: torch.Tensor, y: torch.Tensor, stats: dict,
                      fooled: dict | None, device) -> dict:
    """Per fooling: FSR of the explanation attack (and of theta0 on clean images, of random noise at the same eps),
    share of predictions kept, top-1 after the attack; and with ``fooled`` (name -> fooled net), the model
    manipulation's FSR and top-1 on the same images."""
    e = cfg.attacks.explanation
    target = cfg.target
    interp0 = make_interp(net=net0)
    out = {}
    for name in e.foolings:
        test = fooling_test(name, e.intervals[name])
        kw = dict(stats, clamp=tuple(cfg.attacks.clamp))
        rows = {k: [] for k in ("t_clean", "t_attack", "t_noise", "kept", "correct_attack", "correct_clean")}
        start = time.time()
        gen = torch.Generator().manual_seed(int(cfg.seed))
        for s in chunks(len(x), int(cfg.attacks.batch_size)):
            xb, yb = x[s].to(device), y[s].to(device)
            adv = attacks.explanation_attack(
                net0, make_interp, xb, objective=fooling_test(name, e.intervals[name]), eps=float(e.eps),
                steps=int(e.steps), alpha=float(e.alpha_factor) * float(e.eps) / int(e.steps), gamma=float(e.gamma),
                keep=e.keep, target=target, labels=yb, select=e.select,
                softplus_beta=None if e.softplus_beta is None else float(e.softplus_beta), **kw)
            noisy = attacks.random_noise(xb, float(e.eps), generator=gen, **kw)
            h0 = maps_of(interp0, xb, target, yb)
            rows["t_clean"].append(test.test_loss(h0, h0))
            rows["t_attack"].append(test.test_loss(maps_of(interp0, adv, target, yb), h0))
            rows["t_noise"].append(test.test_loss(maps_of(interp0, noisy, target, yb), h0))
            with torch.no_grad():
                pred0, pred = net0(xb).argmax(1), net0(adv).argmax(1)
            rows["kept"].append(pred == pred0)
            rows["correct_attack"].append(pred == yb)
            rows["correct_clean"].append(pred0 == yb)
        r = {k: torch.cat(v).cpu() for k, v in rows.items()}
        entry = {"interval": list(test.interval),
                 "fsr_theta0": float(test.success(r["t_clean"]).float().mean()),
                 "fsr_attack": float(test.success(r["t_attack"]).float().mean()),
                 "fsr_noise": float(test.success(r["t_noise"]).float().mean()),
                 "test_loss_attack": float(r["t_attack"].nanmean()), "test_loss_clean": float(r["t_clean"].nanmean()),
                 "prediction_kept": float(r["kept"].float().mean()),
                 "top1_clean": float(r["correct_clean"].float().mean()),
                 "top1_attack": float(r["correct_attack"].float().mean()),
                 "seconds": time.time() - start}
        if fooled and name in fooled:
            entry["model_manipulation"] = model_manipulation(fooled[name], net0, make_interp, x, y, test, cfg, device)
        out[name] = entry
    return out


def model_manipulation(net: nn.Module, net0: nn.Module, make_interp, x, y, test, cfg: DictConfig, device) -> dict:
    """The fooled model theta* on the same clean images: FSR of its maps against theta0's, its top-1."""
    interp, interp0 = make_interp(net=net), make_interp(net=net0)
    t, correct = [], []
    for s in chunks(len(x), int(cfg.attacks.batch_size)):
        xb, yb = x[s].to(device), y[s].to(device)
        t.append(test.test_loss(maps_of(interp, xb, cfg.target, yb), maps_of(interp0, xb, cfg.target, yb)))
        with torch.no_grad():
            correct.append(net(xb).argmax(1) == yb)
    return {"fsr": float(test.success(torch.cat(t)).float().mean()),
            "top1": float(torch.cat(correct).float().mean()), "source": "attacks.fooled_ckpt, the same images"}


def load_fooled(cfg: DictConfig, net0: nn.Module, device) -> tuple[dict | None, dict | None]:
    """``attacks.fooled_ckpt`` (a run folder or its fooled.pt) -> ({fooling name: fooled net}, where it came from)."""
    given = cfg.attacks.get("fooled_ckpt")
    if not given:
        return None, None
    path = Path(str(given))
    folder = path if path.is_dir() else path.parent
    file = path / "fooled.pt" if path.is_dir() else path
    run_cfg = folder / "config.yaml"
    if not file.is_file() or not run_cfg.is_file():
        raise BadInput(f"attacks.fooled_ckpt={str(given)!r}: needs a train.py run folder (fooled.pt and config.yaml) "
                       f"or its fooled.pt; allowed: such a folder or file, or null")
    saved = OmegaConf.load(run_cfg)
    import copy
    net = copy.deepcopy(net0)
    try:
        load_state_file(net, file, "attacks.fooled_ckpt")
    except ValueError as err:
        raise BadInput(str(err)) from None
    return {str(saved.fooling.name): net.to(device).eval()}, {"path": str(file), "fooling": str(saved.fooling.name),
                                                              "interp": str(saved.interp.get("_target_", "?"))}


def reference_numbers(cfg: DictConfig, interp_name: str) -> dict | None:
    """Model-manipulation numbers of the fooling runs in docs/results/<data>.json (mean, std over their seeds)."""
    ref = cfg.attacks.get("reference")
    if ref in (None, "", "null"):
        return None
    if ref == "auto":
        name = REFERENCE_FILES.get(str(cfg.data.get("_target_", "")).rsplit(".", 1)[-1])
        if name is None:
            return None
        ref = CONF_DIR.parent / "docs" / "results" / name
    path = Path(str(ref))
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())
    out = {}
    for row in rows:
        if row.get("model") == cfg.model.name and row.get("interp") == interp_name and row.get("fooling") in FOOLINGS:
            out[row["fooling"]] = {"fsr_mean": row["fsr_mean"], "fsr_std": row["fsr_std"],
                                   "top1_drop_mean": row["top1_drop_mean"], "top1_drop_std": row["top1_drop_std"],
                                   "n_images": row["n_fsr_images"], "seeds": row["seeds"]}
    return {"source": f"model manipulation runs of {path.name} (their own held-out images, seeds "
                      f"{sorted({s for r in out.values() for s in r['seeds']})}), not these images",
            "path": str(path), "foolings": out} if out else None


# -- figures and tables --------------------------------------------------------------------------------------------

def class_names(data, n: int) -> list[str]:
    try:
        from interpfool.data.fashion_mnist import CLASSES
        if type(data).__name__ == "FashionMNISTDataModule":
            return list(CLASSES)
    except ImportError:
        pass
    return [f"class {i}" for i in range(n)]


def lecture_figure(net: nn.Module, data, x: torch.Tensor, y: torch.Tensor, a: DictConfig, stats: dict, path: Path,
                   device) -> dict:
    """Rows: images; columns: image, perturbation x 1/(2 eps) around grey, adversarial image (FGSM at figure_eps);
    titles: predicted class and softmax confidence before / after (the lecture's panda / gibbon figure)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, eps = min(int(a.figure_images), len(x)), float(a.figure_eps)
    xb, yb = x[:n].to(device), y[:n].to(device)
    adv = attacks.fgsm(net, xb, yb, eps, **stats, clamp=tuple(a.clamp))
    with torch.no_grad():
        p0, p1 = net(xb).softmax(1), net(adv).softmax(1)
    img, img_adv = data.denormalize(xb).cpu(), data.denormalize(adv).cpu()
    delta = (img_adv - img) / (2 * eps) + 0.5
    names = class_names(data, p0.shape[1])
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.6 * n), squeeze=False)
    rows = []
    for i in range(n):
        c0, c1 = int(p0[i].argmax()), int(p1[i].argmax())
        rows.append({"label": int(yb[i]), "pred_before": c0, "conf_before": float(p0[i, c0]), "pred_after": c1,
                     "conf_after": float(p1[i, c1])})
        before = f"{names[c0]}: {100 * float(p0[i, c0]):.1f}%\n(label: {names[int(yb[i])]})"
        for j, (im, title) in enumerate(((img[i], before),
                                         (delta[i], f"perturbation x {1 / (2 * eps):.0f}\n(eps = {255 * eps:.0f}/255)"),
                                         (img_adv[i], f"{names[c1]}: {100 * float(p1[i, c1]):.1f}%\n(adversarial)"))):
            axes[i, j].imshow(im.permute(1, 2, 0).clamp(0, 1).numpy())
            axes[i, j].set_title(title, fontsize=9)
            axes[i, j].axis("off")
    fig.suptitle(f"FGSM: x + eps sign(grad_x J), eps = {255 * eps:.0f}/255; predicted class: softmax confidence",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"eps": eps, "images": rows}


def accuracy_figure(curves: dict, eps: list, path: Path, title: str, errors: dict | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    xs = [255 * e for e in eps]
    for method, accs in curves.items():
        ys = [100 * v for v in accs]
        if errors:
            ax.errorbar(xs, ys, yerr=[100 * v for v in errors[method]], marker="o", capsize=3,
                        label=LABELS.get(method, method))
        else:
            ax.plot(xs, ys, marker="o", label=LABELS.get(method, method))
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.set_xlabel("eps (L-inf, pixel levels of 255)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(report: dict) -> str:
    eps = report["eps"]
    lines = [f"# Input attacks: {report['model']} on {report['data']} (seed {report['seed']}, {report['n_images']} "
             f"images of {report['split']})", "",
             "Top-1 accuracy (%) against eps (L-inf, pixel units x 255):", "",
             "| attack | " + " | ".join(f"{255 * e:g}" for e in eps) + " |", "|---" * (len(eps) + 1) + "|"]
    for method, accs in report["accuracy"].items():
        lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(f"{100 * v:.1f}" for v in accs) + " |")
    lines += ["", input_vs_model_table(report), ""]
    return "\n".join(lines)


def input_vs_model_table(report: dict) -> str:
    e = report["explanation"]
    ref = (report.get("reference") or {}).get("foolings", {})
    lines = [f"Attack the input or the model? {report['interpreter']}, FSR (%) of each fooling's test; input: "
             f"explanation attack at eps = {255 * e['eps']:.0f}/255 ({e['steps']} steps, softplus beta "
             f"{e['softplus_beta']}), model: Heo et al.'s fine-tuning.", "",
             "| fooling | R | FSR θ0 | FSR noise | FSR input attack | prediction kept | top-1 clean / attack | "
             "FSR model (same images) | FSR model (reference runs) | top-1 drop model (ref., points) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in e["results"].items():
        same = r.get("model_manipulation")
        rf = ref.get(name)
        lines.append(f"| {name} | {r['interval']} | {100 * r['fsr_theta0']:.1f} | {100 * r['fsr_noise']:.1f} | "
                     f"{100 * r['fsr_attack']:.1f} | {100 * r['prediction_kept']:.1f} | "
                     f"{100 * r['top1_clean']:.1f} / {100 * r['top1_attack']:.1f} | "
                     f"{'%.1f' % (100 * same['fsr']) if same else '-'} | "
                     f"{'%.1f ± %.1f' % (100 * rf['fsr_mean'], 100 * rf['fsr_std']) if rf else '-'} | "
                     f"{'%.2f ± %.2f' % (rf['top1_drop_mean'], rf['top1_drop_std']) if rf else '-'} |")
    if report.get("reference"):
        lines += ["", f"Reference: {report['reference']['source']}."]
    return "\n".join(lines)


# -- the job -------------------------------------------------------------------------------------------------------

def run(cfg: DictConfig, run_dir: Path, group: str | None = None) -> dict:
    if cfg.get("attacks") is None:
        raise BadInput("job=attacks needs the attacks section; allowed: experiment=attacks or "
                       "experiment=fmnist_attacks")
    check_settings(cfg.attacks)
    seed_all(cfg.seed)
    built = checked_build(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = cfg.trainer.get("accelerator", "cpu")
    net0, original_info = obtain_original(cfg, built, accelerator)
    device = dist_env.eval_device(cfg)
    net0 = net0.to(device).eval()                      # attacks assume eval mode (the caller's job)
    fooled, fooled_info = load_fooled(cfg, net0, device)
    loader, _ = eval_loaders(built.data, cfg.eval.split, built.fooling)
    x, y = take_images(loader, int(cfg.attacks.images), int(cfg.seed))
    stats = pixel_stats(built.data)
    a = cfg.attacks
    start = time.time()
    curves = accuracy_vs_eps(net0, x, y, a, stats, int(cfg.seed), device)
    attack_seconds = time.time() - start
    figure = lecture_figure(net0, built.data, x, y, a, stats, run_dir / "lecture_figure.png", device)
    with torch.no_grad():
        clean = float(torch.cat([(net0(x[s].to(device)).argmax(1) == y[s].to(device)).cpu()
                                 for s in chunks(len(x), int(a.batch_size))]).float().mean())
    start = time.time()
    explanation = explanation_study(cfg, net0, built.interp, x, y, stats, fooled, device)
    e = OmegaConf.to_container(a.explanation, resolve=True)
    report = {"job": "attacks", "model": cfg.model.name, "data": type(built.data).__name__.removesuffix("DataModule")
              .lower(), "interpreter": built.interp_name, "seed": int(cfg.seed), "split": cfg.eval.split,
              "target": cfg.target, "n_images": len(x), "clean_top1": clean, "eps": [float(v) for v in a.eps],
              "steps": int(a.steps), "alpha_factor": float(a.alpha_factor), "clamp": list(a.clamp),
              "accuracy": curves, "attack_seconds": attack_seconds,
              "explanation": {**{k: e[k] for k in ("eps", "steps", "alpha_factor", "gamma", "keep", "softplus_beta",
                                                   "select")},
                              "seconds": time.time() - start, "results": explanation},
              "fooled_ckpt": fooled_info, "reference": reference_numbers(cfg, built.interp_name),
              "lecture_figure": figure, "original": original_info,
              "paths": {"run_dir": str(run_dir), "figure": str(run_dir / "lecture_figure.png"),
                        "accuracy_figure": str(run_dir / "accuracy_vs_eps.png"), "table": str(run_dir / "report.md")}}
    accuracy_figure(curves, report["eps"], run_dir / "accuracy_vs_eps.png",
                    f"{cfg.model.name} on {report['data']} (seed {cfg.seed}, {len(x)} images)")
    atomic_write_text(OmegaConf.to_yaml(cfg, resolve=True), run_dir / "config.yaml")
    atomic_write_text(markdown(report), run_dir / "report.md")
    atomic_write_text(json.dumps(report, indent=2), run_dir / "report.json")
    print(markdown(report))
    print(f"report:  {run_dir / 'report.json'}")
    print(f"figure:  {run_dir / 'lecture_figure.png'}")
    return report


# -- pooling seeds -------------------------------------------------------------------------------------------------

def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summarise(run_dirs: list[Path]) -> list[dict]:
    """One row per (data, model, interpreter): mean ± std (ddof 1) over the runs' seeds of every number."""
    groups: dict[tuple, list[dict]] = {}
    for d in run_dirs:
        r = json.loads((Path(d) / "report.json").read_text())
        groups.setdefault((r["data"], r["model"], r["interpreter"]), []).append(r)
    rows = []
    for (data, model, interp), reports in sorted(groups.items()):
        reports.sort(key=lambda r: r["seed"])
        eps = reports[0]["eps"]
        row = {"data": data, "model": model, "interp": interp, "seeds": [r["seed"] for r in reports],
               "n_images": reports[0]["n_images"], "split": reports[0]["split"], "eps": eps,
               "clean_top1": _mean_std([r["clean_top1"] for r in reports]), "accuracy": {}, "explanation": {},
               "explanation_settings": {k: v for k, v in reports[0]["explanation"].items()
                                        if k not in ("results", "seconds")},
               "reference": reports[0].get("reference"), "runs": [r["paths"]["run_dir"] for r in reports]}
        for method in reports[0]["accuracy"]:
            per = np.asarray([r["accuracy"][method] for r in reports], dtype=float)
            row["accuracy"][method] = {"mean": per.mean(0).tolist(),
                                       "std": (per.std(0, ddof=1) if len(per) > 1 else 0 * per[0]).tolist()}
        for name in reports[0]["explanation"]["results"]:
            keys = ("fsr_theta0", "fsr_noise", "fsr_attack", "prediction_kept", "top1_clean", "top1_attack")
            row["explanation"][name] = {k: _mean_std([r["explanation"]["results"][name][k] for r in reports])
                                        for k in keys}
            row["explanation"][name]["interval"] = reports[0]["explanation"]["results"][name]["interval"]
            same = [r["explanation"]["results"][name].get("model_manipulation") for r in reports]
            if all(same):
                row["explanation"][name]["fsr_model_same_images"] = _mean_std([s["fsr"] for s in same])
        rows.append(row)
    return rows


def summary_markdown(rows: list[dict]) -> str:
    out = []
    for row in rows:
        n = len(row["seeds"])
        out += [f"**{row['model']} on {row['data']}** (seeds {row['seeds']}, {row['n_images']} images of "
                f"{row['split']} each; mean ± std over seeds). Top-1 accuracy (%) against eps (x 255):", "",
                "| attack | " + " | ".join(f"{255 * e:g}" for e in row["eps"]) + " |",
                "|---" * (len(row["eps"]) + 1) + "|"]
        for method, v in row["accuracy"].items():
            out.append(f"| {LABELS.get(method, method)} | " + " | ".join(
                f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(v["mean"], v["std"])) + " |")
        s = row["explanation_settings"]
        ref = (row.get("reference") or {}).get("foolings", {})
        out += ["", f"Attack the input or the model? ({row['interp']}; input: explanation attack at eps = "
                f"{255 * s['eps']:.0f}/255, {s['steps']} steps, softplus beta {s['softplus_beta']}, gamma "
                f"{s['gamma']} on {s['keep']}; FSR and kept in %, {n} seeds)", "",
                "| fooling | R | FSR θ0 (clean) | FSR noise, same eps | FSR input attack | prediction kept | "
                "top-1 after input attack | FSR model, same images | FSR model, reference runs † | "
                "top-1 drop of the model † (points) |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for name, v in row["explanation"].items():
            rf = ref.get(name)

            def pm(key, scale=100):
                m, sd = v[key]
                return f"{scale * m:.1f} ± {scale * sd:.1f}"
            same = pm("fsr_model_same_images") if "fsr_model_same_images" in v else "-"
            model = f"{100 * rf['fsr_mean']:.1f} ± {100 * rf['fsr_std']:.1f}" if rf else "-"
            drop = f"{rf['top1_drop_mean']:.2f} ± {rf['top1_drop_std']:.2f}" if rf else "-"
            out.append(f"| {name} | {v['interval']} | {pm('fsr_theta0')} | {pm('fsr_noise')} | {pm('fsr_attack')} | "
                       f"{pm('prediction_kept')} | {pm('top1_attack')} | {same} | {model} | {drop} |")
        if row.get("reference"):
            out += ["", f"† {row['reference']['source']}."]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pool experiment=attacks runs (seeds) into a JSON, a table, a figure")
    parser.add_argument("command", choices=["summary"])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--table", type=Path, help="write the markdown tables here")
    parser.add_argument("--figure-dir", type=Path, help="accuracy-vs-eps figure per (data, model) here")
    args = parser.parse_args(argv)
    rows = summarise(args.runs)
    if args.figure_dir:
        args.figure_dir.mkdir(parents=True, exist_ok=True)
        for row in rows:
            path = args.figure_dir / f"attacks_accuracy_{row['data']}_{row['model']}.png"
            accuracy_figure({k: v["mean"] for k, v in row["accuracy"].items()}, row["eps"], path,
                            f"{row['model']} on {row['data']}: mean ± std over seeds {row['seeds']}",
                            errors={k: v["std"] for k, v in row["accuracy"].items()})
            row["figure"] = str(path)
    text = summary_markdown(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.table:
        args.table.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
