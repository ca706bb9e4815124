"""CIFAR-10 through torchvision (DESIGN.md 2.5), for users who can download.

``data=cifar10``: torchvision downloads the files into ``data.root`` when ``data.download=true`` and they are
missing. Offline (or with ``download=false`` and no files) the build stops with one line saying which files to
put where. Splits: ``train`` (the official training set) and ``val`` (the official test set; there is no separate
test split). Batches are ``(x, y)``. Fashion-MNIST has its own module (``fashion_mnist.py``: the idx files, read
offline from Debian's ``dataset-fashion-mnist`` or downloaded, with a val split and object masks).
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import Dataset

from interpfool.data.split_loaders import SplitLoaders

SETS = {
    # name: (torchvision class, label, native size, channels, mean, std, where the files go, source)
    "cifar10": ("CIFAR10", "CIFAR-10", 32, 3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                "{root}/cifar-10-batches-py/ (the extracted cifar-10-python.tar.gz)",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
}
SPLITS = ("train", "val")


class TorchvisionDataModule(SplitLoaders, L.LightningDataModule):
    """``name``: cifar10. ``image_size``: resize to this side (default: native 32)."""

    splits = SPLITS

    def __init__(self, name: str = "cifar10", root: str = "data/torchvision", download: bool = True,
                 image_size: int | None = None, num_classes: int = 10, batch_size: int = 64,
                 eval_batch_size: int = 256, num_workers: int = 2, seed: int = 0, flip: bool = True, **_unused):
        super().__init__()
        if name not in SETS:
            raise ValueError(f"data.name={name!r}; allowed: {', '.join(SETS)}")
        cls_name, self.label, native, self.channels, mean, std, where, source = SETS[name]
        if num_classes != 10:
            raise ValueError(f"data.num_classes={num_classes} for {self.label}; allowed: 10")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{key}={value!r}; allowed: an integer >= 1")
        if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                       or image_size < 8):
            raise ValueError(f"data.image_size={image_size!r}; allowed: an integer >= 8 or null (native)")
        self.name, self.root, self.num_classes = name, Path(str(root)).expanduser(), num_classes
        self.image_size = image_size or native
        self.mean, self.std = mean, std
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.seed, self.flip = seed, flip
        self._sets = {split: self._open(cls_name, split, download, where.format(root=self.root), source)
                      for split in SPLITS}

    def _open(self, cls_name: str, split: str, download: bool, where: str, source: str) -> Dataset:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        try:
            return cls(str(self.root), train=split == "train", download=download, transform=self.transform(split))
        except Exception as err:  # noqa: BLE001 - offline, missing or corrupt files
            reason = " ".join(str(err).split())[:100]
            how = ("the download failed" if download else "data.download=false and the files are missing")
            raise RuntimeError(
                f"data={self.name}: {self.label} is not in data.root={str(self.root)!r} and {how} "
                f"({type(err).__name__}: {reason}); where you have internet run python -c \"import "
                f"torchvision; torchvision.datasets.{cls_name}('{self.root}', download=True)\" (or get the "
                f"files from {source}) and put them in {where}") from None

    def transform(self, split: str):
        from torchvision import transforms as T

        steps = []
        if split == "train" and self.flip:
            steps.append(T.RandomHorizontalFlip())
        steps += [T.Resize(self.image_size), T.ToTensor(), T.Normalize(self.mean, self.std)]
        return T.Compose(steps)

    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        return (img - torch.tensor(self.mean).view(-1, 1, 1)) / torch.tensor(self.std).view(-1, 1, 1)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x * torch.tensor(self.std).view(-1, 1, 1) + torch.tensor(self.mean).view(-1, 1, 1)).clamp(0, 1)

    def dataset(self, split: str) -> Dataset:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} for {self.label}; allowed: {', '.join(SPLITS)} "
                             f"(val is the official test set)")
        return self._sets[split]
