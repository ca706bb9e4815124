"""experiment=lerma_presoftmax: the job through Hydra's compose API (report.json, Figure-3-style figures), its
bad inputs (one line, before any training), and train.py's dispatch on `job`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from interpfool.experiment.cli import BadInput
from interpfool.jobs.lerma import run

ROOT = Path(__file__).resolve().parents[2]
TINY = ["data.train_size=48", "data.val_size=8", "data.test_size=8", "data.batch_size=8", "original.epochs=1",
        "original.batch_size=16", "model.width=4"]
SMALL = ["experiment=lerma_presoftmax", "lerma.images=4", "lerma.figure_images=2",
         "lerma.interpreters=[gradcam,simplegT,lrpT]", "lerma.post_interpreters=[gradcam,simplegT,lrpT]"]



def test_lerma_job_on_the_trained_original_writes_report_and_figures(compose_cfg, tmp_path, capsys):
    cfg = compose_cfg([*TINY, *SMALL, f"cache_dir={tmp_path / 'cache'}"])
    report = run(cfg, tmp_path / "run")
    assert report["weights"]["status"] == "trained" and "training it" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["k"] == 100.0 and saved["position"] == [0, 0] and saved["n_images"] == 4   # lerma.k_by_model.small_vgg
    assert saved["outputs"]["argmax_agreement"] == 1.0
    assert set(saved["interpreters"]) == {"gradcam", "simplegT", "lrpT", "gradcam@avgpool"}
    for name in ("gradcam", "simplegT", "lrpT"):
        figure = Path(saved["figures"][name])
        assert figure.name == f"figure3_{name}.png" and figure.stat().st_size > 1000
    assert "post_softmax_spearman_float64" in saved["interpreters"]["gradcam"]


@pytest.mark.parametrize("override, expected", [
    ("lerma.weights=imagenet", "lerma.weights='imagenet'; allowed: original, random"),
    ("lerma.position=[4,0]", "presoftmax position (4, 0) is outside the 4x4 output of 'avgpool'"),
    ("lerma.k=nan", "lerma.k=nan; allowed: a finite number"),
    ("lerma.interpreters=[gradcam,nope]", "lerma.interpreters=[gradcam, nope]; allowed: a list of interpreter names"),
    ("lerma.images=0", "lerma.images=0; allowed: an integer >= 1"),
    ("lerma.shift_dtype=half", "lerma.shift_dtype='half'; allowed: float64, model"),
])
def test_bad_lerma_values_give_one_line_before_training(compose_cfg, tmp_path, override, expected):
    cfg = compose_cfg([*TINY, *SMALL, f"cache_dir={tmp_path / 'cache'}", override])
    with pytest.raises(BadInput) as err:
        run(cfg, tmp_path / "run")
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "cache").exists()


def test_train_py_dispatches_the_lerma_job(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "INTERPFOOL_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    args = [*TINY, *SMALL, "lerma.weights=random", "lerma.float64_post=false", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["weights"]["status"] == "random" and "figure:" in proc.stdout
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run" / "fooled.pt").exists()


def test_k_is_the_papers_10_unless_the_model_is_listed(compose_cfg):
    assert compose_cfg(["experiment=lerma_presoftmax"]).lerma.k == 100.0                  # small_vgg
    assert compose_cfg(["experiment=lerma_presoftmax", "model=vgg19"]).lerma.k == 10.0
    assert compose_cfg(["experiment=lerma_presoftmax", "model=vgg19", "lerma.k=3"]).lerma.k == 3.0
