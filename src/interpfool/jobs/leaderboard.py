"""The robustness leaderboard: which interpreter survives manipulation, and which defense helps.

    python train.py -m +sweep=leaderboard                      # the grid (sweeps/leaderboard.yaml)
    python -m interpfool.jobs.leaderboard multirun/<date>/<time> [more folders] \\
        --json docs/results/leaderboard.json --doc docs/leaderboard.md --figure docs/figures/leaderboard.png

Reads every run's ``report.json`` (``experiment.grid_summary.run_rows``) and writes one record per
benchmark x model x fooling x interpreter x defense (``defense: none`` = the undefended map) with ``fsr_mean``,
``fsr_std`` (ddof=1 over seeds), ``top1_drop_mean`` and ``seeds``; FSR is the attacker's success measured by
the evaluation's interpreter (``eval.interp_kwargs``: SmoothGrad / IG at their default sample counts even
where the attacker used fewer). A cell counts as within the accuracy budget when its mean top-1 drop is at most
``--budget`` points. The page ranks interpreters per benchmark, model and fooling by the FSR an attacker
reaches (lowest first: hardest to fool), summarises each model family, ranks defenses by the FSR they undo on
the cells the attacker won (FSR >= 50% within budget), and shows the transfer matrices; ``--wandb`` also logs the records as a W&B table (offline).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from interpfool.experiment.grid_summary import _mean_std, records, run_rows

BEGIN, END = "<!-- GENERATED: leaderboard begin -->", "<!-- GENERATED: leaderboard end -->"
BUDGET_POINTS = 2.0     # the accuracy budget: at most this many top-1 points lost (issue 13)
WIN_FSR = 0.5           # an attacker "won" a cell at this FSR or more, within the budget


def is_win(fsr: float, top1_drop: float, min_fsr: float = WIN_FSR, budget: float = BUDGET_POINTS) -> bool:
    """The leaderboard's rule for a successful attack: FSR >= ``min_fsr`` at most ``budget`` top-1 points down."""
    return fsr >= min_fsr and top1_drop <= budget


def defense_rows(folders: list[Path]) -> dict[str, dict[str, float]]:
    """run folder -> defense spec -> theta*'s FSR under the defended map (the run's ``eval.defenses``)."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("report.json")):
            report = json.loads(path.read_text())
            rows = (report.get("defenses") or {}).get("defenses") or {}
            out[str(path.parent)] = {spec: row["fsr_theta_star"] for spec, row in rows.items() if spec != "none"}
    return out


def leaderboard_records(folders: list[Path], budget: float = BUDGET_POINTS) -> list[dict[str, Any]]:
    rows = run_rows(folders)
    defended = defense_rows(folders)
    out = []
    for rec in records(rows):
        runs = sorted((r for r in rows if (r["data"], r["model"], r["fooling"], r["interp"])
                       == (rec["data"], rec["model"], rec["fooling"], rec["interp"])), key=lambda r: r["seed"])
        base = {"benchmark": rec["data"], "model": rec["model"], "fooling": rec["fooling"],
                "interpreter": rec["interp"], "seeds": rec["seeds"], "top1_drop_mean": rec["top1_drop_mean"],
                "top1_drop_std": rec["top1_drop_std"], "within_budget": rec["top1_drop_mean"] <= budget}
        out.append({**base, "defense": "none", "fsr_mean": rec["fsr_mean"], "fsr_std": rec["fsr_std"],
                    "fsr_theta0_mean": rec["fsr_theta0_mean"], "transfer_fsr_mean": rec["transfer_fsr_mean"]})
        specs = dict.fromkeys(s for r in runs for s in defended.get(r["run_dir"], {}))
        for spec in specs:
            values = [defended.get(r["run_dir"], {}).get(spec) for r in runs]
            if any(v is None for v in values):
                raise ValueError(f"cell {rec['data']}/{rec['model']}/{rec['fooling']}/{rec['interp']}: defense "
                                 f"{spec} is missing in some seeds; allowed: the same eval.defenses in every run")
            mean, std = _mean_std(values)
            out.append({**base, "defense": spec, "fsr_mean": mean, "fsr_std": std})
    return out


def rankings(recs: list[dict]) -> dict[str, list[dict]]:
    """Per benchmark/model/fooling: the interpreters ordered by the undefended FSR reached within budget
    (lowest first: hardest to fool); cells over budget are listed last and marked."""
    groups: dict[str, list[dict]] = {}
    for r in recs:
        if r["defense"] == "none":
            groups.setdefault(f"{r['benchmark']} / {r['model']} / {r['fooling']}", []).append(r)
    return {k: sorted(v, key=lambda r: (not r["within_budget"], r["fsr_mean"])) for k, v in groups.items()}


def defense_ranking(recs: list[dict], min_fsr: float = WIN_FSR, budget_only: bool = True
                    ) -> dict[str, list[tuple[str, float, float, float, int]]]:
    """Per benchmark/model: defenses ordered by the FSR they undo on the cells the attacker won (undefended FSR
    at least ``min_fsr``, and within the accuracy budget when ``budget_only``): (defense, mean FSR before, mean FSR
    after, points undone = before - after, cells), in points."""
    won = {(r["benchmark"], r["model"], r["fooling"], r["interpreter"]): r for r in recs
           if r["defense"] == "none" and r["fsr_mean"] >= min_fsr and (r["within_budget"] or not budget_only)}
    pairs: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in recs:
        key = (r["benchmark"], r["model"], r["fooling"], r["interpreter"])
        if r["defense"] != "none" and key in won:
            pairs.setdefault(f"{r['benchmark']} / {r['model']}", {}).setdefault(r["defense"], []).append(
                (100 * won[key]["fsr_mean"], 100 * r["fsr_mean"]))
    out = {}
    for group, by_defense in pairs.items():
        rows = [(d, statistics.fmean(b for b, _ in v), statistics.fmean(a for _, a in v),
                 statistics.fmean(b - a for b, a in v), len(v)) for d, v in by_defense.items()]
        out[group] = sorted(rows, key=lambda t: -t[3])
    return out


def hardest(recs: list[dict]) -> dict[str, list[tuple[str, float, bool]]]:
    """Per benchmark/model: interpreters by their undefended FSR averaged over the foolings (lowest first), with
    whether every one of their cells kept the accuracy budget."""
    cells: dict[str, dict[str, list[dict]]] = {}
    for r in recs:
        if r["defense"] == "none":
            cells.setdefault(f"{r['benchmark']} / {r['model']}", {}).setdefault(r["interpreter"], []).append(r)
    return {g: sorted(((i, statistics.fmean(100 * r["fsr_mean"] for r in v), all(r["within_budget"] for r in v))
                       for i, v in by_interp.items()), key=lambda t: (not t[2], t[1]))
            for g, by_interp in cells.items()}


def markdown(recs: list[dict], budget: float) -> str:
    lines = [f"FSR (%) an attacker reaches, mean ± std over seeds; top-1 drop in points on the held-out split "
             f"(budget {budget:g}); lowest FSR first = hardest to fool.", ""]
    for group, ranked in rankings(recs).items():
        lines += [f"### {group}", "", "| rank | interpreter | FSR (%) | top-1 drop | seeds |", "|---|---|---|---|---|"]
        for i, r in enumerate(ranked, 1):
            mark = "" if r["within_budget"] else " (over budget)"
            lines.append(f"| {i} | {r['interpreter']}{mark} | {100 * r['fsr_mean']:.1f} ± {100 * (r['fsr_std'] or 0):.1f}"
                         f" | {r['top1_drop_mean']:.2f} | {len(r['seeds'])} |")
        lines.append("")
        cols = list(ranked[0]["transfer_fsr_mean"])
        lines += ["Transfer (rows: fooled through; columns: FSR under each interpreter, %):", "",
                  "| fooled through | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for r in ranked:
            t = r["transfer_fsr_mean"]
            lines.append(f"| {r['interpreter']} | " + " | ".join(f"{100 * t[c]:.1f}" if t.get(c) is not None else ""
                                                             for c in cols) + " |")
        lines.append("")
    lines += ["### Summary per model family", "",
              "Interpreters by their FSR averaged over the foolings of the family (lowest = hardest to fool; only "
              "interpreters whose every cell kept the budget); the defense that undoes the most FSR on the cells "
              "the attacker won (FSR >= 50% within budget).", "",
              "| benchmark / model | hardest to fool (mean FSR %) | easiest to fool (mean FSR %) | best defense: FSR before -> after (cells) |",
              "|---|---|---|---|"]
    defenses = defense_ranking(recs)
    for group, ranked in hardest(recs).items():
        kept = [t for t in ranked if t[2]]
        low = [f"{i} ({f:.1f})" for i, f, _ in kept if f <= kept[0][1] + 1e-9] if kept else ["-"]
        best = defenses.get(group)
        d = f"{best[0][0]}: {best[0][1]:.1f} -> {best[0][2]:.1f} ({best[0][4]})" if best else "-"
        lines.append(f"| {group} | {', '.join(low)} | {kept[-1][0]} ({kept[-1][1]:.1f}) | {d} |" if kept
                     else f"| {group} | - | - | {d} |")
    lines.append("")
    for group, ranked in defenses.items():
        lines += [f"### Defenses, {group}", "",
                  "On the cells the attacker won (undefended FSR >= 50%, within budget); FSR in %, means over cells.", "",
                  "| defense | FSR before | FSR after | undone (points) | cells |", "|---|---|---|---|---|"]
        lines += [f"| {d} | {b:.1f} | {a:.1f} | {g:.1f} | {n} |" for d, b, a, g, n in ranked] + [""]
    return "\n".join(lines)


def save_heatmap(recs: list[dict], path: Path) -> Path:
    """Rows: interpreters; columns: benchmark/model/fooling; colour: the undefended FSR (%); a '*' marks a
    cell whose run broke the top-1 budget (its FSR is not a win)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    recs = [r for r in recs if r["defense"] == "none"]     # the defenses are the page's tables
    rows = sorted({r["interpreter"] for r in recs})
    cols = list(dict.fromkeys(f"{r['benchmark']}/{r['model']}/{r['fooling']}" for r in recs))
    grid = [[float("nan")] * len(cols) for _ in rows]
    over = set()
    for r in recs:
        i, j = rows.index(r["interpreter"]), cols.index(f"{r['benchmark']}/{r['model']}/{r['fooling']}")
        grid[i][j] = 100 * r["fsr_mean"]
        if not r["within_budget"]:
            over.add((i, j))
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(cols), 1.0 + 0.45 * len(rows)))
    im = ax.imshow(grid, cmap="magma", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i, line in enumerate(grid):
        for j, v in enumerate(line):
            if v == v:
                ax.text(j, i, f"{v:.0f}" + ("*" if (i, j) in over else ""), ha="center", va="center",
                        fontsize=6, color="w" if v < 60 else "k")
    ax.set_title("undefended FSR (%); * = over the top-1 budget", fontsize=8)
    fig.colorbar(im, ax=ax, label="FSR (%)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def log_wandb(recs: list[dict], folder: Path) -> None:
    import wandb
    keys = ["benchmark", "model", "fooling", "interpreter", "defense", "fsr_mean", "fsr_std", "top1_drop_mean"]
    run = wandb.init(mode="offline", dir=str(folder), project="interpfool", job_type="leaderboard")
    try:
        run.log({"leaderboard": wandb.Table(columns=keys, data=[[r[k] for k in keys] for r in recs])})
    finally:
        run.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--doc", type=Path)
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--wandb", action="store_true")
    args = parser.parse_args(argv)
    for f in args.folders:
        if not f.is_dir():
            parser.error(f"folder {str(f)!r} does not exist; allowed: multirun folders of train.py")
    recs = leaderboard_records(args.folders, args.budget)
    if not recs:
        parser.error(f"no report.json below {', '.join(map(str, args.folders))}")
    text = markdown(recs, args.budget)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(recs, indent=1))
    if args.figure:
        save_heatmap(recs, args.figure)
    if args.doc:
        old = args.doc.read_text() if args.doc.is_file() else f"# Leaderboard\n\n{BEGIN}\n{END}\n"
        head, _, rest = old.partition(BEGIN)
        _, _, tail = rest.partition(END)
        args.doc.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    else:
        print(text)
    if args.wandb:
        log_wandb(recs, args.folders[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
