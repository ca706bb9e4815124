"""RankShardSampler: single-process order unchanged bit for bit; under DDP (world faked) disjoint shards that
cover the val split once and a shared, per-epoch permutation for the shuffled train collages."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from interpfool.data import resumable
from interpfool.data.split_loaders import SplitLoaders, whole_splits


class Loaders(SplitLoaders):
    seed, num_workers = 7, 0


def _data(n: int) -> TensorDataset:
    return TensorDataset(torch.arange(n))


def _order(loader, epoch: int | None = None) -> list[int]:
    if epoch is not None:
        loader.sampler.set_epoch(epoch)
    return [int(i) for (batch,) in loader for i in batch]


def _fake_world(monkeypatch, rank: int, world: int = 2) -> None:
    monkeypatch.setattr(resumable, "_rank_world", lambda: (rank, world))


@pytest.mark.parametrize("shuffle", [True, False])
def test_one_process_gives_exactly_the_plain_dataloader_order(shuffle):
    data = _data(23)
    ours = Loaders()._loader(data, shuffle, 4)
    plain = DataLoader(data, batch_size=4, shuffle=shuffle, drop_last=shuffle,
                       generator=torch.Generator().manual_seed(7) if shuffle else None)
    for epoch in (0, 1):   # the seeded generator carries on from epoch to epoch, in both
        assert _order(ours, epoch) == _order(plain)
    assert len(ours) == len(plain)


def test_val_shards_are_disjoint_and_cover_every_image_once(monkeypatch):
    data, shards = _data(11), []
    for rank in (0, 1):
        _fake_world(monkeypatch, rank)
        loader = Loaders()._loader(data, False, 2)
        shards.append(_order(loader))
        assert len(loader.sampler) == len(shards[-1])
    assert sorted(shards[0] + shards[1]) == list(range(11))     # no padding, no duplicates
    assert [len(s) for s in shards] == [6, 5]


def test_shuffled_shards_share_a_permutation_and_change_with_the_epoch(monkeypatch):
    data, shards = _data(11), {}
    for rank in (0, 1):
        _fake_world(monkeypatch, rank)
        loader = Loaders()._loader(data, True, 1)
        for epoch in (0, 1):
            shards[rank, epoch] = _order(loader, epoch)
    for epoch in (0, 1):
        a, b = shards[0, epoch], shards[1, epoch]
        assert len(a) == len(b) == 5 and not set(a) & set(b)
        # both ranks take every other index of one permutation: (seed, epoch) alone decides it
        assert [x for pair in zip(a, b) for x in pair] == torch.randperm(
            11, generator=torch.Generator().manual_seed(7 * 100_003 + epoch))[:10].tolist()
    assert shards[0, 0] != shards[0, 1]


def test_whole_splits_reads_every_image_while_the_group_exists(monkeypatch):
    _fake_world(monkeypatch, 1)
    data = Loaders()
    with whole_splits(data):
        inside = data._loader(_data(5), False, 2)
    assert _order(inside) == list(range(5))
    assert _order(data._loader(_data(5), False, 2)) == [1, 3]   # sharded again after the block
