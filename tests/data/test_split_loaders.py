"""pin_memory on the data modules' loaders: on for a run that trains on CUDA (a faked trainer here: this
machine has no GPU, so no pinned loader is iterated), off otherwise, where pinning would only warn."""
from types import SimpleNamespace

import pytest
from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

from interpfool.data import SyntheticDataModule
from interpfool.data.split_loaders import cuda_pinning


def _loaders(trainer) -> list:
    data = SyntheticDataModule(image_size=32, train_size=4, val_size=2, test_size=2, batch_size=2,
                               collage_train_size=2, collage_val_size=2)
    data.trainer = trainer
    return [data.train_dataloader(), data.val_dataloader(), data.test_dataloader(),
            data.collage_dataloader("train"), data.collage_dataloader("val")]


@pytest.mark.parametrize("trainer, pinned", [(None, False), (SimpleNamespace(accelerator=CPUAccelerator()), False),
                                             (SimpleNamespace(accelerator=CUDAAccelerator(), global_step=0), True)])
def test_every_loader_pins_exactly_when_the_trainer_runs_on_cuda(trainer, pinned):
    assert [loader.pin_memory for loader in _loaders(trainer)] == [pinned] * 5


def test_accelerator_names_pin_only_with_cuda_available(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert not any(cuda_pinning(name) for name in ("cpu", "gpu", "cuda", "auto"))
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert [cuda_pinning(name) for name in ("cpu", "gpu", "cuda", "auto", "mps")] == [False, True, True, True, False]
