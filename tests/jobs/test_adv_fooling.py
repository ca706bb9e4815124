"""experiment=adv_fooling (Heo et al. 2019, Fig. 4c): the three phases end to end on tiny data, the summary over
seeds, and the one-line refusals."""
import json
from pathlib import Path

import pytest

from interpfool.experiment.cli import BadInput
from interpfool.jobs.adv_fooling import run
from tiny_run import TINY

SMALL = ["experiment=adv_fooling", *TINY, "trainer.max_steps=4", "trainer.val_check_interval=2",
         "adv_fooling.steps=4", "adv_fooling.val_every=2", "adversarial.replays=2", "adversarial.pgd_steps=2",
         "adv_fooling.figure_images=2", "logger=csv"]


def test_adv_fooling_needs_free_adversarial_training(compose_cfg, tmp_path):
    with pytest.raises(BadInput, match="adversarial.kind=none"):
        run(compose_cfg(SMALL + ["adversarial=none", f"cache_dir={tmp_path}"]), tmp_path / "run")
    with pytest.raises(BadInput, match="fooling=active"):
        run(compose_cfg(SMALL + ["fooling=active", "data.collage_train_size=8", "data.collage_val_size=4",
                                 f"cache_dir={tmp_path}"]), tmp_path / "run")


@pytest.mark.slow
def test_three_phases_report_curve_figure_and_summary(compose_cfg, tmp_path):
    from interpfool.experiment import section5_summary

    for seed in (0, 1):
        report = run(compose_cfg(SMALL + [f"seed={seed}", f"cache_dir={tmp_path / 'cache'}"]), tmp_path / "m" / str(seed))
        phases = [row["phase"] for row in report["curve"]]
        # phase 1 once, phase 2 validated at steps 2 and 4, phase 3 (offset by phase 2's 4 steps) at 6 and 8
        assert phases == ["theta0", "theta_adv", "theta_adv", "theta_star", "theta_star"]
        assert [row["step"] for row in report["curve"]] == [0, 2, 4, 6, 8]
        assert all(0 <= row["top1_pgd"] <= 1 for row in report["curve"])
        assert "fsr" in report["curve"][-1]
        for phase in ("theta0", "theta_adv", "theta_star"):
            numbers = report["phases"][phase]
            assert numbers["top1_pgd"] <= 1 and numbers["images"] == report["n_images"] == 16 and 0 <= numbers["fsr"] <= 1
        # phase 3 starts from phase 2's weights: its evaluation compares theta_adv (as theta0) with theta*
        assert report["accuracy"]["theta0"]["top1"] == report["phases"]["theta_adv"]["top1"]
        assert Path(report["paths"]["adv_fooling_figure"]).stat().st_size > 5000
        assert (tmp_path / "m" / str(seed) / "theta_adv.pt").is_file()
    summary = section5_summary.main([str(tmp_path / "m"), "--json", str(tmp_path / "s.json"),
                                     "--figures", str(tmp_path / "fig")])
    s = summary["m"]
    assert s["kind"] == "adv_fooling" and s["seeds"] == [0, 1]
    assert s["phases"]["theta0"]["top1"]["n"] == 2
    assert json.loads((tmp_path / "s.json").read_text())["m"]["phases"]["theta_star"]["top1_pgd"]["n"] == 2
    assert (tmp_path / "fig" / "section5_m.png").is_file()
