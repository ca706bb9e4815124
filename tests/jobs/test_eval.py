"""eval.py's suite on tiny fooled runs: report, per-image CSV, figures, AOPC, noise curves, the
transfer matrix of two runs; active fooling through the whole pipeline; bad checkpoints -> exit 2."""
import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from interpfool.experiment.cli import BadInput, preflight
from interpfool.jobs.eval import run_eval
from interpfool.jobs.train import run
from tiny_run import TINY
from tiny_run import compose as _compose

ROOT = Path(__file__).resolve().parents[2]
SUITE = ["eval.aopc.images=4", "eval.aopc.steps=3", "eval.aopc.cell=8", "eval.robustness.sigmas=[0.0,0.1]",
         "eval.robustness.trials=1", "eval.figure_images=2", "logger=csv"]



@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two 2-step Top-k runs (through Grad-CAM and LRP_T) sharing one cached original."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for interp in ("gradcam", "lrpT"):
        cfg = _compose("config", TINY + [f"cache_dir={root / 'cache'}", "logger=csv", "experiment=synthetic_topk",
                                         f"interp={interp}", "eval.interpreters=[gradcam,lrpT]"])
        run(cfg, root / interp)
        out[interp] = root / interp
    out["cache"] = root / "cache"
    return out


def test_eval_of_one_run_writes_report_csv_and_figures(runs, tmp_path):
    argv = [f"ckpt={runs['gradcam']}", "data.val_size=8"] + SUITE
    cfg = _compose("eval", argv)
    report = run_eval(cfg, tmp_path, argv)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["fooling_name"] == "topk" and saved["interpreter"] == "gradcam"
    assert saved["n_images"] == 8, "data.val_size=8 on the eval command line overrides the run's 16"
    assert set(saved["fsr"]) == {"gradcam", "lrpT", "simplegT", "lrp"} == set(saved["similarity"])
    assert set(saved["fidelity"]) == {"top1_agreement", "kl_p0_pstar"}
    assert saved["original_ckpt"].startswith(str(runs["cache"]))
    rows = list(csv.DictReader(open(tmp_path / "test_losses.csv")))
    assert len(rows) == 8 * 4 * 2 and set(rows[0]) == {"image", "interpreter", "model", "class", "test_loss", "success"}
    aopc = saved["aopc"]
    assert set(aopc["aopc"]["theta_star"]) == {"morf_h0", "lerf_h0", "morf_hstar", "lerf_hstar", "random"}
    assert aopc["images"] == 4 and len(aopc["curves"]["theta0"]["random"]) == 4
    rob = saved["robustness"]
    assert rob["sigmas"] == [0.0, 0.1]
    assert rob["theta_star"]["top1"][0] == pytest.approx(saved["accuracy"]["theta_star"]["top1"])
    for key in ("figure", "aopc", "robustness"):
        assert Path(saved["paths"][key]).stat().st_size > 1000
    assert report["top1_drop_points"] == saved["top1_drop_points"]


def test_eval_of_two_runs_writes_the_transfer_matrix(runs, tmp_path):
    argv = [f"ckpt=[{runs['gradcam']},{runs['lrpT'] / 'fooled.pt'}]", "eval.interpreters=[gradcam,lrpT]",
            "eval.aopc.images=0", "eval.robustness.sigmas=[]", "logger=csv", "eval.figure_images=1"]
    result = run_eval(_compose("eval", argv), tmp_path, argv)
    matrix = result["transfer_matrix"]
    assert list(matrix) == ["gradcam", "lrpT"] and all(set(r) == {"gradcam", "lrpT"} for r in matrix.values())
    table = (tmp_path / "transfer_matrix.md").read_text()
    assert "| fooled through | gradcam | lrpT |" in table
    assert (tmp_path / "transfer_matrix.png").stat().st_size > 1000
    original = json.loads((runs["gradcam"] / "report.json").read_text())
    assert matrix["gradcam"]["gradcam"] == original["fsr"]["gradcam"]["theta_star"]


def test_bad_checkpoints_give_one_line(runs, tmp_path):
    for ckpt, expected in ((tmp_path / "nope.pt", "does not exist"), (tmp_path, "folder without fooled.pt")):
        with pytest.raises(BadInput, match=expected):
            run_eval(_compose("eval", [f"ckpt={ckpt}"] + SUITE), tmp_path / "out", [])
    wrong = tmp_path / "wrong.pt"
    torch.save({"features.0.weight": torch.zeros(3)}, wrong)
    argv = [f"ckpt={wrong}", f"original_ckpt={runs['cache'] / 'originals' / next(os.walk(runs['cache'] / 'originals'))[2][0]}"]
    with pytest.raises(BadInput, match="does not fit SmallVGG") as err:
        run_eval(_compose("eval", argv + SUITE + TINY), tmp_path / "out", argv)
    assert "\n" not in str(err.value)
    with pytest.raises(BadInput, match="ckpt is required"):
        run_eval(_compose("eval", SUITE), tmp_path / "out", [])
    with pytest.raises(SystemExit):
        preflight("eval", ["fooling=nothing"])


def test_eval_py_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "INTERPFOOL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(ROOT / "eval.py"), f"ckpt={tmp_path / 'missing.pt'}",
                           f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ckpt=") and "does not exist" in lines[0]


def test_active_fooling_runs_through_the_pipeline(runs, tmp_path):
    """CombinedLoader of images and collages, two val loaders, FSR per class on held-out collages."""
    cfg = _compose("config", TINY + [f"cache_dir={runs['cache']}", "logger=csv", "experiment=synthetic_active",
                                     "data.collage_train_size=8", "data.collage_val_size=4",
                                     "eval.interpreters=[gradcam]"])
    report = run(cfg, tmp_path / "active")
    assert report["steps"] == 2 and report["original"]["status"] == "reused"
    assert report["n_images"] == 16 and report["n_fsr_images"] == 4
    per_class = report["fsr_per_class"]["gradcam"]["theta_star"]
    assert set(per_class) == {"c1", "c2"}
    assert report["fsr"]["gradcam"]["theta_star"] == pytest.approx((per_class["c1"] + per_class["c2"]) / 2)
    rows = list(csv.DictReader(open(tmp_path / "active" / "test_losses.csv")))
    assert {r["class"] for r in rows} == {"c1", "c2"} and len(rows) == 4 * 2 * 2
    logged = (tmp_path / "active" / "csv" / "metrics.csv").read_text().splitlines()[0]
    for key in ("val/acc_top1", "val/fsr/gradcam/c1", "val/fsr/gradcam/c2", "val/penalty", "val/test_loss"):
        assert key in logged
    with pytest.raises(BadInput, match="collage_train_size=0"):
        from interpfool.experiment.build import checked_build
        checked_build(_compose("config", ["fooling=active"]))


def test_transfer_matrix_function_evaluates_each_fooled_pair(runs):
    """``transfer_matrix`` on (theta0, theta*) pairs equals the FSR rows that train.py reported."""
    from interpfool.jobs.eval import load_state, resolve_ckpt
    from interpfool.experiment.evaluate import transfer_matrix
    from interpfool.experiment.build import checked_build, interp_factory
    cfg = _compose("config", TINY + [f"cache_dir={runs['cache']}", "experiment=synthetic_topk"])
    built = checked_build(cfg)
    original = next((runs["cache"] / "originals").glob("*.pt"))
    net0 = load_state(built.net, original, "original")
    pairs = {}
    for interp in ("gradcam", "lrpT"):
        fooled = load_state(copy.deepcopy(net0), resolve_ckpt(runs[interp])[0], "ckpt")
        pairs[interp] = (net0, fooled)
    interps = {n: interp_factory(n) for n in ("gradcam", "lrpT")}
    matrix = transfer_matrix(pairs, interps, built.fooling, built.data.val_dataloader())
    for interp in ("gradcam", "lrpT"):
        reported = json.loads((runs[interp] / "report.json").read_text())["fsr"]
        assert matrix[interp] == {n: reported[n]["theta_star"] for n in ("gradcam", "lrpT")}


def test_eval_defenses_report_fsr_before_and_after_and_aopc_on_theta0(runs, tmp_path):
    argv = [f"ckpt={runs['gradcam']}", "data.val_size=8", "eval.defenses=[noise:2,path:2,layer,score]"] + SUITE
    saved = run_eval(_compose("eval", argv), tmp_path, argv)
    rows = saved["defenses"]["defenses"]
    assert list(rows) == ["none", "noise:2", "path:2", "layer", "score"]
    # the undefended row is the report's own FSR of the fooled interpreter
    assert rows["none"]["fsr_theta_star"] == pytest.approx(saved["fsr"]["gradcam"]["theta_star"])
    assert rows["none"]["fsr_theta0"] == pytest.approx(saved["fsr"]["gradcam"]["theta0"])
    for spec in ("noise:2", "path:2", "layer", "score"):
        r = rows[spec]
        assert r["fsr_undone"] == pytest.approx(rows["none"]["fsr_theta_star"] - r["fsr_theta_star"])
        assert 0.0 <= r["fsr_theta_star"] <= 1.0 and r["aopc_theta0_morf"] == r["aopc_theta0_morf"]
    # AOPC of the undefended map on theta0 is the suite's own (same settings)
    assert rows["none"]["aopc_theta0_morf"] == pytest.approx(saved["aopc"]["aopc"]["theta0"]["morf_h0"])


def test_train_py_reports_defenses_without_aopc(runs, tmp_path):
    cfg = _compose("config", TINY + [f"cache_dir={runs['cache']}", "logger=csv", "experiment=synthetic_topk",
                                     "eval.defenses=[score,noise:2]"])
    report = run(cfg, tmp_path / "run")
    rows = report["defenses"]["defenses"]
    assert list(rows) == ["none", "score", "noise:2"]
    assert rows["none"]["fsr_theta_star"] == pytest.approx(report["fsr"]["gradcam"]["theta_star"])
    assert "aopc_theta0_morf" not in rows["score"]      # train.py's config has no eval.aopc
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["defenses"] == report["defenses"]


def test_a_defense_that_does_not_apply_to_the_method_is_recorded_not_run(runs):
    from interpfool.experiment.build import checked_build
    from interpfool.experiment.evaluate import evaluate_defenses
    from interpfool.experiment.build import eval_loaders, interp_factory
    cfg = _compose("config", TINY + [f"cache_dir={runs['cache']}", "experiment=synthetic_topk"])
    built = checked_build(cfg)
    loader, _ = eval_loaders(built.data, "val", built.fooling)
    out = evaluate_defenses(built.net, built.net, loader, interp_factory("simpleg"), built.fooling, ["layer", "score"])
    assert list(out["defenses"]) == ["none", "score"]
    assert "explains the input, not a layer" in out["not_applicable"]["layer"]


def test_integration_budget_averages_fewer_maps_of_a_sampled_method(runs):
    """eval.integration_budget=4 on a 2-sample SmoothGrad: the noise and path rows are noise:2 / path:2 exactly, the
    other defenses and a one-pass method's rows as without a budget; a bad budget is an error, not 'not applicable'."""
    from interpfool.experiment.build import checked_build, eval_loaders, interp_factory
    from interpfool.experiment.evaluate import evaluate_defenses
    cfg = _compose("config", TINY + [f"cache_dir={runs['cache']}", "experiment=synthetic_topk"])
    built = checked_build(cfg)
    loader, _ = eval_loaders(built.data, "val", built.fooling)
    sg = interp_factory("smoothgrad", n=2, seed=3)       # seeded: the same maps in both calls
    budget = evaluate_defenses(built.net, built.net, loader, sg, built.fooling, ["noise", "path", "score"],
                               integration_budget=4)["defenses"]
    plain = evaluate_defenses(built.net, built.net, loader, sg, built.fooling, ["noise:2", "path:2", "score"])["defenses"]
    assert budget["noise"]["spec"] == "noise:2" and budget["path"]["spec"] == "path:2" and "spec" not in budget["score"]
    for spec, given in (("noise", "noise:2"), ("path", "path:2"), ("score", "score")):
        assert {k: v for k, v in budget[spec].items() if k != "spec"} == plain[given]
    one_pass = evaluate_defenses(built.net, built.net, loader, interp_factory("gradcam"), built.fooling, ["noise"],
                                 integration_budget=4)["defenses"]
    assert one_pass["noise"]["spec"] == "noise:4"
    with pytest.raises(ValueError, match="eval.integration_budget=0"):
        evaluate_defenses(built.net, built.net, loader, sg, built.fooling, ["noise"], integration_budget=0)
