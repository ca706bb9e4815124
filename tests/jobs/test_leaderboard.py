"""The leaderboard summary on a real tiny run and a copy of it as a second seed with edited numbers: records per
cell and defense (mean and ddof-1 std by hand), the ranking, the defense ranking, the page and the figure."""
import json
import shutil
import statistics

import pytest

from interpfool.jobs.leaderboard import defense_ranking, hardest, leaderboard_records, main, rankings
from interpfool.jobs.train import run
from tiny_run import TINY, compose



@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    run(compose("config", TINY + [f"cache_dir={root / 'cache'}", "logger=csv", "eval.interpreters=[gradcam,lrpT]",
                         "eval.defenses=[score,noise:2]"]), root / "sweep" / "0")
    shutil.copytree(root / "sweep" / "0", root / "sweep" / "1")
    path = root / "sweep" / "1" / "report.json"
    r = json.loads(path.read_text())
    r["seed"] = 1
    r["fsr"]["gradcam"]["theta_star"] = 0.25
    r["top1_drop_points"] = 3.0
    r["defenses"]["defenses"]["score"]["fsr_theta_star"] = 0.5
    path.write_text(json.dumps(r))
    return root / "sweep"


def test_records_are_means_and_stds_over_seeds_per_defense(sweep):
    r0 = json.loads((sweep / "0" / "report.json").read_text())
    recs = leaderboard_records([sweep], budget=2.0)
    assert [r["defense"] for r in recs] == ["none", "score", "noise:2"]
    none, score = recs[0], recs[1]
    values = [r0["fsr"]["gradcam"]["theta_star"], 0.25]
    assert none["fsr_mean"] == pytest.approx(statistics.fmean(values))
    assert none["fsr_std"] == pytest.approx(statistics.stdev(values))
    assert none["top1_drop_mean"] == pytest.approx((r0["top1_drop_points"] + 3.0) / 2)
    assert none["within_budget"] == (none["top1_drop_mean"] <= 2.0)
    assert score["fsr_mean"] == pytest.approx((r0["defenses"]["defenses"]["score"]["fsr_theta_star"] + 0.5) / 2)
    assert none["seeds"] == [0, 1] and set(none["transfer_fsr_mean"]) == {"gradcam", "lrpT"}
    ranked = rankings(recs)
    assert list(ranked) == ["synthetic / small_vgg / location"]
    rows = {d: (b, a, g, n) for d, b, a, g, n in defense_ranking(recs, min_fsr=0.0, budget_only=False)
            ["synthetic / small_vgg"]}
    assert rows["score"] == pytest.approx((100 * none["fsr_mean"], 100 * score["fsr_mean"],
                                           100 * (none["fsr_mean"] - score["fsr_mean"]), 1))
    assert defense_ranking(recs, min_fsr=none["fsr_mean"] + 0.01, budget_only=False) == {}   # the attacker lost
    assert hardest(recs)["synthetic / small_vgg"] == [("gradcam", pytest.approx(100 * none["fsr_mean"]),
                                                       none["within_budget"])]


def test_cli_writes_json_page_and_figure(sweep, tmp_path):
    doc = tmp_path / "leaderboard.md"
    doc.write_text("# Leaderboard\n\nhand-written intro\n\n<!-- GENERATED: leaderboard begin -->\nold\n"
                   "<!-- GENERATED: leaderboard end -->\n\nhand-written outro\n")
    assert main([str(sweep), "--json", str(tmp_path / "lb.json"), "--doc", str(doc),
                 "--figure", str(tmp_path / "lb.png")]) == 0
    text = doc.read_text()
    assert "hand-written intro" in text and "hand-written outro" in text and "old" not in text
    assert "| 1 | gradcam" in text and "### Summary per model family" in text
    assert len(json.loads((tmp_path / "lb.json").read_text())) == 3
    assert (tmp_path / "lb.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
