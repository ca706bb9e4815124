"""Train / val / test DataLoaders of a data module that exposes ``dataset(split)``, ``seed``,
``batch_size``, ``eval_batch_size`` and ``num_workers`` (every data module), and the two extras of the
benchmarks with masks: a resumable, indexed train loader and the collage loaders of active fooling."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

from interpfool.data.rank_sampler import RankShardSampler
from interpfool.data.resumable import ResumableLoader


def cuda_pinning(run: Any) -> bool:
    """Whether a run's DataLoaders pin host memory: only when it trains on CUDA, where pinned batches copy to
    the GPU asynchronously; without CUDA pinning only warns. ``run``: the attached Lightning trainer (its
    accelerator decides), an accelerator name ("gpu" / "cuda" / "auto", with CUDA available), or None."""
    if isinstance(run, str):
        return run.lower() in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    from lightning.pytorch.accelerators import CUDAAccelerator
    return isinstance(getattr(run, "accelerator", None), CUDAAccelerator)


@contextmanager
def whole_splits(data: Any) -> Iterator[None]:
    """Loaders that ``data`` builds inside read their whole split on this rank: rank 0 evaluates alone after
    fit, while the process group (which the samplers read) still exists."""
    before = getattr(data, "whole_splits", False)
    data.whole_splits = True
    try:
        yield
    finally:
        data.whole_splits = before


class SplitLoaders:
    """Mixin: seeded shuffling for train (drop_last), fixed order for val / test; under DDP every loader
    reads this rank's share (``RankShardSampler``), so the trainer runs with ``use_distributed_sampler=False``."""

    shards_by_rank = True   # its loaders shard across DDP ranks themselves (Lightning's sampler would shard again)
    whole_splits = False    # True inside ``whole_splits(data)``: loaders built then read every image on this rank

    def _loader(self, data: Dataset, shuffle: bool, batch_size: int) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        # the sampler DataLoader(shuffle=..., generator=gen) builds itself, and the same generator: one process
        # draws the worker base seed and then the permutation from it, as before
        inner = RandomSampler(data, generator=gen) if shuffle else SequentialSampler(data)
        sampler = RankShardSampler(inner, shuffle, self.seed, shard=not self.whole_splits)
        return DataLoader(data, batch_size=batch_size, sampler=sampler, generator=gen, drop_last=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          pin_memory=cuda_pinning(getattr(self, "trainer", None)))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), False, self.eval_batch_size)


class IndexedTrainAndCollageLoaders(SplitLoaders):
    """Mixin for the synthetic and Fashion-MNIST modules: the train loader is seeded, resumable and rank-aware
    (``data.resumable``) over ``indexed_train_set()`` — batches (x, y, mask, index), the same image for an index
    every epoch, so theta0's maps can be cached per index — and ``collage_dataloader(split)`` serves the
    collages of ``collage_dataset(split)`` (x, masks [B, 2, S, S])."""

    resumable_train = True   # its train loader resumes mid-epoch and shards across DDP ranks itself
    indexed_train = True     # train batches end with the dataset index of each image (theta0 map cache)
    splits: tuple[str, ...] = ("train", "val", "test")

    def dataset(self, split: str) -> Dataset:
        """The split's dataset, built by ``_build(split)`` once and kept in ``self._sets``."""
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; allowed: {', '.join(self.splits)}")
        if split not in self._sets:
            self._sets[split] = self._build(split)
        return self._sets[split]

    def collage_dataset(self, split: str) -> Dataset:
        """The collages of ``split`` (train / val), built by ``_build_collage(split)`` once."""
        key = f"collage_{split}"
        if not self.collage_sizes.get(split):
            raise ValueError(f"data.collage_{split}_size is 0; set it > 0 to use collages")
        if key not in self._sets:
            self._sets[key] = self._build_collage(split)
        return self._sets[key]

    def train_dataloader(self) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        return ResumableLoader(self.indexed_train_set(), self.batch_size, self.seed,
                               step_source=lambda: trainer.global_step if trainer is not None else 0,
                               num_workers=self.num_workers, pin_memory=cuda_pinning(trainer))

    def collage_dataloader(self, split: str = "train", shuffle: bool | None = None) -> DataLoader:
        shuffle = split == "train" if shuffle is None else shuffle
        return self._loader(self.collage_dataset(split), shuffle,
                            self.batch_size if split == "train" else self.eval_batch_size)
