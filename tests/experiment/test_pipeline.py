"""The whole train.py path through Hydra's compose API: build, original (trained, then reused),
two fooling steps, evaluation, report.json, figure, a real offline W&B run."""
import json
from pathlib import Path

from interpfool.experiment.pipeline import run
from conftest import TINY


def test_two_step_run_writes_report_figure_and_wandb(compose_cfg, tmp_path, capsys):
    cfg = compose_cfg(TINY + [f"cache_dir={tmp_path / 'cache'}", "logger=wandb"])
    report = run(cfg, tmp_path / "run1")
    out = capsys.readouterr().out
    assert "training it" in out and report["original"]["status"] == "trained"
    assert report["steps"] == 2
    saved = json.loads((tmp_path / "run1" / "report.json").read_text())
    assert saved["fsr"]["gradcam"]["theta_star"] == report["fsr"]["gradcam"]["theta_star"]
    assert 0 <= saved["accuracy"]["theta0"]["top1"] <= 1 and "localisation" in saved
    assert saved["n_images"] == 16
    assert Path(saved["paths"]["figure"]).stat().st_size > 1000
    runs = list((tmp_path / "run1" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb")), "an offline W&B run with its data file"
    assert f"wandb:   {runs[0]}" in out and "report:" in out and "figure:" in out
    # The second run reuses the cached original and says so.
    report2 = run(compose_cfg(TINY + [f"cache_dir={tmp_path / 'cache'}", "logger=csv"]), tmp_path / "run2")
    assert report2["original"]["status"] == "reused" and "reusing cached" in capsys.readouterr().out
    assert report2["accuracy"]["theta0"] == report["accuracy"]["theta0"]
    assert (tmp_path / "run2" / "csv" / "metrics.csv").is_file()
