"""Two fooling steps on the paper's architectures (weights=None) with data=imagenet on a generated ImageFolder
tree: ResNet50 and DenseNet121 through Hydra's compose API and pipeline.run (build, original, fooling,
evaluation, report); VGG19 (139M parameters, ~0.5 GB per saved copy) through the FoolingModule directly."""
from __future__ import annotations

import json
import time

import pytest
import torch

from interpfool import interpreters
from interpfool.data.testing import make_fake_imagenet
from interpfool.jobs.train import run


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return make_fake_imagenet(tmp_path_factory.mktemp("imagenet"), train_per_class=2, val_per_class=1)



@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")    # the original of each model is trained once, then reused


@pytest.mark.parametrize("arch", ["resnet50", "densenet121"])
@pytest.mark.parametrize("interp", ["gradcam", "lrpT"])
def test_two_fooling_steps_on_fake_imagenet(compose_cfg, fake_root, cache, tmp_path, arch, interp):
    start = time.perf_counter()
    cfg = compose_cfg([
        f"model={arch}", "data=imagenet", f"data.root={fake_root}", "data.num_classes=4", "data.image_size=64",
        "data.batch_size=2", "data.eval_batch_size=4", "data.num_workers=0", f"interp={interp}", "target=pred",
        "original.epochs=1", "original.batch_size=4", "trainer.max_steps=2", "trainer.val_check_interval=2",
        "eval.figure_images=2", f"eval.interpreters=[{interp}]", "logger=csv", f"cache_dir={cache}"])
    report = run(cfg, tmp_path / "run")
    assert report["steps"] == 2 and report["interpreter"] == interp and report["n_images"] == 4
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert 0 <= saved["fsr"][interp]["theta_star"] <= 1 and (tmp_path / "run" / "fooled.pt").is_file()
    print(f"{arch} {interp}: {time.perf_counter() - start:.1f} s")


def test_two_fooling_steps_on_vgg19_with_the_fooling_module(compose_cfg, fake_root):
    import lightning as L

    from interpfool.experiment.build import checked_build
    from interpfool.fooling import FoolingModule

    cfg = compose_cfg(["model=vgg19", "data=imagenet", f"data.root={fake_root}", "data.num_classes=4",
                       "data.image_size=64", "data.batch_size=2", "data.num_workers=0"])
    built = checked_build(cfg)
    x, y = next(iter(built.data.train_dataloader()))
    net = built.net            # the lrpT run continues from the gradcam run's weights: no third 0.5 GB copy
    for interp in ("gradcam", "lrpT"):
        start = time.perf_counter()
        make = lambda net, name=interp: interpreters.build(name, net)  # noqa: E731
        module = FoolingModule(net, make, built.fooling, lam=10.0, lr=1e-4, target="pred")
        before = net.features[34].weight.detach().clone()
        trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, inference_mode=False,
                            limit_val_batches=0, num_sanity_val_steps=0)
        trainer.fit(module, train_dataloaders=built.data.train_dataloader())
        assert trainer.global_step == 2
        assert not torch.equal(net.features[34].weight, before)           # the target-layer conv moved
        out = module.objective(x, y)
        assert torch.isfinite(out["loss"]) and out["maps"].shape == (2, 4, 4)
        print(f"vgg19 {interp}: {time.perf_counter() - start:.1f} s")
        del module, trainer
