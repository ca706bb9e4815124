"""A training DataLoader whose position is a function of the global step, so a run killed
mid-epoch resumes at exactly the next batch (issue: resume after a crash gives the same weights).

The order of epoch e is a seeded permutation of the dataset; under DDP each rank takes every
world-th index of it (so the trainer runs with ``use_distributed_sampler=False``). Lightning saves
``state_dict()`` in every checkpoint and calls ``load_state_dict()`` before iterating again.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def epoch_share(n: int, seed: int, epoch: int, rank: int, world: int) -> list[int]:
    """This rank's share of epoch ``epoch``'s permutation of range(n): seeded by (seed, epoch) alone, so every
    rank draws the same one; every world-th index from ``rank``, the tail cut to equal lengths."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=gen)[rank:(n // world) * world:world].tolist()


class SeededEpochSampler(Sampler[int]):
    """Epoch e: ``randperm(n)`` from seed (seed, e), this rank's share; skips ``skip`` indices once."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch, self.skip = n, seed, 0, 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning before every epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // _rank_world()[1]

    def __iter__(self) -> Iterator[int]:
        order = epoch_share(self.n, self.seed, self.epoch, *_rank_world())
        start, self.skip = self.skip, 0
        return iter(order[start:])


class ResumableLoader(DataLoader):
    """``state_dict()`` is the global step (batches consumed, from ``step_source``); loading it
    positions the sampler at that step's epoch and batch."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, step_source: Callable[[], int], **kwargs):
        self.epoch_sampler = SeededEpochSampler(len(dataset), seed)
        self._step_source = step_source
        super().__init__(dataset, batch_size=batch_size, sampler=self.epoch_sampler, drop_last=True, **kwargs)

    def state_dict(self) -> dict:
        return {"global_step": int(self._step_source())}

    def load_state_dict(self, state: dict) -> None:
        per_epoch = len(self)
        step = int(state["global_step"])
        self.epoch_sampler.set_epoch(step // per_epoch)
        self.epoch_sampler.skip = (step % per_epoch) * self.batch_size
