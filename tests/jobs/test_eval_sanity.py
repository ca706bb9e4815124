"""eval.py's sanity checks (``eval.sanity.enabled=true``) on a tiny fooled run: sanity.json with one entry per
model, mode, interpreter and layer, similarity 1 at step 0, the edge-detector control at 1 everywhere, the figures,
and off by default."""
import json
from pathlib import Path

import pytest

from interpfool.jobs.eval import run_eval
from interpfool.jobs.train import run
from tiny_run import TINY
from tiny_run import compose as _compose

QUIET = ["eval.aopc.images=0", "eval.robustness.sigmas=[]", "eval.figure_images=1", "logger=csv"]



@pytest.fixture(scope="module")
def fooled(tmp_path_factory):
    root = tmp_path_factory.mktemp("sanity")
    run(_compose("config", TINY + [f"cache_dir={root / 'cache'}", "logger=csv"]), root / "run")
    return root / "run"


def test_sanity_checks_of_theta0_and_theta_star(fooled, tmp_path):
    argv = [f"ckpt={fooled}", "eval.sanity.enabled=true", "eval.sanity.images=4",
            "eval.sanity.interpreters=[gradcam,simpleg]", "eval.sanity.mode=cascading",
            "eval.sanity.figure_images=1", *QUIET]
    report = run_eval(_compose("eval", argv), tmp_path, argv)
    saved = json.loads((tmp_path / "sanity.json").read_text())
    assert report["sanity"]["verdict"] == saved["verdict"] and saved["images"] == 4
    results = saved["results"]
    assert set(results) == {"theta0", "theta_star"}
    for model in results.values():
        assert set(model) == {"cascading"}              # the independent mode: tests/sanity/test_checks.py
        for mode in model.values():
            assert mode["steps"][0] == "original" and len(mode["steps"]) == 7       # small_vgg: 6 layers
            assert set(mode["interpreters"]) == {"gradcam", "simpleg", "edge (control)"}
            for name, entry in mode["interpreters"].items():
                for metric in ("spearman_abs", "spearman_raw", "ssim"):
                    assert len(entry[metric]["mean"]) == 7
                    first = entry[metric]["mean"][0]
                    assert first is None or first == pytest.approx(1.0, abs=1e-6), (name, metric)
            control = mode["interpreters"]["edge (control)"]["spearman_abs"]["mean"]
            assert control == pytest.approx([1.0] * 7, abs=1e-6)
    for key in ("curves", "maps_theta0", "maps_theta_star"):
        assert Path(saved["paths"][key]).stat().st_size > 1000
    assert saved["verdict"]["theta0"]["edge (control)"]["passes"] is False


def test_sanity_is_off_by_default(fooled, tmp_path):
    argv = [f"ckpt={fooled}", *QUIET]
    report = run_eval(_compose("eval", argv), tmp_path, argv)
    assert "sanity" not in report and not (tmp_path / "sanity.json").exists()
