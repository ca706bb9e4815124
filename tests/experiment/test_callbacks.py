"""A NaN loss stops training before it changes the weights; the last good checkpoint stays. The guard skips a bad
step on the device (fused Adam's ``found_inf``) and the host learns of it from a copy it never waits for; on the
CPU the copy is immediate."""
import copy
import functools

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from interpfool import interpreters, models
from interpfool.experiment import callbacks as guards
from interpfool.experiment.callbacks import NonFiniteLoss, StopOnNonFiniteLoss
from interpfool.experiment.cli import guarded
from interpfool.fooling import FoolingModule, LocationFooling


class NaNAtStep(FoolingModule):
    bad_step, spoil = 3, staticmethod(lambda loss: loss * float("nan"))

    def objective(self, *args, **kwargs):
        out = super().objective(*args, **kwargs)
        if self.trainer.global_step == self.bad_step:
            out["loss"] = self.spoil(out["loss"])
        return out


def _module(**kw) -> NaNAtStep:
    """The device path (fused Adam's found_inf), forced on the CPU: ``adam='fused'`` unless ``kw`` says."""
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=3, width=4, hidden=8)
    module = NaNAtStep(net, functools.partial(interpreters.REGISTRY["gradcam"]), LocationFooling(), lam=1.0,
                       lr=1e-3, target="pred")
    module.adam = "fused"
    for k, v in kw.items():
        setattr(module, k, v)
    return module


class Snapshots(L.Callback):
    """theta* and Adam's state after every training step."""

    def __init__(self):
        self.params, self.adam = [], []

    def on_train_batch_end(self, trainer, module, *_):
        self.params.append({k: v.clone() for k, v in module.net.state_dict().items()})
        self.adam.append(copy.deepcopy(trainer.optimizers[0].state_dict()["state"]))


def _fit(module, tmp_path, guard, *extra, steps=10):
    data = TensorDataset(torch.randn(48, 3, 32, 32), torch.randint(0, 3, (48,)))
    trainer = L.Trainer(max_steps=steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        inference_mode=False, limit_val_batches=0, callbacks=[*extra, guard,
                        ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_last=True, save_top_k=0,
                                        enable_version_counter=False)])
    trainer.fit(module, DataLoader(data, batch_size=4))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        _same(a[k], b[k]) if isinstance(a[k], dict) else torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_stops_before_the_update_and_keeps_the_last_checkpoint(tmp_path):
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=3, width=4, hidden=8)
    module = NaNAtStep(net, functools.partial(interpreters.REGISTRY["gradcam"]), LocationFooling(), lam=1.0,
                       lr=1e-3, target="pred")
    data = TensorDataset(torch.randn(32, 3, 32, 32), torch.randint(0, 3, (32,)))
    snapshots = []

    class Snap(L.Callback):
        def on_train_batch_end(self, trainer, *_):
            snapshots.append({k: v.clone() for k, v in module.net.state_dict().items()})

    trainer = L.Trainer(max_steps=10, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        inference_mode=False, limit_val_batches=0,
                        callbacks=[Snap(), StopOnNonFiniteLoss(1, str(tmp_path)),
                                   ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_last=True,
                                                   save_top_k=0, enable_version_counter=False)])
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at step 3; training stopped .* last good checkpoint"):
        trainer.fit(module, DataLoader(data, batch_size=4))
    assert len(snapshots) == 3
    assert all(torch.isfinite(v).all() for v in module.net.state_dict().values() if v.is_floating_point())
    assert all(torch.equal(v, snapshots[-1][k]) for k, v in module.net.state_dict().items())
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 3
    assert torch.equal(saved["state_dict"]["net.features.0.weight"], snapshots[-1]["features.0.weight"])


def test_the_cpu_keeps_default_adam_and_the_guard_still_stops_before_the_update(tmp_path):
    """adam=auto on the CPU: torch's default Adam (the numbers measured on CPUs stay bit for bit) and the
    guard's host read, which on the CPU waits for no device: the NaN step stops before it changes theta*."""
    module = _module(adam="auto")
    assert not module.configure_optimizers().defaults.get("fused")
    snaps = Snapshots()
    with pytest.raises(NonFiniteLoss, match="at step 3"):
        _fit(module, tmp_path, StopOnNonFiniteLoss(1, str(tmp_path)), snaps)
    assert len(snaps.params) == 3                       # steps 0, 1, 2 finished; step 3 stopped
    assert all(torch.equal(v, snaps.params[-1][k]) for k, v in module.net.state_dict().items())


def test_the_module_uses_fused_adam_and_it_matches_the_default_adam():
    """Fused Adam (the step the guard can skip on the device) against torch's default (foreach) Adam: the same
    update to float rounding over 20 fooling steps."""
    module = _module()
    fused = module.configure_optimizers()
    assert fused.defaults["fused"] is True and fused.defaults["lr"] == 1e-3
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8,))
    nets = {}
    for name in ("fused", "foreach"):
        m = _module()._freeze_modes()          # eval mode, as in training: no dropout draws, frozen BatchNorm
        opt = m.configure_optimizers() if name == "fused" else torch.optim.Adam(m.net.parameters(), lr=1e-3)
        for _ in range(20):
            opt.zero_grad()
            FoolingModule.objective(m, x, y)["loss"].backward()     # no trainer: no NaN hook
            opt.step()
        nets[name] = m.net.state_dict()
    for k, v in nets["foreach"].items():
        torch.testing.assert_close(nets["fused"][k], v, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(nets["fused"][k], v) for k, v in _module().net.state_dict().items())   # it moved


def test_a_bad_step_is_skipped_on_the_device_with_params_and_adam_state_bit_identical(tmp_path):
    """Checked every 2 steps: step 3's NaN is read at step 4; step 3 itself ran its optimizer step with found_inf
    set, which left theta* and Adam's moments and step count exactly as step 2 left them."""
    module, snaps = _module(), Snapshots()
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at step 3; training stopped before this step changed the "
                                             r"weights \(step 3 was skipped on the device\)"):
        _fit(module, tmp_path, StopOnNonFiniteLoss(2), snaps)
    assert len(snaps.params) == 4                              # steps 0-3 ended; step 4 raised before its update
    assert not _same(snaps.params[2], snaps.params[1]) and not _same(snaps.adam[2], snaps.adam[1])
    assert _same(snaps.params[3], snaps.params[2]) and _same(snaps.adam[3], snaps.adam[2])
    assert snaps.adam[3][0]["step"] == 3                       # three updates, the skipped one not counted
    assert _same(module.net.state_dict(), snaps.params[2])


def test_an_inf_loss_with_finite_gradients_stops_too(tmp_path):
    """An Inf loss whose gradients are finite (an overflowing sum would do it): the gradient check alone would
    miss it, the loss flag does not."""
    module, snaps = _module(spoil=lambda loss: loss + float("inf")), Snapshots()
    with pytest.raises(NonFiniteLoss, match=r"loss is inf at step 3; training stopped before this step changed"):
        _fit(module, tmp_path, StopOnNonFiniteLoss(1), snaps)
    assert len(snaps.params) == 3 and _same(module.net.state_dict(), snaps.params[2])


def test_the_host_reads_the_flag_when_its_copy_has_arrived_and_the_weights_wait(tmp_path, monkeypatch):
    """As on a GPU: each copy is reported arrived one step after it was queued (the event's query); the bad step
    3 and nothing after it changes the weights, and the stop at step 4 names step 3."""
    class OneStepLate:
        def __init__(self):
            self.queries = 0

        def query(self):
            self.queries += 1
            return self.queries > 1
    monkeypatch.setattr(guards, "_device_event", lambda device: OneStepLate())
    module, snaps = _module(), Snapshots()
    with pytest.raises(NonFiniteLoss, match=r"at step 3; .* \(step 3 was skipped on the device\)"):
        _fit(module, tmp_path, StopOnNonFiniteLoss(1), snaps)
    assert len(snaps.params) == 4 and _same(snaps.params[3], snaps.params[2])
    assert _same(module.net.state_dict(), snaps.params[2])


def test_a_checkpoint_waits_for_the_flag_and_the_stop_exits_with_code_3(tmp_path, capsys):
    """Host reads every 100 steps: the checkpoint after the skipped step 3 reads the flag first and raises, so
    last.ckpt stays the one before the bad step; through the command line's guard the exit code is 3."""
    module = _module()
    with pytest.raises(SystemExit) as stop:
        guarded(_fit, module, tmp_path, StopOnNonFiniteLoss(100, str(tmp_path)))
    assert stop.value.code == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: loss is nan at step 3;") and "(step 3 was skipped on the device)" in err
    assert err.endswith("last good checkpoint: " + str(tmp_path) + "/last.ckpt")
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 3
