"""A NaN loss stops training before it changes the weights; the last good checkpoint stays."""
import functools

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from interpfool import interpreters, models
from interpfool.experiment.callbacks import NonFiniteLoss, StopOnNonFiniteLoss
from interpfool.fooling import FoolingModule, LocationFooling


class NaNAtStep(FoolingModule):
    def objective(self, *args, **kwargs):
        out = super().objective(*args, **kwargs)
        if self.trainer.global_step == 3:
            out["loss"] = out["loss"] * float("nan")
        return out


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
