"""Bad input: one line naming the value and what is allowed, exit code 2, before any training."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from interpfool.experiment.cli import BadInput, preflight
from interpfool.experiment.build import checked_build

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("override, expected", [
    ("fooling.lam=-1", "fooling.lam=-1.0; allowed: a finite number >= 0"),
    ("fooling.lr=0", "fooling.lr=0.0; allowed: a finite number > 0"),
    ("fooling.penalty.interval=[0.5,0.1]", "low > high"),
    ("fooling.penalty.mask=diagonal", "fooling.mask='diagonal'; allowed: frame, corner"),
    ("target=random", "target='random'; allowed: label, pred"),
    ("data.batch_size=0", "data.batch_size=0; allowed: an integer >= 1"),
    ("data.num_classes=1", "data.num_classes=1; allowed: an integer >= 2"),
    ("model.target_layer=features.99", "layer 'features.99' does not exist"),
    ("model.weights_path=/nonexistent/w.pt", "model.weights_path='/nonexistent/w.pt' does not exist"),
    ("interp.score=energy", "interp.score='energy'; allowed: logit, prob"),
    ("eval.split=holdout", "eval.split='holdout'; allowed: auto, train, val, test"),
    ("eval.interpreters=[gradcam,nope]", "eval.interpreters=[gradcam, nope]; allowed: a list of interpreter names"),
    ("trainer.max_steps=0", "trainer.max_steps=0; allowed: an integer >= 1"),
    ("original.epochs=-3", "original.epochs=-3; allowed: an integer >= 1"),
    ("fooling=topk fooling.penalty.k=0", "fooling.penalty.k=0.0; allowed: a finite number > 0 and <= 100"),
    ("fooling=topk fooling.penalty.k=150", "fooling.penalty.k=150.0; allowed: a finite number > 0 and <= 100"),
    ("fooling=center_mass fooling.penalty.interval=[0.9,0.1]", "fooling.interval=[0.9, 0.1] has low > high"),
    ("experiment=synthetic_active data.c2=0", "data.c1 == data.c2 == 0; allowed: two different classes"),
    ("data=imagenet data.root=/nonexistent", "data.root='/nonexistent' does not exist; expected ImageFolder layout"),
    ("model=vgg19 model.pretrained=true model.num_classes=10", "model.num_classes=10 with pretrained ImageNet "
                                                                "weights; allowed: 1000"),
    ("trainer.val_check_interval=0", "trainer.val_check_interval=0; allowed: an integer >= 1"),
    ("data.train_size=20", "data.train_size=20; allowed: >= data.batch_size (32)"),
    ("experiment=synthetic_active data.collage_train_size=8", "data.collage_train_size=8; allowed: >= "
                                                              "data.batch_size (32)"),
])
def test_bad_values_fail_in_the_build_phase_with_one_line(compose_cfg, override, expected):
    with pytest.raises(BadInput) as err:
        checked_build(compose_cfg(override.split()))
    message = str(err.value)
    assert expected in message and "\n" not in message


@pytest.mark.parametrize("argv, expected", [
    (["model=bad"], "model=bad is not an option; allowed: densenet121, resnet50, small_densenet, small_resnet, "
                    "small_vgg, vgg19"),
    (["fooling=nothing"], "fooling=nothing is not an option; allowed: active, center_mass, location, topk"),
    (["foo=1"], "unknown option 'foo'"),
    (["interp=bad", "hydra.run.dir=/tmp/x"], "interp=bad is not an option; allowed: gradcam, gradcam_pos"),
])
def test_composition_errors_give_one_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        preflight("config", argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_weights_file_that_is_not_a_state_dict(compose_cfg, tmp_path):
    bad = tmp_path / "w.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(BadInput, match="is not a loadable state dict"):
        checked_build(compose_cfg([f"model.weights_path={bad}"]))


@pytest.mark.parametrize("arg, expected", [("fooling.lam=-1", "fooling.lam=-1.0"), ("model=bad", "model=bad"),
                                           ("checkpoint_every=0", "checkpoint_every=0; allowed: an integer >= 1"),
                                           ("select.weights=first", "select.weights='first'; allowed: best, last")])
def test_train_py_exits_2_with_one_line_and_writes_nothing(tmp_path, arg, expected):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "INTERPFOOL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), arg, f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr[-2000:]
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("override, expected", [
    ("select.weights=first", "select.weights='first'; allowed: best, last"),
    ("select.max_top1_drop=-1", "select.max_top1_drop=-1.0; allowed: a finite number >= 0"),
    ("select.max_top1_drop=lots", "select.max_top1_drop='lots'; allowed: a number"),
])
def test_bad_selection_gives_one_line(capsys, override, expected):
    from interpfool.experiment.cli import EXIT_BAD_INPUT, preflight

    with pytest.raises(SystemExit) as exit_:
        preflight("config", [override])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == EXIT_BAD_INPUT and len(err) == 1 and expected in err[0], err
