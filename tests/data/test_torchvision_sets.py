"""data=cifar10 through torchvision: offline gives one line saying where the files go; files in place load.
(Fashion-MNIST has its own idx reader: tests/data/test_fashion_mnist.py.)"""
from __future__ import annotations

import pickle
import urllib.error
import urllib.request

import numpy as np
import pytest

from interpfool.data import TorchvisionDataModule
from interpfool.experiment.cli import BadInput
from interpfool.experiment.build import checked_build


@pytest.fixture
def offline(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("name, where", [("cifar10", "cifar-10-batches-py/")])
def test_offline_download_fails_with_one_line_saying_where_the_files_go(compose_cfg, tmp_path, offline, name, where):
    cfg = compose_cfg([f"data={name}", f"data.root={tmp_path}", "model.width=4"])
    with pytest.raises(BadInput) as err:
        checked_build(cfg)
    message = str(err.value)
    assert "\n" not in message and f"data={name}" in message and "the download failed" in message
    assert f"{tmp_path}/{where}" in message and "download=True" in message


def test_no_download_and_no_files(compose_cfg, tmp_path):
    cfg = compose_cfg(["data=cifar10", f"data.root={tmp_path}", "data.download=false", "model.width=4"])
    with pytest.raises(BadInput, match="data.download=false and the files are missing"):
        checked_build(cfg)


def test_fashion_mnist_is_no_longer_a_torchvision_set():
    with pytest.raises(ValueError, match="allowed: cifar10"):
        TorchvisionDataModule(name="fashion_mnist")


def test_cifar10_files_in_place_load(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [1, 7]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)   # fake files have no official md5
    dm = TorchvisionDataModule(name="cifar10", root=str(tmp_path), download=False, batch_size=4, num_workers=0)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and set(y.tolist()) <= {1, 7}
