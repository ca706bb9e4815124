"""The sampler of the val / test / collage loaders (``SplitLoaders._loader``): under DDP each rank reads its
share of the split, so ranks validate different images (the metrics, summed over ranks, count each image once)
and train on different collages. The loaders are built before Lightning creates the process group, so rank and
world size are read at ``__iter__`` / ``__len__`` time (``resumable._rank_world``, one place to fake them)."""
from __future__ import annotations

from typing import Iterator

from torch.utils.data import Sampler

from interpfool.data import resumable


class RankShardSampler(Sampler[int]):
    """Wraps the sampler DataLoader would have built itself (``inner``: RandomSampler with the seeded
    generator, or SequentialSampler). World size 1: exactly ``inner``'s indices, so single-process runs keep
    their order bit for bit. World > 1, ``shuffle``: the seeded (seed, epoch) permutation all ranks share,
    this rank's every world-th index, equal lengths (like drop_last); not shuffled: ``range(rank, n, world)``,
    no padding and no duplicates (shards differ by at most one image). ``shard=False``: every rank reads the
    whole split (rank 0's evaluation after fit, while the process group still exists)."""

    def __init__(self, inner: Sampler[int], shuffle: bool, seed: int = 0, shard: bool = True):
        self.inner, self.shuffle, self.seed, self.shard, self.epoch = inner, shuffle, seed, shard, 0
        self.n = len(inner)

    def set_epoch(self, epoch: int) -> None:  # called by Lightning before every epoch
        self.epoch = epoch

    def _rank_world(self) -> tuple[int, int]:
        return resumable._rank_world() if self.shard else (0, 1)

    def __len__(self) -> int:
        rank, world = self._rank_world()
        if world == 1:
            return len(self.inner)
        return self.n // world if self.shuffle else len(range(rank, self.n, world))

    def __iter__(self) -> Iterator[int]:
        rank, world = self._rank_world()
        if world == 1:
            return iter(self.inner)
        if self.shuffle:
            return iter(resumable.epoch_share(self.n, self.seed, self.epoch, rank, world))
        return iter(range(rank, self.n, world))
