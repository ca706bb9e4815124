"""``eval.py audit`` on a tiny fooled run: evidence, flags and verdict in audit.json; a Lerma-shifted copy of
the same model raises the hidden-logit-shift flag; bad input -> one line, exit 2."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from interpfool.experiment.cli import BadInput
from interpfool.jobs.audit import run_audit
from interpfool.jobs.train import run
from tiny_run import TINY
from tiny_run import compose as _compose

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["audit.images=16", "audit.aopc.images=4", "audit.aopc.steps=3", "audit.aopc.cell=8", "logger=csv"]



@pytest.fixture(scope="module")
def fooled(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    run(_compose("config", TINY + [f"cache_dir={root / 'cache'}", "logger=csv"]), root / "run")
    return root / "run"


def test_audit_against_the_original_writes_evidence_flags_and_verdict(fooled, tmp_path):
    argv = [f"ckpt={fooled}", "audit.reference=original"] + SMALL
    result = run_audit(_compose("audit", argv), tmp_path, argv)
    saved = json.loads((tmp_path / "audit.json").read_text())
    assert saved["verdict"] == result["verdict"] and saved["images"] == 16
    ev = saved["evidence"]
    for key in ("uniform_logit_share", "pre_post_spearman", "class_spearman", "aopc_morf", "aopc_random",
                "map_spearman", "top1_agreement", "kl_ref_model", "reference"):
        assert key in ev, key
    assert set(ev["fsr"]) == {"location", "topk", "center_mass"}
    assert set(saved["flags"]) == {"hidden_logit_shift", "pre_post_disagree", "class_independent_maps",
                                   "maps_less_faithful_than_random", "fooled_against_reference",
                                   "outputs_agree_maps_do_not"}
    assert saved["verdict"] == ("manipulated" if any(saved["flags"].values()) else "no evidence of manipulation")
    assert saved["flags"]["maps_less_faithful_than_random"] == (ev["aopc_p"] < saved["thresholds"]["aopc_p"])


def test_the_original_against_itself_agrees_exactly(fooled, tmp_path):
    cache = fooled.parent / "cache"
    original = next(cache.rglob("*.pt"))
    argv = [f"ckpt={fooled}", f"audit.reference={original}"] + SMALL
    ev_ref = run_audit(_compose("audit", argv), tmp_path / "a", argv)["evidence"]
    # the reference against itself: the same file as ckpt and reference
    argv = [f"ckpt={fooled}", f"audit.reference={fooled / 'fooled.pt'}"] + SMALL
    ev = run_audit(_compose("audit", argv), tmp_path / "b", argv)["evidence"]
    assert ev["top1_agreement"] == 1.0 and ev["kl_ref_model"] == pytest.approx(0.0, abs=1e-12)
    assert ev["map_spearman"] == pytest.approx(1.0)
    assert all(ev["fsr"][k] == ev["fsr_reference"][k] for k in ev["fsr"])
    assert ev_ref["reference"]["uniform_logit_share"] != ev["reference"]["uniform_logit_share"]
    assert ev["reference"]["pre_post_spearman"] == pytest.approx(ev["pre_post_spearman"])
    assert not any(v for k, v in run_audit(_compose("audit", argv), tmp_path / "c", argv)["flags"].items()
                   if k in ("hidden_logit_shift", "pre_post_disagree", "class_independent_maps",
                            "fooled_against_reference", "outputs_agree_maps_do_not"))


def test_a_lerma_shifted_model_raises_the_hidden_logit_shift_flag(fooled, tmp_path):
    argv = [f"ckpt={fooled}", "audit.presoftmax_k=10"] + SMALL
    shifted = run_audit(_compose("audit", argv), tmp_path / "k10", argv)
    argv = [f"ckpt={fooled}"] + SMALL
    plain = run_audit(_compose("audit", argv), tmp_path / "k0", argv)
    assert shifted["flags"]["hidden_logit_shift"] and not plain["flags"]["hidden_logit_shift"]
    assert shifted["evidence"]["uniform_logit_share"] > plain["evidence"]["uniform_logit_share"]
    assert shifted["verdict"] == "manipulated"


def test_audit_cli_refuses_bad_input_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "INTERPFOOL_CACHE": str(tmp_path / "cache")}
    for args, start in (([f"ckpt={tmp_path / 'missing.pt'}"], "error: ckpt="),
                        (["ckpt=x", "audit.images=0"], "error: audit.images=0")):
        proc = subprocess.run([sys.executable, str(ROOT / "eval.py"), "audit", *args,
                               f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(start), proc.stderr[-2000:]


def test_audit_refuses_more_aopc_steps_than_the_images_have_cells(fooled, tmp_path):
    argv = [f"ckpt={fooled}", "audit.aopc.steps=100000"] + [a for a in SMALL if not a.startswith("audit.aopc.steps")]
    with pytest.raises(BadInput, match=r"audit.aopc.steps=100000; allowed: 1\.\.\d+ \(cells of 8 px"):
        run_audit(_compose("audit", argv), tmp_path, argv)
    assert not (tmp_path / "audit.json").exists()


def test_per_image_aopc_matches_the_evaluation_suites_aopc():
    """Independent route: ``evaluate_aopc``'s torchmetrics AOPC of theta0's MoRF and random orders (predicted class)
    equals the mean of the audit's per-image values, batch split and all."""
    from functools import partial

    import torch

    from interpfool.experiment.evaluate import evaluate_aopc
    from interpfool.interpreters.registry import build
    from interpfool.jobs.audit import aopc_per_image_orders
    from interpfool.models.small_vgg import SmallVGG

    torch.manual_seed(0)
    net = SmallVGG(num_classes=3, width=4, hidden=8).eval()
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    make = partial(build, "gradcam")
    settings = {"cell": 4, "steps": 9, "noise_std": 0.3, "seed": 2, "images": 5}
    per_image = aopc_per_image_orders(net, [(x[:2], y[:2]), (x[2:], y[2:])], make, **settings)
    assert per_image["morf"].shape == (5,) and per_image["random"].shape == (5,)
    suite = evaluate_aopc(net, net, [(x, y)], make, "pred", **settings)["aopc"]["theta0"]
    assert per_image["morf"].mean().item() == pytest.approx(suite["morf_h0"], rel=1e-6)
    assert per_image["random"].mean().item() == pytest.approx(suite["random"], rel=1e-6)


def test_the_aopc_flag_is_a_paired_one_sided_test_against_random_and_the_reference():
    from interpfool.jobs.audit import aopc_below

    def ev(morf, random):
        return {"aopc_per_image": {"morf": morf, "random": random}}

    random = [5.0 + 0.1 * i for i in range(10)]
    below = [r - 0.5 - 0.01 * i for i, r in enumerate(random)]          # 10 images, every d < 0, distinct
    # exact Wilcoxon signed-rank, n = 10, no positive rank: P(W+ = 0) = 1 / 2^10
    assert aopc_below(ev(below, random)) == pytest.approx(1 / 1024)
    assert aopc_below(ev(random, random)) == 1.0                        # all-zero maps: MoRF = random, no evidence
    above = [r + 0.5 + 0.01 * i for i, r in enumerate(random)]
    assert aopc_below(ev(above, random)) == pytest.approx(1.0)
    # a near tie (half the images a hair below, half a hair above) is no evidence
    tie = [r + (0.01 if i % 2 else -0.01) * (i + 1) for i, r in enumerate(random)]
    assert aopc_below(ev(tie, random)) > 0.2
    # with a reference whose maps are as far below random: honest, no flag; above random: the model's drop is evidence
    assert aopc_below(ev(below, random), ev(below, random)) == 1.0
    assert aopc_below(ev(below, random), ev(above, random)) == pytest.approx(1 / 1024)
    assert aopc_below(ev(above, random), ev(above, [a + 1 for a in above])) == 1.0   # the model itself beats random
