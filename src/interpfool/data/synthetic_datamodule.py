"""LightningDataModule over the synthetic benchmark: train / val / test splits and collages."""
from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import TensorDataset

from interpfool.data.split_loaders import IndexedTrainAndCollageLoaders
from interpfool.data.synthetic import SyntheticSpec, render_collage, render_index

SPLITS = {"train": 0, "val": 1, "test": 2}


def _check_positive(name: str, value: int, allow_zero: bool = False) -> None:
    if not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise ValueError(f"data.{name}={value!r}; allowed: an integer >= {0 if allow_zero else 1}")


class SyntheticDataModule(IndexedTrainAndCollageLoaders, L.LightningDataModule):
    """Batches are (x, y, mask): normalised images, labels, bool object masks [B, S, S].

    Images are generated once per split at ``setup`` (deterministic in (seed, split, index)).
    With ``collage_size > 0`` the module also serves collages of classes c1/c2 for active fooling:
    ``collage_dataloader(split)`` yields (x, masks [B, 2, S, S]).
    """

    def __init__(self, image_size: int = 64, num_classes: int = 8, clutter: int = 6, train_size: int = 4000,
                 val_size: int = 400, test_size: int = 400, seed: int = 0, batch_size: int = 32,
                 eval_batch_size: int = 100, num_workers: int = 0, mean: float = 0.5, std: float = 0.25,
                 c1: int = 0, c2: int = 1, collage_train_size: int = 0, collage_val_size: int = 0, **_unused):
        super().__init__()
        for name, value in (("train_size", train_size), ("val_size", val_size), ("batch_size", batch_size),
                            ("eval_batch_size", eval_batch_size)):
            _check_positive(name, value)
        for name, value in (("test_size", test_size), ("collage_train_size", collage_train_size),
                            ("collage_val_size", collage_val_size), ("num_workers", num_workers)):
            _check_positive(name, value, allow_zero=True)
        if std <= 0:
            raise ValueError(f"data.std={std}; allowed: > 0")
        self.spec = SyntheticSpec(size=image_size, num_classes=num_classes, clutter=clutter)
        for name, c in (("c1", c1), ("c2", c2)):
            if not 0 <= c < num_classes:
                raise ValueError(f"data.{name}={c}; allowed: a class in 0..{num_classes - 1}")
        if collage_train_size and c1 == c2:
            raise ValueError(f"data.c1 == data.c2 == {c1}; allowed: two different classes")
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.collage_sizes = {"train": collage_train_size, "val": collage_val_size}
        self.seed, self.batch_size, self.eval_batch_size = seed, batch_size, eval_batch_size
        self.num_workers, self.mean, self.std, self.c1, self.c2 = num_workers, mean, std, c1, c2
        self.num_classes = num_classes
        self._sets: dict[str, TensorDataset] = {}

    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.std + self.mean).clamp(0, 1)

    def _stream(self, split: str) -> int:
        return self.seed * 10 + SPLITS[split]

    def _build(self, split: str) -> TensorDataset:
        items = [render_index(self.spec, self._stream(split), i) for i in range(self.sizes[split])]
        x = self.normalize(torch.stack([img for img, _, _ in items]))
        masks = torch.stack([m for _, m, _ in items])
        y = torch.tensor([label for _, _, label in items])
        return TensorDataset(x, y, masks)

    def _build_collage(self, split: str) -> TensorDataset:
        items = [render_collage(self.spec, self._stream(split), i, self.c1, self.c2)
                 for i in range(self.collage_sizes[split])]
        return TensorDataset(self.normalize(torch.stack([img for img, _ in items])),
                             torch.stack([m for _, m in items]))

    def indexed_train_set(self) -> TensorDataset:
        """(x, y, mask, index): the same image for an index every epoch (no augmentation)."""
        train = self.dataset("train")
        return TensorDataset(*train.tensors, torch.arange(len(train)))
