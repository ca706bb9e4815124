"""The plan a run prints before its first step: what data, model, theta0 source, fooling, device and folder."""
from pathlib import Path

from interpfool.experiment.build import checked_build
from interpfool.experiment.original import original_source
from interpfool.experiment.run_plan import describe
from tiny_run import TINY


def test_the_plan_names_data_model_theta0_fooling_device_and_folder(compose_cfg, tmp_path):
    cfg = compose_cfg(TINY + [f"cache_dir={tmp_path / 'cache'}", "fooling.lam=4", "interp=lrpT"])
    lines = describe(cfg, checked_build(cfg), tmp_path / "run", original_source(cfg), "cpu")
    text = "\n".join(lines)
    assert "synthetic (train 48 / val 16 / test 8, 64x64, 8 classes); report on val" in lines[0]
    assert "small_vgg; theta0 not cached: trained now for 1 epochs" in lines[1] and str(tmp_path / "cache") in lines[1]
    assert "location of lrpT, lambda 4, lr 0.001, 2 steps, validation every 1" in lines[2]
    assert lines[3].startswith("device:    cpu") and lines[4] == f"folder:    {tmp_path / 'run'}"
    assert "note:" not in text


def test_a_cached_or_given_theta0_is_named(compose_cfg, tmp_path):
    cfg = compose_cfg(TINY + [f"cache_dir={tmp_path / 'cache'}"])
    from interpfool.experiment.original import cached_original_path, original_key
    path = cached_original_path(cfg.cache_dir, original_key(cfg))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert original_source(cfg) == f"cached ({path})"
    weights = tmp_path / "w.pt"
    cfg = compose_cfg(TINY + [f"model.weights_path={weights}"])
    assert original_source(cfg) == f"loaded from {weights}"


def test_an_imagenet_sized_model_on_offline_data_says_how_to_run_the_paper(compose_cfg, tmp_path):
    cfg = compose_cfg(TINY[:-2] + ["model=densenet121", f"cache_dir={tmp_path}"])
    lines = describe(cfg, checked_build(cfg), Path("run"), original_source(cfg), "cpu")
    assert lines[-1].startswith("note:      densenet121 on synthetic trains theta0 from scratch")
    assert "data=imagenet" in lines[-1] and "model.pretrained=true" in lines[-1]
