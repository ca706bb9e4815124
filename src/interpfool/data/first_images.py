"""The first ``n`` images of a loader: ``eval.images`` (an evaluation on part of a split, for CPU time)."""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch


def _head(batch: Any, k: int) -> Any:
    """The first ``k`` items of a batch: a tensor, or a tuple / list / dict of them (other leaves kept)."""
    if isinstance(batch, torch.Tensor):
        return batch[:k]
    if isinstance(batch, (tuple, list)):
        return type(batch)(_head(b, k) for b in batch)
    if isinstance(batch, dict):
        return {key: _head(v, k) for key, v in batch.items()}
    return batch


def _size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    first = next(iter(batch.values() if isinstance(batch, dict) else batch))
    return _size(first)


class FirstImages:
    """Re-iterable: each pass yields ``loader``'s batches cut to its first ``n`` images in all (``n=None``: all),
    in the loader's order, so every pass (theta0, theta*, each defense) sees the same images."""

    def __init__(self, loader: Iterable, n: int | None):
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"eval.images={n!r}; allowed: null (all) or an integer >= 1")
        self.loader, self.n = loader, n

    def __iter__(self) -> Iterator:
        if self.n is None:
            yield from self.loader
            return
        left = self.n
        for batch in self.loader:
            size = _size(batch)
            yield batch if size <= left else _head(batch, left)
            left -= min(size, left)
            if left == 0:
                return
