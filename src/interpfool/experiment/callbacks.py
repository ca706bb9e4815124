"""Training guards: a NaN/Inf loss never reaches the weights, and the run stops (exit code 3)."""
from __future__ import annotations

import math

import lightning as L
import torch


class NonFiniteLoss(RuntimeError):
    """The loss (or its gradient) became NaN or Inf; the weights were not updated with it."""


def _device_event(device: torch.device):
    """An event recorded on ``device``'s current stream, after the copy just queued there; None on the CPU, where
    the copy has already happened."""
    if device.type == "cpu":
        return None
    event = torch.Event(device=device)
    event.record()
    return event


class StopOnNonFiniteLoss(L.Callback):
    """Stops training when the loss or its gradient is NaN/Inf, and no step from that one on changes the weights.

    On the device (the optimizer skips a step itself when it has a ``found_inf`` tensor, as fused Adam does:
    ``_step_supports_amp_scaling``; ``FoolingModule`` uses fused Adam on an accelerator): after the backward,
    every step's loss and gradients are checked on the device (the gradients by GradScaler's own non-finite check,
    at scale 1, which leaves them unchanged) into a sticky flag that is the optimizer's ``found_inf``, so the bad
    step and every later one skip the update on the device: parameters and Adam's moments and step count unchanged.
    The host learns of it from a copy of a 4-element record (first bad step, its loss, whether the loss was
    non-finite here / on some rank), queued every ``every`` steps without waiting (pinned memory) and read once
    it has arrived (an event queried, never waited on), and raises then. With a fused optimizer on the CPU the copy
    is immediate: the bad step raises before its optimizer step runs. Before a checkpoint is written and at the end of training the record
    is read at once (a wait there), so no checkpoint holds the steps after a bad one.

    Under DDP the gradients were all-reduced in the backward, so they are non-finite on every rank when they are
    on one; a loss can still be Inf with finite gradients (an overflowing sum), so the two flags are all-reduced
    (max, one 2-element collective on the device, no host wait with NCCL), and every rank skips the same steps. The
    host read is then taken a fixed ``every`` steps after its copy was queued (waiting for it if the host is that
    far ahead), so every rank raises at the same step and none is left waiting in the next collective.

    Fallback, the host read before the backward (one sync per check on an accelerator, a Lightning ``reduce`` under
    DDP): when the optimizer does not take ``found_inf`` (torch's default Adam, which ``FoolingModule`` keeps on the
    CPU, where the read waits for no device; fused kernels unavailable for the parameters' device or dtype; several
    optimizers) or a GradScaler (``16-mixed``) owns ``found_inf``.
    ``every`` = 0 turns the guard off."""

    def __init__(self, every: int = 1, checkpoint_dir: str | None = None):
        self.every, self.checkpoint_dir = every, checkpoint_dir
        self._reset()

    def _reset(self) -> None:
        self._record = self._count = self._one = self._host = self._loss = self._pending = None
        self._base, self._next = 0, 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._reset()

    @staticmethod
    def skips_on_device(trainer) -> bool:
        """Whether the optimizer skips a step on the device from this guard's ``found_inf``."""
        optimizers = getattr(trainer, "optimizers", None) or []
        if len(optimizers) != 1 or getattr(getattr(trainer, "precision_plugin", None), "scaler", None) is not None:
            return False
        return bool(getattr(getattr(optimizers[0], "_optimizer", optimizers[0]), "_step_supports_amp_scaling", False))

    # -- on the device -------------------------------------------------------------------------
    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if not self.every:
            return
        if not self.skips_on_device(trainer):
            return self._host_check(trainer, loss)
        loss = loss.detach()
        # accumulated gradients: the first non-finite loss of the window is kept
        self._loss = loss if self._loss is None else torch.where(torch.isfinite(self._loss), loss, self._loss)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not self.every or self._loss is None:
            return
        optimizer = getattr(optimizer, "_optimizer", optimizer)
        loss, self._loss = self._loss, None
        if self._record is None:
            # [index of the first non-finite step (-1: none), its loss here, loss non-finite here, on some rank];
            # float32 on every device (exact step indices up to 2^24)
            self._record = torch.full((4,), -1.0, device=loss.device)
            self._count = torch.zeros((), device=loss.device)
            self._one = torch.ones((), device=loss.device)
            # the host end of the record's copies, one at a time (pinned: a copy that waits for nothing)
            self._host = torch.full((4,), -1.0, pin_memory=self._record.is_cuda)
            self._base = trainer.global_step
        loss_bad = (~torch.isfinite(loss)).to(torch.float32)
        grad_bad = torch.zeros_like(loss_bad)
        groups: dict = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    groups.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
        for grads in groups.values():   # sets grad_bad to 1 on a NaN/Inf; grads * 1.0: unchanged
            torch._amp_foreach_non_finite_check_and_unscale_(grads, grad_bad, self._one)
        flags = torch.stack([torch.maximum(loss_bad, grad_bad), loss_bad])
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        newly = (flags[0] > 0) & (self._record[0] < 0)
        self._record = torch.where(newly, torch.stack([self._count, loss.to(torch.float32), loss_bad, flags[1]]),
                                   self._record)
        self._count.add_(1)
        optimizer.found_inf = (self._record[0] >= 0).to(torch.float32)     # sticky: no later step updates either
        self._poll(trainer)

    def _poll(self, trainer) -> None:
        step = trainer.global_step
        self._read_if_arrived(trainer)
        if self._pending is None and step >= self._next:
            self._host.copy_(self._record, non_blocking=True)
            self._pending, self._next = (self._host, _device_event(self._record.device), step), step + self.every
            self._read_if_arrived(trainer)

    def _read_if_arrived(self, trainer) -> None:
        if self._pending is None:
            return
        host, event, launched = self._pending
        if event is not None:
            if trainer.world_size > 1:      # every rank reads at the same step
                if trainer.global_step < launched + self.every:
                    return
                event.synchronize()
            elif not event.query():
                return
        self._pending = None
        self._raise_if_bad(trainer, host.tolist())

    def _read_now(self, trainer) -> None:
        """Before a checkpoint is written and at the end of training: wait for the record."""
        if self.every and self._record is not None:
            self._pending = None
            self._raise_if_bad(trainer, self._record.tolist())

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._read_now(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._read_now(trainer)

    def _raise_if_bad(self, trainer, record: list[float]) -> None:
        first, value, here, anywhere = record
        if first < 0:
            return
        first, now = self._base + int(first), trainer.global_step
        if here:
            what = f"loss is {value}"
        elif anywhere:
            what = f"loss is non-finite on another rank (here {value})"
        else:
            what = f"loss is {value} but its gradient is non-finite"
        skipped = "" if now == first else f" (step {first} was skipped on the device)" if now == first + 1 else \
            f" (steps {first} to {now - 1} were skipped on the device)"
        self._stop(trainer, what, first, skipped)

    def _stop(self, trainer, what: str, step: int, skipped: str = "") -> None:
        where = f"; last good checkpoint: {self.checkpoint_dir}/last.ckpt" if self.checkpoint_dir else ""
        rank = f" (rank {trainer.global_rank})" if trainer.world_size > 1 else ""
        raise NonFiniteLoss(f"{what} at step {step}{rank}; training stopped before this step changed the "
                            f"weights{skipped}{where}")

    # -- fallback: a host read before the backward ---------------------------------------------
    def _host_check(self, trainer, loss: torch.Tensor) -> None:
        if trainer.global_step % self.every:
            return
        bad = (~torch.isfinite(loss.detach())).to(torch.float32).reshape(())
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce(bad, reduce_op="max")
        if bool(bad):
            value = float(loss)
            what = f"loss is {value}" if not math.isfinite(value) else \
                f"loss is non-finite on another rank (here {value})"
            self._stop(trainer, what, trainer.global_step)
