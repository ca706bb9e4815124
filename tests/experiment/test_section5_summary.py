"""section5_summary on hand-written report.json files: mean ± std (ddof = 1) over seeds by hand, within_budget per
seed, and --update keeping the studies the JSON already holds (the other data set's rows)."""
import json
import math

from interpfool.experiment import section5_summary


def adv_report(seed: int, top1: tuple[float, float, float], within: bool) -> dict:
    phases = {p: {"top1": t, "top1_pgd": 0.1 * (i + 1), "fsr": 0.5 * i, "images": 400}
              for i, (p, t) in enumerate(zip(("theta0", "theta_adv", "theta_star"), top1))}
    return {"job": "adv_fooling", "seed": seed, "data": "synthetic", "interpreter": "gradcam", "split": "test",
            "adversarial": {"kind": "free"}, "pgd": {"steps": 10}, "phases": phases, "top1_drop_points": 1.0 + seed,
            "selected": {"step": 50 * (seed + 1), "within_budget": within}}


def write(folder, report):
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(report))


def test_adv_rows_mean_std_by_hand_and_update_keeps_other_studies(tmp_path):
    sweep = tmp_path / "synthetic_adv_fooling"
    top1s = [(0.99, 0.90, 0.88), (0.97, 0.80, 0.79), (1.00, 0.85, 0.80)]
    for seed, (t, w) in enumerate(zip(top1s, (True, False, True))):
        write(sweep / str(seed), adv_report(seed, t, w))
    kept = {**section5_summary.adv_summary([{**adv_report(0, (0.913, 0.838, 0.838), True), "data": "fashionmnist"}]),
            "kind": "adv_fooling", "sweep": "elsewhere"}
    out, md = tmp_path / "s.json", tmp_path / "s.md"
    out.write_text(json.dumps({"fmnist_adv_fooling": kept, "synthetic_adv_fooling": {**kept, "stale": 1}}))
    summary = section5_summary.main([str(sweep), "--json", str(out), "--update", "--md", str(md)])
    saved = json.loads(out.read_text())
    assert list(saved) == ["fmnist_adv_fooling", "synthetic_adv_fooling"]   # order kept, entry replaced
    assert saved["fmnist_adv_fooling"] == kept and "stale" not in saved["synthetic_adv_fooling"]
    rows = md.read_text().splitlines()
    assert "| fashionmnist | theta_adv | 83.8 ± 0.0 |" in rows[3] and "| synthetic | theta_adv | 85.0 ± 5.0 |" in rows[6]
    s = summary["synthetic_adv_fooling"]
    adv = [100 * t[1] for t in top1s]                                       # theta_adv top-1 in percent: 90, 80, 85
    mean = sum(adv) / 3
    assert math.isclose(s["phases"]["theta_adv"]["top1"]["mean"], 85.0)
    assert math.isclose(s["phases"]["theta_adv"]["top1"]["std"],
                        math.sqrt(sum((a - mean) ** 2 for a in adv) / 2))   # ddof = 1: 5.0
    assert s["within_budget"] == [True, False, True] and s["selected_steps"] == [50, 100, 150]
    assert math.isclose(s["top1_drop_points_vs_theta_adv"]["std"], 1.0)     # 1, 2, 3


def test_without_update_the_json_holds_only_the_sweeps_given(tmp_path):
    sweep = tmp_path / "synthetic_adv_fooling"
    write(sweep / "0", adv_report(0, (0.9, 0.8, 0.7), True))
    out = tmp_path / "s.json"
    out.write_text(json.dumps({"fmnist_adv_fooling": {"kind": "adv_fooling"}}))
    section5_summary.main([str(sweep), "--json", str(out)])
    saved = json.loads(out.read_text())
    assert list(saved) == ["synthetic_adv_fooling"]
    assert saved["synthetic_adv_fooling"]["phases"]["theta_star"]["top1"]["std"] == 0.0   # one seed: no spread
