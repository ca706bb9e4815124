"""experiment=attacks end to end on a tiny run: report.json keys, eps=0 = clean accuracy, curves that make sense,
figures, the input-vs-model table, a fooled checkpoint evaluated on the same images, one-line bad input."""
import json
from pathlib import Path

import pytest

from interpfool.experiment.cli import BadInput
from interpfool.jobs.attacks import main as summary_main
from interpfool.jobs.attacks import run
from interpfool.jobs.train import run as train_run
from tiny_run import TINY

SMALL = ["experiment=attacks", "attacks.images=8", "attacks.batch_size=4", "attacks.eps=[0,0.03,0.3]",
         "attacks.steps=2", "attacks.explanation.steps=2", "attacks.figure_images=2"]


@pytest.fixture(scope="module")
def fooled_run(tmp_path_factory):
    """A two-step Location fooling of the tiny theta0 (its run folder) and the shared cache."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from interpfool.experiment.cli import CONF_DIR
    root = tmp_path_factory.mktemp("attacks")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=TINY + [f"cache_dir={root / 'cache'}", "logger=csv"])
    GlobalHydra.instance().clear()
    train_run(cfg, root / "fooled")
    return root


def test_tiny_attacks_run_writes_report_tables_and_figures(compose_cfg, fooled_run, tmp_path, capsys):
    cfg = compose_cfg(TINY + SMALL + [f"cache_dir={fooled_run / 'cache'}",
                                      f"attacks.fooled_ckpt={fooled_run / 'fooled'}"])
    report = run(cfg, tmp_path / "run")
    assert report["original"]["status"] == "reused"
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    for key in ("accuracy", "clean_top1", "eps", "explanation", "lecture_figure", "reference", "fooled_ckpt",
                "n_images", "seed", "split"):
        assert key in saved, key
    assert saved["n_images"] == 8 and saved["split"] == "val"
    assert set(saved["accuracy"]) == {"fgsm", "gradient_step", "bim", "pgd", "noise"}
    for method, accs in saved["accuracy"].items():
        assert len(accs) == 3 and accs[0] == saved["clean_top1"], method         # eps = 0: the clean images
        assert all(0 <= a <= 1 for a in accs)
    assert saved["accuracy"]["pgd"][2] <= saved["accuracy"]["pgd"][0]
    results = saved["explanation"]["results"]
    assert set(results) == {"location", "topk", "center_mass"}
    for name, r in results.items():
        assert r["prediction_kept"] == 1.0                                          # select=best keeps it
        assert 0 <= r["fsr_attack"] <= 1 and 0 <= r["fsr_noise"] <= 1
    assert "model_manipulation" in results["location"] and "model_manipulation" not in results["topk"]
    assert saved["fooled_ckpt"]["fooling"] == "location"
    assert saved["reference"]["foolings"]["location"]["fsr_mean"] == 1.0           # docs/results/synthetic.json
    assert len(saved["lecture_figure"]["images"]) == 2
    for name in ("lecture_figure.png", "accuracy_vs_eps.png"):
        assert (tmp_path / "run" / name).stat().st_size > 5000
    table = (tmp_path / "run" / "report.md").read_text()
    assert "FSR input attack" in table and "| FGSM |" in table and "reference runs" in table
    # pooling two seeds' runs
    run(compose_cfg(TINY + SMALL + [f"cache_dir={fooled_run / 'cache'}", "seed=1", "original.seed=0"]),
        tmp_path / "run1")
    summary_main(["summary", str(tmp_path / "run"), str(tmp_path / "run1"), "--json", str(tmp_path / "a.json"),
                  "--table", str(tmp_path / "a.md"), "--figure-dir", str(tmp_path / "fig")])
    rows = json.loads((tmp_path / "a.json").read_text())
    assert len(rows) == 1 and rows[0]["seeds"] == [0, 1] and len(rows[0]["accuracy"]["fgsm"]["std"]) == 3
    assert any(Path(tmp_path / "fig").glob("*.png")) and "± " in (tmp_path / "a.md").read_text()


@pytest.mark.parametrize("override,expected", [
    ("attacks.methods=[fgsm,cw]", "attacks.methods=['fgsm', 'cw']; allowed"),
    ("attacks.explanation.foolings=[active]", "attacks.explanation.foolings=['active']; allowed"),
    ("attacks.clamp=[1.0,0.0]", "attacks.clamp=[1.0, 0.0]; allowed"),
    ("attacks.fooled_ckpt=/nonexistent", "attacks.fooled_ckpt='/nonexistent'"),
])
def test_bad_attack_settings_are_one_line(compose_cfg, tmp_path, override, expected):
    cfg = compose_cfg(TINY + SMALL + [f"cache_dir={tmp_path / 'cache'}", override, "original.epochs=1"])
    with pytest.raises(BadInput, match=expected.replace("[", r"\[").replace("]", r"\]")):
        run(cfg, tmp_path / "run")
