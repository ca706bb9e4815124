"""Curves of the evaluation suite (matplotlib, Agg): AOPC against perturbation steps (Heo Fig. 4a),
accuracy and FSR against parameter noise (Heo Fig. 4b), and the transfer matrix as a heatmap."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODEL_LABEL = {"theta0": "θ0", "theta_star": "θ*"}
ORDER_STYLE = {"morf_h0": ("MoRF by h(θ0)", "-"), "lerf_h0": ("LeRF by h(θ0)", ":"),
               "morf_hstar": ("MoRF by h(θ*)", "-"), "lerf_hstar": ("LeRF by h(θ*)", ":"),
               "random": ("random", "--")}
ORDER_COLOUR = {"morf_h0": "tab:blue", "lerf_h0": "tab:blue", "morf_hstar": "tab:red", "lerf_hstar": "tab:red",
                "random": "tab:gray"}


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def save_aopc_curves(aopc: dict, path: str | Path, title: str = "") -> Path:
    """``aopc``: ``evaluate_aopc``'s result. One panel per model; one line per order."""
    models = list(aopc["curves"])
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], models):
        for order, curve in aopc["curves"][m].items():
            label, style = ORDER_STYLE.get(order, (order, "-"))
            ax.plot(range(len(curve)), curve, style, color=ORDER_COLOUR.get(order), label=f"{label}: {curve[-1]:.2f}")
        ax.set_title(f"model {MODEL_LABEL.get(m, m)}")
        ax.set_xlabel(f"perturbation steps ({aopc['cell']}px cells)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("AOPC (logit)")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def save_robustness_curves(rob: dict, path: str | Path, title: str = "") -> Path:
    """``rob``: ``noise_robustness``'s result. Left: top-1 against sigma; right: FSR against sigma."""
    fig, (acc_ax, fsr_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    sigmas = rob["sigmas"]
    for m, colour in (("theta0", "tab:blue"), ("theta_star", "tab:red")):
        acc_ax.plot(sigmas, [100 * a for a in rob[m]["top1"]], "o-", color=colour, label=MODEL_LABEL[m])
        for (n, values), style in zip(rob[m]["fsr"].items(), ("-", "--", ":", "-.") * 4):
            fsr_ax.plot(sigmas, [100 * v for v in values], style, marker="o", color=colour,
                        label=f"{MODEL_LABEL[m]} {n}")
    for ax, what in ((acc_ax, "top-1 accuracy (%)"), (fsr_ax, "FSR (%)")):
        ax.set_xlabel(f"σ of parameter noise ({rob['scale']})")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def save_transfer_matrix(matrix: dict[str, dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Rows: fooled-through interpreter; columns: evaluated interpreter; cells: FSR in %."""
    rows = list(matrix)
    cols = list(dict.fromkeys(c for r in matrix.values() for c in r))
    values = [[100 * matrix[r].get(c, float("nan")) for c in cols] for r in rows]
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2, 0.7 * len(rows) + 1.5))
    ax.imshow(values, vmin=0, vmax=100, cmap="viridis")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("FSR of interpreter")
    ax.set_ylabel("fooled through")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="white" if v < 60 else "black", fontsize=9)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)
