"""Rich progress bars that count what a run is bounded by.

Lightning's ``RichProgressBar`` counts batches per epoch and labels the bar ``Epoch e/max_epochs-1``. The fooling
run is bounded by ``trainer.max_steps`` with ``max_epochs=-1``, so that read ``Epoch 6/-2``. ``RunProgressBar``
draws instead:

* step-bounded fits (``max_steps > 0``, the fooling job): one bar for the whole run, ``Fooling ━━━ step k/max_steps``,
  counted in optimizer steps (``trainer.global_step``, so a resumed run starts where it stopped);
* epoch-bounded fits (theta0): ``theta0 epoch e/epochs ━━━ batch b/n``, epochs counted from 1.

The loss and metrics Lightning shows stay on the bar; validation keeps Lightning's bar (hidden when done, counting
batches). Lightning disables the bar on ranks other than 0 (``ProgressBar.setup``), so under DDP only rank 0 draws.
When stdout is not a terminal (CI, a log file), Rich draws nothing while the bar runs and prints its final state once.
"""
from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from rich.progress import ProgressColumn, Task
from rich.text import Text


class CountColumn(ProgressColumn):
    """``<unit> completed/total``: ``step 12/800`` on a task added with ``unit="step"``, else ``batch 3/10``."""

    def __init__(self, style: Any = ""):
        self.style = style
        super().__init__()

    def render(self, task: Task) -> Text:
        total = "--" if task.total is None or task.total == float("inf") else int(task.total)
        return Text(f"{task.fields.get('unit', 'batch')} {int(task.completed)}/{total}", style=self.style)


class RunProgressBar(RichProgressBar):
    """A ``RichProgressBar`` labelled ``label`` that counts steps (``max_steps > 0``) or epochs (see the module)."""

    def __init__(self, label: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.label = label

    def counts_steps(self, trainer: L.Trainer | None = None) -> bool:
        trainer = trainer or self.trainer
        return trainer.max_steps is not None and trainer.max_steps > 0

    def configure_columns(self, trainer: L.Trainer) -> list:
        columns = super().configure_columns(trainer)   # Lightning's BatchesProcessedColumn is the 3rd
        return [CountColumn(self.theme.batch_progress) if i == 2 else c for i, c in enumerate(columns)]

    def _get_train_description(self, current_epoch: int) -> str:
        if self.counts_steps():
            text = self.label
        else:
            max_epochs = self.trainer.max_epochs
            of = f"/{max_epochs}" if max_epochs and max_epochs > 0 else ""
            text = f"{self.label} epoch {current_epoch + 1}{of}"
        return f"{text:{len(self.validation_description)}}"   # as Lightning: no jitter beside the val bar

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.counts_steps(trainer):
            return super().on_train_epoch_start(trainer, pl_module)
        # one bar for the whole run: created once, never reset at an epoch boundary
        if self.is_enabled and self.progress is not None and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self.refresh()

    def _initialize_train_progress_bar_id(self) -> None:
        if not self.counts_steps():
            return super()._initialize_train_progress_bar_id()
        # a resumed run starts at its global step (given as the start, not as an advance: no burst in the it/s)
        description = self._get_train_description(0)
        self.train_progress_bar_id = self.progress.add_task(
            f"[{self.theme.description}]{description}" if self.theme.description else description,
            total=self.trainer.max_steps, completed=self.trainer.global_step, unit="step")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self.counts_steps(trainer):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.is_enabled and self.progress is not None and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()
