"""Tables of the Section-5 studies of Heo et al. 2019 (Figure 4c: adversarial training under fooling; Figure 5b:
SmoothGrad fooling) from the run folders of their multiruns: mean ± std (ddof = 1) over seeds of the held-out numbers
each run's report.json holds, to JSON and Markdown, and seed 0's figures copied next to the page.

    python -m interpfool.experiment.section5_summary multirun/section5/* \\
        --json docs/results/attacks_section5.json --md /tmp/section5_tables.md --figures docs/figures

With --update the studies already in --json stay (in their order) and only the sweeps given are replaced or added, so
one data set's rows can be rerun without the other's run folders; the Markdown then covers every study in the JSON.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

PHASES = ("theta0", "theta_adv", "theta_star")


def stat(values: list[float]) -> dict:
    """mean, std (ddof = 1; 0 for one value), n and the values themselves."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def reports(sweep: Path) -> list[dict]:
    """The report.json of every job folder of a multirun, by seed."""
    found = [{**json.loads(p.read_text()), "folder": str(p.parent)} for p in sorted(sweep.glob("*/report.json"))]
    return sorted(found, key=lambda r: r["seed"])


def adv_summary(runs: list[dict]) -> dict:
    """Figure 4c: per phase, clean top-1, PGD top-1 and FSR (percent) on the held-out split."""
    out = {"seeds": [r["seed"] for r in runs], "data": runs[0]["data"], "interpreter": runs[0]["interpreter"],
           "split": runs[0]["split"], "adversarial": runs[0]["adversarial"], "pgd": runs[0]["pgd"],
           "selected_steps": [r["selected"]["step"] for r in runs],
           "within_budget": [r["selected"].get("within_budget") for r in runs], "phases": {}}
    for phase in PHASES:
        numbers = {}
        for key in ("top1", "top1_pgd", "fsr"):
            vals = [100 * r["phases"][phase][key] for r in runs if key in r["phases"][phase]]
            if vals:
                numbers[key] = stat(vals)
        out["phases"][phase] = numbers
    out["top1_drop_points_vs_theta_adv"] = stat([r["top1_drop_points"] for r in runs])
    return out


def smoothgrad_summary(runs: list[dict]) -> dict:
    """Figure 5b: accuracy of theta0 / theta*, the top-1 / top-5 drops, and each measured interpreter's FSR."""
    acc = {m: {k: stat([100 * r["accuracy"][m][k] for r in runs]) for k in ("top1", "top5")}
           for m in ("theta0", "theta_star")}
    drop5 = [100 * (r["accuracy"]["theta0"]["top5"] - r["accuracy"]["theta_star"]["top5"]) for r in runs]
    fsr = {name: {m: stat([100 * r["fsr"][name][m] for r in runs]) for m in ("theta0", "theta_star")}
           for name in runs[0]["fsr"]}
    return {"seeds": [r["seed"] for r in runs], "data": runs[0]["data"], "fooled_interpreter": runs[0]["interpreter"],
            "split": runs[0]["split"], "n_images": runs[0]["n_images"], "lam": runs[0]["lam"], "lr": runs[0]["lr"],
            "steps": [r["steps"] for r in runs], "selected_steps": [r["selected"]["step"] for r in runs],
            "within_budget": [r["selected"].get("within_budget") for r in runs], "accuracy": acc,
            "top1_drop_points": stat([r["top1_drop_points"] for r in runs]), "top5_drop_points": stat(drop5),
            "fsr": fsr, "test_loss_mean": {name: {m: stat([r["test_loss_mean"][name][m] for r in runs])
                                                  for m in ("theta0", "theta_star")} for name in runs[0]["fsr"]}}


def pm(s: dict | None, digits: int = 1) -> str:
    return "–" if s is None else f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def markdown(summary: dict) -> str:
    lines = []
    adv = {k: v for k, v in summary.items() if v["kind"] == "adv_fooling"}
    if adv:
        lines += ["| data | phase | clean top-1 (%) | PGD top-1 (%) | Grad-CAM Location FSR (%) |", "|---|---|---|---|---|"]
        for name, s in adv.items():
            for phase in PHASES:
                p = s["phases"][phase]
                lines.append(f"| {s['data']} | {phase} | {pm(p.get('top1'))} | {pm(p.get('top1_pgd'))} | "
                             f"{pm(p.get('fsr'))} |")
        lines.append("")
    sg = {k: v for k, v in summary.items() if v["kind"] == "smoothgrad"}
    if sg:
        lines += ["| run | fooled through | top-1 θ0 → θ* (%) | top-1 drop (pt) | top-5 drop (pt) | FSR SimpleGrad "
                  "θ0 → θ* (%) | FSR SmoothGrad θ0 → θ* (%) | Location loss SimpleGrad θ0 → θ* | Location loss "
                  "SmoothGrad θ0 → θ* | selected steps |", "|---|---|---|---|---|---|---|---|---|---|"]
        for name, s in sg.items():
            f = s["fsr"]
            t = s["test_loss_mean"]
            lines.append(f"| {name} | {s['fooled_interpreter']} | {pm(s['accuracy']['theta0']['top1'])} → "
                         f"{pm(s['accuracy']['theta_star']['top1'])} | {pm(s['top1_drop_points'], 2)} | "
                         f"{pm(s['top5_drop_points'], 2)} | {pm(f['simpleg']['theta0'])} → {pm(f['simpleg']['theta_star'])}"
                         f" | {pm(f['smoothgrad']['theta0'])} → {pm(f['smoothgrad']['theta_star'])} | "
                         f"{pm(t['simpleg']['theta0'], 3)} → {pm(t['simpleg']['theta_star'], 3)} | "
                         f"{pm(t['smoothgrad']['theta0'], 3)} → {pm(t['smoothgrad']['theta_star'], 3)} | "
                         f"{', '.join(map(str, s['selected_steps']))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="multirun folders (one per study and data set)")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--md", type=Path)
    parser.add_argument("--figures", type=Path, help="copy seed 0's figures here")
    parser.add_argument("--update", action="store_true",
                        help="keep the studies --json already holds and replace or add only these sweeps' entries")
    args = parser.parse_args(argv)
    summary = json.loads(args.json.read_text()) if args.update and args.json.is_file() else {}
    for sweep in args.sweeps:
        runs = reports(sweep)
        if not runs:
            print(f"{sweep}: no report.json yet; skipped")
            continue
        kind = "adv_fooling" if runs[0].get("job") == "adv_fooling" else "smoothgrad"
        s = adv_summary(runs) if kind == "adv_fooling" else smoothgrad_summary(runs)
        s.update({"kind": kind, "sweep": str(sweep)})
        summary[sweep.name] = s
        if args.figures:
            first = Path(runs[0]["folder"])         # the lowest seed's run (the folder may have moved since)
            src = first / ("adv_fooling.png" if kind == "adv_fooling" else "heatmaps.png")
            args.figures.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, args.figures / f"section5_{sweep.name}.png")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    text = markdown(summary)
    if args.md:
        args.md.write_text(text)
    print(text)
    return summary


if __name__ == "__main__":
    main()
