"""The audit's calibration driver: every fooled run below a folder, every control and its Lerma-shifted copy,
audited alone and against the original; rates per kind and mode; audits already written are read back."""
import json

import pytest

from interpfool.experiment.cli import BadInput
from interpfool.jobs.audit_calibration import attacker_won, fooled_runs, main, rates, rates_table
from interpfool.jobs.train import run
from tiny_run import TINY
from tiny_run import compose as _compose


def test_rates_count_verdicts_and_flags_per_kind_and_mode():
    audits = [{"kind": "fooled", "mode": "alone", "verdict": "manipulated", "flags": {"a": True, "b": False}},
              {"kind": "fooled", "mode": "alone", "verdict": "no evidence of manipulation",
               "flags": {"a": False, "b": False}},
              {"kind": "control", "mode": "reference", "verdict": "manipulated", "flags": {"a": False, "b": True}}]
    r = rates(audits)
    assert r["fooled"]["alone"] == {"n": 2, "rate": 0.5, "flags": {"a": 0.5, "b": 0.0}}
    assert r["control"]["reference"] == {"n": 1, "rate": 1.0, "flags": {"a": 0.0, "b": 1.0}}
    table = rates_table(r)
    assert "| fooled (leaderboard), all | 2 | 50.0% | - |" in table
    assert "| lambda = 0 control | 1 | - | 100.0% |" in table


def test_attacker_won_needs_fsr_of_its_own_interpreter_and_the_budget(tmp_path):
    def report(fsr, drop, interp="gradcam"):
        (tmp_path / "report.json").write_text(json.dumps({
            "interpreter": interp, "top1_drop_points": drop,
            "fsr": {"gradcam": {"theta0": 0.0, "theta_star": fsr}, "simpleg": {"theta0": 0.0, "theta_star": 1.0}}}))
        return attacker_won(tmp_path)
    assert report(0.5, 2.0)
    assert not report(0.49, 0.0)
    assert not report(0.9, 2.25)                  # over the top-1 budget: not a win
    assert not report(0.1, 0.0, "gradcam")        # another interpreter's FSR does not count
    assert report(0.1, 0.0, "simpleg")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    common = TINY + [f"cache_dir={root / 'cache'}", "logger=csv"]
    run(_compose("config", common), root / "sweep" / "0")
    run(_compose("config", common + ["fooling.lam=0"]), root / "control")
    return root


def test_calibration_audits_every_model_in_both_modes_and_reads_written_audits_back(runs, tmp_path):
    args = ["--fooled", str(runs / "sweep"), "--controls", str(runs / "control"), "--out", str(tmp_path / "a"),
            "--json", str(tmp_path / "c.json"), "--images", "16", "--aopc-images", "0", "--lerma-k", "10"]
    result = main(args)
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["rates"] == result["rates"]
    assert [(a["kind"], a["mode"]) for a in saved["audits"]] == [
        ("control", "alone"), ("control", "reference"), ("lerma", "alone"), ("lerma", "reference"),
        ("fooled", "alone"), ("fooled", "reference")]
    assert all(saved["rates"][k][m]["n"] == 1 for k in ("fooled", "control", "lerma") for m in ("alone", "reference"))
    assert {a["interpreter"] for a in saved["audits"]} == {"gradcam"}     # TINY fools Grad-CAM; controls: gradcam
    assert saved["rates_by_interpreter"]["gradcam"] == saved["rates"]
    fooled = [a for a in saved["audits"] if a["kind"] == "fooled"]
    won = attacker_won(runs / "sweep" / "0")
    assert all(a["attacker_won"] == won for a in fooled)
    assert ("fooled_won" in saved["rates"]) == won
    lerma = [a for a in saved["audits"] if a["kind"] == "lerma"]
    assert all(a["flags"]["hidden_logit_shift"] and a["verdict"] == "manipulated" for a in lerma)
    assert all("fsr" in a["evidence"] for a in saved["audits"] if a["mode"] == "reference")
    assert not any("fsr" in a["evidence"] for a in saved["audits"] if a["mode"] == "alone")
    written = sorted((tmp_path / "a").rglob("audit.json"))
    assert len(written) == 6
    stamps = [p.stat().st_mtime_ns for p in written]
    assert main(args)["rates"] == result["rates"]                     # read back, not recomputed
    assert [p.stat().st_mtime_ns for p in written] == stamps


def test_controls_are_audited_through_each_control_interpreter(runs, tmp_path):
    result = main(["--fooled", str(runs / "sweep"), "--controls", str(runs / "control"), "--out", str(tmp_path),
                   "--images", "16", "--aopc-images", "0", "--interpreter", "simpleg",
                   "--control-interpreters", "gradcam", "simpleg"])
    assert [(a["kind"], a["interpreter"]) for a in result["audits"] if a["mode"] == "alone"] == [
        ("control", "gradcam"), ("lerma", "gradcam"), ("control", "simpleg"), ("lerma", "simpleg"),
        ("fooled", "simpleg")]
    assert result["rates_by_interpreter"]["simpleg"]["control"]["alone"]["n"] == 1
    assert result["rates"]["control"]["alone"]["n"] == 2


def test_calibration_refuses_a_control_without_weights_and_a_missing_folder(runs, tmp_path):
    assert fooled_runs([runs / "sweep"]) == [runs / "sweep" / "0"]
    with pytest.raises(BadInput, match="--controls"):
        main(["--fooled", str(runs / "sweep"), "--controls", str(tmp_path), "--out", str(tmp_path / "o")])
    with pytest.raises(BadInput, match="--fooled"):
        main(["--fooled", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
