"""Figures of the sanity checks in the style of Adebayo et al. (2018, Fig. 2 and 4): similarity of each
interpreter's maps to the unrandomised maps against the randomised layer (from the logits down), one line per
interpreter, a band of +- one std; and the maps themselves at every cascading step (rows: interpreters x images)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from interpfool.interpreters.base import upsample_map  # noqa: E402

METRIC_LABEL = {"spearman_abs": "Spearman (absolute maps)", "spearman_raw": "Spearman (raw maps)", "ssim": "SSIM"}
MODEL_STYLE = {"theta0": ("θ0", "-"), "theta_star": ("θ*", "--")}


def save_sanity_curves(summary: dict, path: str | Path, title: str = "",
                       metrics: tuple[str, ...] = ("spearman_abs", "spearman_raw", "ssim")) -> Path:
    """summary: {model: {mode: summarize(...)}} (values may carry a ``std`` across seeds instead of images).
    Rows: modes; columns: metrics; colour: interpreter; line style: model."""
    models = list(summary)
    modes = list(dict.fromkeys(m for d in summary.values() for m in d))
    fig, axes = plt.subplots(len(modes), len(metrics), figsize=(4.6 * len(metrics), 3.6 * len(modes)),
                             squeeze=False)
    names = list(dict.fromkeys(n for d in summary.values() for s in d.values() for n in s["interpreters"]))
    colours = {n: plt.get_cmap("tab10")(i % 10) for i, n in enumerate(names)}
    for r, mode in enumerate(modes):
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            steps = None
            for model in models:
                s = summary[model].get(mode)
                if s is None:
                    continue
                steps = s["steps"]
                label_m, style = MODEL_STYLE.get(model, (model, ":"))
                for name, entry in s["interpreters"].items():
                    mean = [float("nan") if v is None else v for v in entry[metric]["mean"]]
                    std = [0.0 if v is None else v for v in entry[metric]["std"]]
                    xs = range(len(mean))
                    ax.plot(xs, mean, style, marker="o", ms=3, color=colours[name],
                            label=f"{name} {label_m}" if len(models) > 1 else name)
                    ax.fill_between(xs, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)],
                                    color=colours[name], alpha=0.08)
            if steps:
                ax.set_xticks(range(len(steps)), steps, rotation=60, fontsize=7, ha="right")
            ax.axhline(0, color="gray", lw=0.5)
            ax.set_ylim(-0.4 if metric != "ssim" else -0.1, 1.05)
            ax.set_title(f"{mode}: {METRIC_LABEL.get(metric, metric)}", fontsize=9)
            ax.grid(alpha=0.3)
            if c == 0:
                ax.set_ylabel("similarity to the unrandomised maps")
    axes[0, -1].legend(fontsize=6, ncol=2 if len(models) > 1 else 1, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def save_sanity_maps(images: torch.Tensor, maps: dict[str, torch.Tensor], steps: list[str], path: str | Path,
                     title: str = "") -> Path:
    """images: [K, 3, H, W] in [0, 1]; maps: interp -> [S, K, h, w] (S steps). Rows: interpreter x image; columns:
    the image, then each step (``original``, then the layers randomised cumulatively from the top)."""
    names = list(maps)
    k = min(images.shape[0], next(iter(maps.values())).shape[1])
    rows, cols = len(names) * k, 1 + len(steps)
    fig, axes = plt.subplots(rows, cols, figsize=(1.45 * cols, 1.45 * rows), squeeze=False)
    size = tuple(images.shape[-2:])
    for i, name in enumerate(names):
        for j in range(k):
            r = i * k + j
            img = images[j].permute(1, 2, 0).cpu().float().clamp(0, 1).numpy()
            axes[r, 0].imshow(img)
            axes[r, 0].set_ylabel(name, fontsize=6)
            for s in range(len(steps)):
                h = upsample_map(maps[name][s, j:j + 1].abs().float(), size)[0].numpy()
                axes[r, s + 1].imshow(h, cmap="gray", vmin=0, vmax=max(float(h.max()), 1e-12))
                if r == 0:
                    axes[r, s + 1].set_title(steps[s], fontsize=6, rotation=30)
    axes[0, 0].set_title("image", fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
