"""Training guards: stop on a non-finite loss before it reaches the weights."""
from __future__ import annotations

import lightning as L
import torch


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or Inf; the weights were not updated with it."""


class StopOnNonFiniteLoss(L.Callback):
    """Raises before the backward of a NaN/Inf loss, so no optimizer step uses it and no checkpoint
    with such weights is written; the last good checkpoint stays. ``every`` > 1 checks less often
    (each check synchronises the device)."""

    def __init__(self, every: int = 1, checkpoint_dir: str | None = None):
        self.every, self.checkpoint_dir = every, checkpoint_dir

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if self.every and trainer.global_step % self.every == 0 and not bool(torch.isfinite(loss)):
            where = f"; last good checkpoint: {self.checkpoint_dir}/last.ckpt" if self.checkpoint_dir else ""
            raise NonFiniteLoss(f"loss is {float(loss)} at step {trainer.global_step}; training stopped before "
                                f"this step changed the weights{where}")
