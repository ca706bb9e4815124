"""Train / val / test DataLoaders of a data module that exposes ``dataset(split)``, ``seed``,
``batch_size``, ``eval_batch_size`` and ``num_workers`` (ImageNet and torchvision data modules)."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


class SplitLoaders:
    """Mixin: seeded shuffling for train (drop_last), fixed order for val / test."""

    def _loader(self, data: Dataset, shuffle: bool, batch_size: int) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=gen, drop_last=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), False, self.eval_batch_size)
