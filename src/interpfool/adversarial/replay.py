"""Minibatch replay of free adversarial training (Shafahi et al. 2019, Alg. 1: "for i = 1 ... m": every minibatch is
trained on m times in a row, each time with the perturbation left by the previous replay).

``ReplayLoader(loader, m)`` yields every batch of ``loader`` m times, so each replay is one ordinary optimizer step
(one backward) of Lightning's loop, and ``trainer.max_steps`` counts replays (Shafahi's iterations). Lightning's
per-epoch ``set_epoch`` reaches the wrapped loader's sampler (``sampler`` / ``batch_sampler`` are passed through),
and a resumable loader's state (``data.resumable``: the global step) is converted between replays and batches.
"""
from __future__ import annotations

from typing import Any, Iterator


class ReplayLoader:
    """Each batch of ``loader`` ``replays`` times in a row (the same batch object)."""

    def __init__(self, loader: Any, replays: int):
        if isinstance(replays, bool) or not isinstance(replays, int) or replays < 1:
            raise ValueError(f"adversarial.replays={replays!r}; allowed: an integer >= 1")
        self.loader, self.replays = loader, replays

    def __len__(self) -> int:
        return len(self.loader) * self.replays

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            for _ in range(self.replays):
                yield batch

    @property
    def sampler(self):
        return getattr(self.loader, "sampler", None)

    @property
    def batch_sampler(self):
        return getattr(self.loader, "batch_sampler", None)

    @property
    def batch_size(self):
        return getattr(self.loader, "batch_size", None)

    @property
    def dataset(self):
        return getattr(self.loader, "dataset", None)

    def state_dict(self) -> dict:
        inner = self.loader.state_dict() if hasattr(self.loader, "state_dict") else {}
        return {"replays": self.replays, "inner": inner}

    def load_state_dict(self, state: dict) -> None:
        """A resumable loader's global step counts replays here: it resumes at the batch of that step (a run killed
        half-way through a batch's replays starts the next batch)."""
        if not hasattr(self.loader, "load_state_dict"):
            return
        inner = dict(state.get("inner", state))
        if "global_step" in inner:
            inner["global_step"] = -(-int(inner["global_step"]) // self.replays)
        self.loader.load_state_dict(inner)
