"""record_maps: explanations recorded during training (issue 12 item 5).

Off by default (no files); on, a GIF with one frame per recorded step; the recorded maps at a step equal an
independent interpreter call on that step's weights; weights trained with recording on equal those with it off
(the recorder consumes no RNG draw and leaves every module's mode, which the dropout of theta0's training and a
global-RNG SmoothGrad would expose)."""
from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from interpfool import interpreters, models
from interpfool.experiment.original import ClassifierModule
from interpfool.experiment.record_maps import RecordMaps, untouched
from interpfool.jobs.train import run
from tiny_run import TINY


def gif_frames(path) -> int:
    with Image.open(path) as im:
        return im.n_frames


class KeepWeights(L.Callback):
    """Copies of the weights after every optimizer step (and at the start), by step."""

    def __init__(self):
        self.states = {}

    def on_train_start(self, trainer, pl_module):
        self.states[trainer.global_step] = copy.deepcopy(pl_module.net.state_dict())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.states[trainer.global_step] = copy.deepcopy(pl_module.net.state_dict())


def _fit(tmp_path, recorder=None, steps=4):
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=4, width=4)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 3, 32, 32, generator=gen), torch.randint(0, 4, (32,), generator=gen)
    keep = KeepWeights()
    callbacks = [keep] + ([recorder] if recorder else [])
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, deterministic=True, callbacks=callbacks,
                        default_root_dir=str(tmp_path))
    module = ClassifierModule(net, lr=1e-2, epochs=1, seed=0)
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False))
    return net, keep.states, x[:3], y[:3]


@pytest.mark.parametrize("name", ["gradcam", "smoothgrad"])
def test_recorded_maps_equal_an_independent_call_and_training_is_unchanged(tmp_path, name):
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2])
    make = (lambda net: interpreters.build(name, net)) if name == "gradcam" else \
        (lambda net: interpreters.build(name, net, n=4))          # seed null: draws from the global RNG
    rec = RecordMaps(images, labels, make, every=2, out_dir=tmp_path / "rec", name="theta0", target="label")
    net_on, states, _, _ = _fit(tmp_path, rec)
    net_off, _, _, _ = _fit(tmp_path)
    # dropout draws and train-mode BatchNorm statistics of theta0's training: identical with recording on
    on, off = net_on.state_dict(), net_off.state_dict()
    assert all(torch.equal(on[k], off[k]) for k in on)
    assert rec.steps == [0, 2, 4]
    if name == "gradcam":            # SmoothGrad's noise seed came from the training's RNG state: not compared
        for step, maps in zip(rec.steps, rec.maps):
            fresh = models.build("small_vgg", num_classes=4, width=4)
            fresh.load_state_dict(states[step])
            expected = interpreters.build(name, fresh.eval())(images, "label", labels=labels)
            torch.testing.assert_close(maps, expected, rtol=0, atol=0)
    assert not torch.equal(rec.maps[0], rec.maps[-1]), "the maps moved while the model trained"
    paths = rec.write()
    assert gif_frames(paths["gif"]) == 3
    saved = torch.load(paths["maps"], weights_only=True)
    assert saved["steps"].tolist() == [0, 2, 4] and torch.equal(saved["maps"][1], rec.maps[1])


def test_modes_and_rng_restored_after_a_recording():
    net = models.build("small_vgg", num_classes=4, width=4).train()
    net.features[1].eval()                      # a mixed state, as Lightning may leave it
    before = [m.training for m in net.modules()]
    images = torch.randn(2, 3, 32, 32)
    rng = torch.get_rng_state()
    rec = RecordMaps(images, torch.tensor([0, 1]),
                     lambda net: interpreters.build("smoothgrad", net, n=2), every=1, out_dir="unused", name="x")
    seen = {}
    real = rec.make_interp
    rec.make_interp = lambda net: (seen.setdefault("modes", [m.training for m in net.modules()]), real(net=net))[1]
    h = rec.maps_of(net)
    assert h.shape == (2, 32, 32) and not h.requires_grad
    assert not any(seen["modes"]), "maps are computed in eval mode"
    assert [m.training for m in net.modules()] == before
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in net.parameters())


@pytest.fixture(scope="module")
def job_runs(tmp_path_factory):
    """The tiny train.py job with recording off (default) and on (every step, SmoothGrad from the global RNG),
    each with its own theta0 cache so both train theta0."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from interpfool.experiment.cli import CONF_DIR

    tmp = tmp_path_factory.mktemp("record")
    out = {}
    for name, extra in (("off", []), ("on", ["record_maps.every=1", "record_maps.images=3",
                                             "record_maps.interpreter=smoothgrad"])):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=TINY + [f"cache_dir={tmp / name / 'cache'}", "logger=csv",
                                                                   *extra])
        GlobalHydra.instance().clear()
        out[name] = (run(cfg, tmp / name / "run"), tmp / name)
    return out


def test_off_by_default_writes_nothing(job_runs, compose_cfg):
    assert compose_cfg([]).record_maps.every == 0
    report, root = job_runs["off"]
    assert "record_maps" not in report and not (root / "run" / "record_maps").exists()


def test_on_writes_a_gif_per_training_with_one_frame_per_recorded_step(job_runs):
    report, root = job_runs["on"]
    rec = root / "run" / "record_maps"
    # theta0: 48 training images, batch 16, 1 epoch -> 3 steps, recorded at 0, 1, 2, 3; fooling: 2 steps -> 0, 1, 2
    assert gif_frames(rec / "theta0.gif") == 4 and gif_frames(rec / "fooling.gif") == 3
    assert report["record_maps"]["theta0"]["frames"] == 4 and report["record_maps"]["fooling"]["frames"] == 3
    assert len(list((rec / "fooling").glob("step_*.png"))) == 3
    maps = torch.load(rec / "fooling.pt", weights_only=True)
    assert maps["steps"].tolist() == [0, 1, 2] and maps["maps"].shape[:2] == (3, 3)
    assert (root / "run" / "csv" / "metrics.csv").is_file()     # the CSV logger: no image panel, the PNGs stay


def test_recording_leaves_theta0_and_the_fooled_weights_unchanged(job_runs):
    (_, off), (_, on) = job_runs["off"], job_runs["on"]
    for pattern in ("cache/originals/*.pt", "run/fooled.pt"):
        (a,), (b,) = list(off.glob(pattern)), list(on.glob(pattern))
        x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), pattern


def test_unknown_interpreter_is_one_line(compose_cfg, tmp_path):
    from interpfool.experiment.cli import BadInput
    cfg = compose_cfg(TINY + [f"cache_dir={tmp_path}", "logger=csv", "record_maps.every=1",
                              "record_maps.interpreter=nope"])
    with pytest.raises(BadInput, match="record_maps.interpreter='nope'"):
        run(cfg, tmp_path / "run")
