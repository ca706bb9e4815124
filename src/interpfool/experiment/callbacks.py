"""Training guards: stop on a non-finite loss before it reaches the weights."""
from __future__ import annotations

import math

import lightning as L
import torch


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or Inf; the weights were not updated with it."""


class StopOnNonFiniteLoss(L.Callback):
    """Raises before the backward of a NaN/Inf loss, so no optimizer step uses it and no checkpoint
    with such weights is written; the last good checkpoint stays. ``every`` > 1 checks less often.

    Under DDP the decision is all-reduced (max of the per-rank "non-finite" flags), so a NaN on one rank
    stops every rank at the same step: each raises, none is left waiting in the next gradient all-reduce.
    A check costs one host read of a one-element flag (and one all-reduce of it under DDP); the flag is
    built on the device, so nothing else in the step waits for it."""

    def __init__(self, every: int = 1, checkpoint_dir: str | None = None):
        self.every, self.checkpoint_dir = every, checkpoint_dir

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if not self.every or trainer.global_step % self.every:
            return
        bad = (~torch.isfinite(loss.detach())).to(torch.float32).reshape(())
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce(bad, reduce_op="max")
        if bool(bad):
            value = float(loss)
            where = f"; last good checkpoint: {self.checkpoint_dir}/last.ckpt" if self.checkpoint_dir else ""
            what = f"loss is {value}" if not math.isfinite(value) else \
                f"loss is non-finite on another rank (here {value})"
            rank = f" (rank {trainer.global_rank})" if trainer.world_size > 1 else ""
            raise NonFiniteLoss(f"{what} at step {trainer.global_step}{rank}; training stopped before "
                                f"this step changed the weights{where}")
