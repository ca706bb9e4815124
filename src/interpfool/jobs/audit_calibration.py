"""Calibrate the manipulation audit (``python eval.py audit``) on models whose history is known.

    python -m interpfool.jobs.audit_calibration --fooled <sweep or run folders> --controls <run folders> \\
        --out runs/audit_calibration --json docs/results/audit_calibration.json [--lerma-k 10] \\
        [--images 100] [--aopc-images 50] [--aopc-steps 49] [--cache-dir DIR]

Every run folder below ``--fooled`` (a ``fooled.pt`` next to its ``config.yaml``: the leaderboard's fooled
checkpoints) is a manipulated model; every ``--controls`` run (the same fine-tuning with lambda = 0) is an honest
one; each control with a Lerma & Lucas (2023) pre-softmax shift of ``K = --lerma-k`` (eq. 2: the logits plus K on
one position, which the softmax cannot see) is a manipulated one. Each model is audited twice, alone and against
its original (``audit.reference=original``: the cached theta0 of its run's config), with the thresholds of
``conf/audit.yaml`` (set on synthetic seed 0 before these models existed: docs/defenses_audit.md). The JSON holds
every audit's flags and verdict and, per kind of model and audit mode, the share called "manipulated": the
detection rate for fooled and Lerma-shifted models (and for the fooled runs whose attack succeeded, ``fooled_won``:
FSR >= 50% within 2 top-1 points), the false-alarm rate for controls. Audits already written
(``<out>/<kind>/<name>/<interpreter>/<mode>/audit.json``) are read back, not recomputed. A fooled run is audited
through the interpreter it was fooled through (``--interpreter fooled``: the auditor checks the method in use), the
controls and their shifted copies through each of ``--control-interpreters``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from interpfool.experiment.cli import BadInput, compose_config, guarded
from interpfool.jobs.leaderboard import is_win

MODES = {"alone": [], "reference": ["audit.reference=original"]}


def fooled_runs(folders: list[Path]) -> list[Path]:
    """Every finished run folder (``fooled.pt``, ``config.yaml``, ``report.json``) at or below ``folders``, sorted."""
    runs = []
    for folder in folders:
        if not folder.is_dir():
            raise BadInput(f"--fooled {str(folder)!r} is not a folder; allowed: sweep or run folders of train.py")
        runs += [p.parent for p in folder.rglob("fooled.pt")
                 if (p.parent / "config.yaml").is_file() and (p.parent / "report.json").is_file()]
    return sorted(set(runs))


def audit_once(run_dir: Path, out_dir: Path, extra: list[str]) -> dict:
    """The audit of one run (read back when ``out_dir/audit.json`` exists)."""
    done = out_dir / "audit.json"
    if done.is_file():
        return json.loads(done.read_text())
    from interpfool.jobs.audit import run_audit
    argv = [f"ckpt={run_dir}", *extra]
    return run_audit(compose_config("audit", argv), out_dir, argv)


def rates(audits: list[dict]) -> dict:
    """Per kind (fooled / lerma / control) and mode (alone / reference): the share of audits whose verdict is
    "manipulated" and the share raising each flag (in [0, 1]), with their count."""
    out: dict = {}
    for a in audits:
        cell = out.setdefault(a["kind"], {}).setdefault(a["mode"], {"n": 0, "manipulated": 0, "flags": {}})
        cell["n"] += 1
        cell["manipulated"] += a["verdict"] == "manipulated"
        for flag, raised in a["flags"].items():
            cell["flags"][flag] = cell["flags"].get(flag, 0) + bool(raised)
    for modes in out.values():
        for cell in modes.values():
            cell["rate"] = cell.pop("manipulated") / cell["n"]
            cell["flags"] = {k: v / cell["n"] for k, v in cell["flags"].items()}
    return out


def rates_table(summary: dict) -> str:
    """Markdown: detection (fooled, Lerma-shifted) and false-alarm (control) rates per audit mode."""
    lines = ["| models | n | called manipulated, alone | called manipulated, against the original |",
             "|---|---|---|---|"]
    names = {"fooled": "fooled (leaderboard), all", "fooled_won": "fooled, attacker won (FSR >= 50% in budget)",
             "lerma": "control + Lerma shift", "control": "lambda = 0 control"}
    for kind in ("fooled", "fooled_won", "lerma", "control"):
        if kind in summary:
            m = summary[kind]
            cells = [f"{100 * m[mode]['rate']:.1f}%" if mode in m else "-" for mode in MODES]
            n = max(c["n"] for c in m.values())
            lines.append(f"| {names[kind]} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def attacker_won(run_dir: Path) -> bool:
    """Whether a fooled run's attack succeeded by the leaderboard's rule (``leaderboard.is_win``), with theta*'s
    FSR through its own interpreter on the held-out split. A fooled run whose maps did not move is not evidence
    the audit should find, so its detection rate is reported apart."""
    report = json.loads((run_dir / "report.json").read_text())
    return is_win(report["fsr"][report["interpreter"]]["theta_star"], report["top1_drop_points"])


def run_interpreter(run_dir: Path) -> str:
    """The interpreter a run fooled (its report.json's registry name)."""
    report = run_dir / "report.json"
    if not report.is_file():
        raise BadInput(f"--interpreter fooled: {str(run_dir)!r} has no report.json; allowed: finished train.py runs, "
                       f"or name the interpreter (--interpreter gradcam)")
    return json.loads(report.read_text())["interpreter"]


def calibrate(fooled: list[Path], controls: list[Path], out: Path, lerma_k: float | None, small: list[str],
              interpreter: str = "fooled", control_interpreters: tuple[str, ...] = ("gradcam",)) -> dict:
    """Audit every model (see the module's docstring) in both modes. A fooled run is audited through
    ``interpreter`` ("fooled": the interpreter it was fooled through), a control and its Lerma-shifted copy
    through each of ``control_interpreters``."""
    jobs = []                        # the controls first: without them no rate means anything
    for run_dir in controls:
        if not (run_dir / "fooled.pt").is_file():
            raise BadInput(f"--controls {str(run_dir)!r} holds no fooled.pt; allowed: run folders of train.py "
                           f"with fooling.lam=0")
        for name in control_interpreters:
            jobs.append(("control", run_dir, [], name))
            if lerma_k is not None:
                jobs.append(("lerma", run_dir, [f"audit.presoftmax_k={lerma_k}"], name))
    jobs += [("fooled", r, [], run_interpreter(r) if interpreter == "fooled" else interpreter)
             for r in fooled_runs(fooled)]
    won = {r: attacker_won(r) for kind, r, _, _ in jobs if kind == "fooled"}
    audits = []
    for kind, run_dir, extra, interp in jobs:
        name = "_".join(run_dir.parts[-2:])
        for mode, ref in MODES.items():
            print(f"audit {kind} {run_dir} {interp} ({mode})", flush=True)
            result = audit_once(run_dir, out / kind / name / interp / mode,
                                extra + ref + small + [f"audit.interpreter={interp}"])
            audits.append({"kind": kind, "mode": mode, "run": str(run_dir), "interpreter": interp,
                           "verdict": result["verdict"], "flags": result["flags"], "evidence": result["evidence"]})
            if kind == "fooled":
                audits[-1]["attacker_won"] = won[run_dir]
    counted = audits + [dict(a, kind="fooled_won") for a in audits if a.get("attacker_won")]
    by_interp = {i: rates([a for a in counted if a["interpreter"] == i])
                 for i in dict.fromkeys(a["interpreter"] for a in audits)}
    return {"lerma_k": lerma_k, "settings": small, "rates": rates(counted), "rates_by_interpreter": by_interp,
            "audits": audits}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fooled", type=Path, nargs="+", required=True)
    p.add_argument("--controls", type=Path, nargs="*", default=[])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--json", type=Path)
    p.add_argument("--lerma-k", type=float, default=10.0)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--aopc-images", type=int, default=100)
    p.add_argument("--aopc-steps", type=int, default=100, help="cells perturbed (at most the image's cells)")
    p.add_argument("--interpreter", default="fooled", help="fooled (each run's own) or a registry name")
    p.add_argument("--control-interpreters", nargs="+", default=["gradcam"])
    p.add_argument("--cache-dir")
    a = p.parse_args(argv)
    if a.images < 1 or a.aopc_images < 0:
        raise BadInput(f"--images={a.images} / --aopc-images={a.aopc_images}: allowed: images >= 1, aopc-images >= 0")
    small = [f"audit.images={a.images}", f"audit.aopc.images={a.aopc_images}", f"audit.aopc.steps={a.aopc_steps}"]
    if a.cache_dir:
        small.append(f"cache_dir={a.cache_dir}")
    result = calibrate(a.fooled, a.controls, a.out, a.lerma_k, small, a.interpreter,
                       tuple(a.control_interpreters))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2))
    print(rates_table(result["rates"]))
    return result


if __name__ == "__main__":
    guarded(main, sys.argv[1:])
