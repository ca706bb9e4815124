"""The original model theta0: trained once per (model, data, training) config and cached.

The cache key is a hash of exactly the config that determines the weights, so a changed data or
model option trains a new original while everything else reuses the stored one. Files are written
atomically (temp file + rename): a crash half-way leaves no truncated cache entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device) from ``seed``.

    Needed at the start of a job *before anything is built*: this torch seeds its default generator
    from the OS at start-up (``torch.initial_seed()`` differs in every process), so a model built
    before seeding gets different initial weights in every run. Also called at the start of each
    training phase, so its draws (dropout, global-RNG noise) do not depend on what ran before it
    (e.g. whether theta0 was just trained in this process or read from the cache)."""
    L.seed_everything(seed, workers=True, verbose=False)


class ClassifierModule(L.LightningModule):
    """Plain cross-entropy training of the original classifier (AdamW, one-cycle schedule).

    The flip augmentation draws from its own generator seeded with ``seed``; dropout draws from the
    global RNG (seeded by ``seed_all`` before training)."""

    def __init__(self, net: nn.Module, lr: float = 2e-3, weight_decay: float = 1e-4, epochs: int = 1, seed: int = 0):
        super().__init__()
        self.net, self.lr, self.weight_decay, self.epochs = net, lr, weight_decay, epochs
        self.flip_generator = torch.Generator().manual_seed(seed)

    def training_step(self, batch, _idx):
        x, y = batch[0], batch[1]
        # horizontal flip of the batch: every shape class is flip-closed up to rotation
        if torch.rand((), generator=self.flip_generator) < 0.5:
            x = x.flip(-1)
        loss = F.cross_entropy(self.net(x), y)
        self.log("original/train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, _idx):
        x, y = batch[0], batch[1]
        self.log("original/val_acc", (self.net(x).argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(1, steps), pct_start=0.15)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def config_hash(parts: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable config."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_original_path(cache_dir: str | Path, key_parts: dict[str, Any]) -> Path:
    return Path(cache_dir) / "originals" / f"{config_hash(key_parts)}.pt"
