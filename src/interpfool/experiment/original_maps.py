"""theta0's maps of the evaluation images, kept for the next run of the same process.

Every job of a multirun that shares a theta0 (the leaderboard: 11 interpreters x 2 foolings per model, data and
seed) evaluates theta0 through the same interpreters on the same images; only theta*'s maps change. The end-of-run
evaluation (``evaluate_pair``) looks theta0's map and logits up here before computing them. An entry is keyed by
what decides the map: theta0's weights, the interpreter's settings, the target, the classes of a swap fooling, the
device and the batch (images and labels). Only deterministic interpreters (``Interpreter.deterministic``: not
SmoothGrad without a seed) are kept, so a reused map is bit-identical to a recomputed one. One theta0 at a time:
a new theta0 empties the store.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn


def fingerprint(*tensors: torch.Tensor) -> str:
    """SHA-1 of the tensors' shapes, dtypes and bytes."""
    digest = hashlib.sha1()
    for t in tensors:
        t = t.detach().contiguous().cpu()
        digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


class OriginalMaps:
    """Maps and logits of one theta0, keyed per (interpreter settings, target, classes, device, batch)."""

    def __init__(self):
        self.theta0: str | None = None
        self.entries: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.hits = self.misses = 0

    def bind(self, net0: nn.Module) -> None:
        """Serve ``net0``: the store is emptied when its weights differ from the last theta0's."""
        state = net0.state_dict()
        theta0 = fingerprint(*(state[k] for k in sorted(state)))
        if theta0 != self.theta0:
            self.theta0, self.entries = theta0, {}

    def get(self, key: tuple) -> tuple[torch.Tensor, torch.Tensor] | None:
        found = self.entries.get(key)
        self.hits += found is not None
        self.misses += found is None
        return found

    def put(self, key: tuple, maps: torch.Tensor, logits: torch.Tensor) -> None:
        self.entries[key] = (maps.detach().clone(), logits.detach().clone())


STORE = OriginalMaps()   # the process's store: train.py's end-of-run evaluation, one multirun job after another
