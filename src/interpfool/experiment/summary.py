"""Collect a sweep's report.json files into one table like Table 1 of Heo et al. (2019).

    python -m interpfool.experiment.summary multirun/<date>/<time>

Writes ``summary.csv`` (one row per job) and ``summary.md`` (rows: fooling x fooled-through
interpreter; per model: FSR of every evaluated interpreter and top-1 of theta0 / theta*) into that
folder and prints the Markdown.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def collect(sweep_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(sweep_dir.rglob("report.json")):
        report = json.loads(path.read_text())
        row = {"job": str(path.parent.relative_to(sweep_dir)), "model": report.get("model"),
               "fooling": report.get("fooling_name"), "interpreter": report.get("interpreter"),
               "lam": report.get("lam"), "lr": report.get("lr"), "steps": report.get("steps"),
               "top1_theta0": report["accuracy"]["theta0"]["top1"],
               "top1_theta_star": report["accuracy"]["theta_star"]["top1"],
               "top1_drop_points": report["top1_drop_points"]}
        for name, values in report["fsr"].items():
            row[f"fsr_{name}"] = values["theta_star"]
        rows.append(row)
    return rows


def to_markdown(rows: list[dict]) -> str:
    interps = sorted({k[4:] for r in rows for k in r if k.startswith("fsr_")})
    header = ["model", "fooling", "fooled through", *[f"FSR {i} (%)" for i in interps], "top-1 theta0 (%)",
              "top-1 theta* (%)", "drop (pt)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: (str(r["model"]), str(r["fooling"]), str(r["interpreter"]))):
        fsr = [f"{100 * r[f'fsr_{i}']:.1f}" if f"fsr_{i}" in r else "" for i in interps]
        lines.append("| " + " | ".join([str(r["model"]), str(r["fooling"]), str(r["interpreter"]), *fsr,
                                        f"{100 * r['top1_theta0']:.2f}", f"{100 * r['top1_theta_star']:.2f}",
                                        f"{r['top1_drop_points']:.2f}"]) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(f"error: give one sweep folder (multirun/<date>/<time>); got {argv!r}", file=sys.stderr)
        return 2
    sweep_dir = Path(argv[0])
    rows = collect(sweep_dir)
    if not rows:
        print(f"error: no report.json below {sweep_dir}; allowed: a folder written by `python train.py -m ...`",
              file=sys.stderr)
        return 2
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with (sweep_dir / "summary.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    markdown = to_markdown(rows)
    (sweep_dir / "summary.md").write_text(markdown + "\n")
    print(markdown)
    print(f"\n{len(rows)} jobs -> {sweep_dir / 'summary.csv'}, {sweep_dir / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
