"""A multirun grid's runs, one record per (model, fooling, interpreter) cell, as mean and std over seeds.

    python -m interpfool.experiment.grid_summary multirun/<date>/<time> [more sweep folders] \
        --json docs/results/fashion_mnist.json --doc docs/fashion_mnist.md --figure docs/figures/fashion_mnist.png

Reads every ``report.json`` below the folders (with the job's ``config.yaml`` beside it for the seed) and
writes: the records (JSON list; FSR as fractions in [0, 1], top-1 / top-5 drops in points, standard
deviations with ddof=1 over the seeds), a Markdown page (the table of Heo et al. 2019, Table 1's shape,
and one transfer matrix per fooling and model), and a figure in the style of their Figure 2 (rows:
fooling x interpreter; columns: models; each cell: image, theta0's map, theta*'s map, from the lowest
seed's first evaluation image). In ``--doc`` only the block between the two ``GENERATED`` markers is
replaced, so hand-written text around it stays.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

BEGIN, END = "<!-- GENERATED: grid_summary begin -->", "<!-- GENERATED: grid_summary end -->"
FOOLING_ORDER = ("location", "topk", "center_mass", "active")


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def run_rows(folders: list[Path]) -> list[dict[str, Any]]:
    """One flat row per finished run: the cell, the seed and the numbers a record aggregates."""
    rows = []
    for folder in folders:
        for path in sorted(folder.rglob("report.json")):
            report = json.loads(path.read_text())
            cfg_file = path.parent / "config.yaml"
            cfg = yaml.safe_load(cfg_file.read_text()) if cfg_file.is_file() else {}
            acc = report["accuracy"]
            row = {"run_dir": str(path.parent), "model": report["model"], "fooling": report["fooling_name"],
                   "interp": report["interpreter"], "seed": report.get("seed", cfg.get("seed")),
                   "data": report.get("data", (cfg.get("data") or {}).get("name")),
                   "n_images": report["n_images"], "n_fsr_images": report.get("n_fsr_images"),
                   "top1_theta0": acc["theta0"]["top1"], "top1_theta_star": acc["theta_star"]["top1"],
                   "top1_drop": report["top1_drop_points"],
                   "top5_drop": 100 * (acc["theta0"]["top5"] - acc["theta_star"]["top5"]),
                   "fsr": {n: v["theta_star"] for n, v in report["fsr"].items()},
                   "fsr_theta0": {n: v["theta0"] for n, v in report["fsr"].items()},
                   "zero_maps": {n: v["theta_star"] for n, v in report.get("zero_map_share", {}).items()},
                   "zero_maps_theta0": {n: v["theta0"] for n, v in report.get("zero_map_share", {}).items()},
                   "mass_inside": {n: {m: v[m]["mass_inside"] for m in ("theta0", "theta_star")}
                                   for n, v in report.get("localisation", {}).items()},
                   "fsr_per_class": {n: v["theta_star"] for n, v in report.get("fsr_per_class", {}).items()},
                   "selected_step": (report.get("selected") or {}).get("step"), "steps": report.get("steps"),
                   "within_budget": (report.get("selected") or {}).get("within_budget"),
                   "fooling_seconds": report.get("fooling_seconds"), "lam": report.get("lam"), "lr": report.get("lr"),
                   "figure": str(path.parent / "figure.pt") if (path.parent / "figure.pt").is_file() else None}
            rows.append(row)
    return rows


def records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Aggregate runs by (data, model, fooling, interp) over seeds. A seed run twice is an error."""
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault((row["data"], row["model"], row["fooling"], row["interp"]), []).append(row)
    out = []
    for (data, model, fooling, interp), runs in sorted(cells.items(), key=lambda kv: _cell_order(kv[0])):
        seeds = [r["seed"] for r in runs]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"cell {model}/{fooling}/{interp}: seed(s) {sorted(seeds)} appear twice; "
                             f"allowed: one run per seed (give each sweep folder once)")
        runs = sorted(runs, key=lambda r: r["seed"])
        rec: dict[str, Any] = {"data": data, "model": model, "fooling": fooling, "interp": interp,
                               "seeds": [r["seed"] for r in runs], "n_images": runs[0]["n_images"],
                               "n_fsr_images": runs[0]["n_fsr_images"], "lam": runs[0]["lam"], "lr": runs[0]["lr"]}
        for key, values in (("fsr", [r["fsr"][interp] for r in runs]),
                            ("fsr_theta0", [r["fsr_theta0"][interp] for r in runs]),
                            ("top1_theta0", [r["top1_theta0"] for r in runs]),
                            ("top1_drop", [r["top1_drop"] for r in runs]),
                            ("top5_drop", [r["top5_drop"] for r in runs]),
                            ("zero_maps", [r["zero_maps"].get(interp) for r in runs]),
                            ("zero_maps_theta0", [r["zero_maps_theta0"].get(interp) for r in runs]),
                            ("fooling_seconds", [r["fooling_seconds"] for r in runs])):
            rec[f"{key}_mean"], rec[f"{key}_std"] = _mean_std(values)
        rec["fsr_per_seed"] = [r["fsr"][interp] for r in runs]
        rec["top1_drop_per_seed"] = [r["top1_drop"] for r in runs]
        rec["selected_step"] = [r["selected_step"] for r in runs]
        rec["within_budget"] = [r["within_budget"] for r in runs]
        names = list(runs[0]["fsr"])
        rec["transfer_fsr_mean"] = {n: _mean_std([r["fsr"].get(n) for r in runs])[0] for n in names}
        rec["transfer_fsr_std"] = {n: _mean_std([r["fsr"].get(n) for r in runs])[1] for n in names}
        rec["transfer_fsr_theta0_mean"] = {n: _mean_std([r["fsr_theta0"].get(n) for r in runs])[0] for n in names}
        if runs[0]["mass_inside"].get(interp):
            for m in ("theta0", "theta_star"):
                rec[f"mass_inside_{m}_mean"], rec[f"mass_inside_{m}_std"] = _mean_std(
                    [r["mass_inside"][interp][m] for r in runs])
        if runs[0]["fsr_per_class"].get(interp):
            for tag in runs[0]["fsr_per_class"][interp]:
                rec[f"fsr_{tag}_mean"], rec[f"fsr_{tag}_std"] = _mean_std(
                    [r["fsr_per_class"][interp][tag] for r in runs])
        rec["figure_source"] = runs[0]["figure"]
        out.append(rec)
    return out


def _cell_order(key: tuple) -> tuple:
    data, model, fooling, interp = key
    rank = FOOLING_ORDER.index(fooling) if fooling in FOOLING_ORDER else len(FOOLING_ORDER)
    return (str(data), rank, str(fooling), str(interp), str(model))


def _pct(mean: float | None, std: float | None, digits: int = 1) -> str:
    return "" if mean is None else f"{100 * mean:.{digits}f} ± {100 * std:.{digits}f}"


def _pts(mean: float | None, std: float | None) -> str:
    return "" if mean is None else f"{mean:.2f} ± {std:.2f}"


def _budget(flags: list) -> str:
    """'k/n' validations kept within the top-1 budget; '-' where no selection was made (select.weights=last)."""
    known = [f for f in flags if f is not None]
    return f"{sum(bool(f) for f in known)}/{len(known)}" if known else "-"


def to_markdown(recs: list[dict[str, Any]]) -> str:
    """The main table (one row per cell) and the transfer matrices (one per data x fooling x model)."""
    header = ["model", "fooling", "fooled through", "seeds", "FSR θ* (%)", "FSR θ0 (%)", "top-1 drop (pt)",
              "top-5 drop (pt)", "mass in object θ0", "mass in object θ*", "empty maps θ0 (%)", "empty maps θ* (%)",
              "selected steps", "within budget (val)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in recs:
        fsr = _pct(r["fsr_mean"], r["fsr_std"])
        if "fsr_c1_mean" in r:
            fsr += f" (c1 {100 * r['fsr_c1_mean']:.1f}, c2 {100 * r['fsr_c2_mean']:.1f})"
        mass = [f"{r[f'mass_inside_{m}_mean']:.3f} ± {r[f'mass_inside_{m}_std']:.3f}"
                if f"mass_inside_{m}_mean" in r else "" for m in ("theta0", "theta_star")]
        lines.append("| " + " | ".join([
            str(r["model"]), str(r["fooling"]), str(r["interp"]), ",".join(map(str, r["seeds"])), fsr,
            _pct(r["fsr_theta0_mean"], r["fsr_theta0_std"]), _pts(r["top1_drop_mean"], r["top1_drop_std"]),
            _pts(r["top5_drop_mean"], r["top5_drop_std"]), *mass,
            _pct(r["zero_maps_theta0_mean"], r["zero_maps_theta0_std"]), _pct(r["zero_maps_mean"], r["zero_maps_std"]),
            ",".join(str(s) for s in r["selected_step"]),
            _budget(r["within_budget"])]) + " |")
    blocks = ["\n".join(lines)]
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        groups.setdefault((r["data"], r["fooling"], r["model"]), []).append(r)
    for (data, fooling, model), rows in groups.items():
        cols = list(rows[0]["transfer_fsr_mean"])
        head = ["fooled through", *cols]
        mat = [f"**Transfer, {fooling} on {model}** (FSR % of θ*, mean over seeds; last row: θ0)", "",
               "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            mat.append("| " + " | ".join([r["interp"], *[f"{100 * r['transfer_fsr_mean'][c]:.1f}" for c in cols]])
                       + " |")
        mat.append("| θ0 | " + " | ".join(f"{100 * rows[0]['transfer_fsr_theta0_mean'][c]:.1f}" for c in cols) + " |")
        blocks.append("\n".join(mat))
    return "\n\n".join(blocks)


def save_figure(recs: list[dict[str, Any]], path: Path, denormalize=None) -> Path:
    """Figure 2 of Heo et al. in shape: rows fooling x interpreter, columns models, each cell the image,
    theta0's map and theta*'s map of the lowest seed's first evaluation image (class c1 for a swap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from interpfool.interpreters.base import upsample_map

    rows = list(dict.fromkeys((r["fooling"], r["interp"]) for r in recs))
    models = list(dict.fromkeys(r["model"] for r in recs))
    by_cell = {(r["fooling"], r["interp"], r["model"]): r for r in recs}
    fig, axes = plt.subplots(len(rows), 3 * len(models), figsize=(1.3 * 3 * len(models), 1.4 * len(rows)),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axis("off")
    for i, (fooling, interp) in enumerate(rows):
        for j, model in enumerate(models):
            rec = by_cell.get((fooling, interp, model))
            if rec is None or not rec.get("figure_source"):
                continue
            saved = torch.load(rec["figure_source"], weights_only=True)
            image = saved["images"][0]                       # in [0, 1] (jobs.train.evaluate_and_report)
            img = image.permute(1, 2, 0).float().numpy()
            tag = " c1" if fooling == "active" else ""
            for k, m in enumerate(("theta0", "theta_star")):
                h = saved["maps"][f"{interp} {m}{tag}"][:1].float()
                h = upsample_map(h, tuple(image.shape[-2:]))[0].numpy()
                ax = axes[i, 3 * j + 1 + k]
                ax.imshow(img)
                ax.imshow(h, cmap="jet", alpha=0.5, vmin=min(0.0, float(h.min())), vmax=max(1e-12, float(h.max())))
                if i == 0:
                    ax.set_title(f"{model}\n{'θ0' if m == 'theta0' else 'θ*'}", fontsize=7)
            axes[i, 3 * j].imshow(img)
            if i == 0:
                axes[i, 3 * j].set_title(f"{model}\nimage", fontsize=7)
            if j == 0:
                axes[i, 0].axis("on")
                axes[i, 0].set_xticks([])
                axes[i, 0].set_yticks([])
                axes[i, 0].set_ylabel(f"{fooling}\n{interp}", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_doc(path: Path, body: str) -> None:
    """Replace the generated block of ``path`` (or create the file with only that block)."""
    block = f"{BEGIN}\n{body}\n{END}"
    text = path.read_text() if path.is_file() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = (text.rstrip() + "\n\n" if text else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m interpfool.experiment.grid_summary", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders (multirun/<date>/<time>)")
    parser.add_argument("--json", type=Path, help="write the records here (a JSON list)")
    parser.add_argument("--doc", type=Path, help="Markdown page whose generated block is replaced")
    parser.add_argument("--figure", type=Path, help="write the Figure-2-style PNG here")
    parser.add_argument("--link", help="how the doc refers to the figure (default: path relative to the doc)")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        print(f"error: folders={missing}; allowed: existing sweep folders", file=sys.stderr)
        return 2
    rows = run_rows(args.folders)
    if not rows:
        print(f"error: no report.json below {[str(f) for f in args.folders]}; allowed: folders written by "
              f"`python train.py -m ...`", file=sys.stderr)
        return 2
    try:
        recs = records(rows)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    body = to_markdown(recs)
    if args.figure:
        save_figure(recs, args.figure)
        if args.doc:
            import os

            link = args.link or os.path.relpath(args.figure, args.doc.parent)
            body = f"![Figure 2 in the style of Heo et al.]({link})\n\n" + body
    for rec in recs:
        rec.pop("figure_source", None)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(recs, indent=1) + "\n")
    if args.doc:
        write_doc(args.doc, body)
    print(body)
    print(f"\n{len(rows)} runs, {len(recs)} cells" + (f" -> {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
