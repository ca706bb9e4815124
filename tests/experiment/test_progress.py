"""RunProgressBar: the fooling bar counts steps k/max_steps across epochs (Lightning's read ``Epoch 6/-2``),
theta0's bar counts epochs from 1; both run with stdout captured (not a terminal) and only rank 0 draws."""
from types import SimpleNamespace

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from interpfool.experiment.progress import RunProgressBar


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.net(batch[0]).pow(2).mean()
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(bar, **limits):
    loader = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)   # 2 batches an epoch
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, callbacks=[bar], **limits)
    trainer.fit(Tiny(), loader)
    return trainer


def _rendered(bar):
    task = bar.train_progress_bar
    return task.description.strip(), bar.progress.columns[2].render(task).plain, task.total, task.completed


def test_a_step_bounded_fit_shows_step_k_of_max_steps_across_epochs(capsys):
    bar = RunProgressBar("Fooling")
    trainer = _fit(bar, max_steps=3, max_epochs=-1)                        # 3 steps: 2 epochs of 2 batches
    assert trainer.global_step == 3 and trainer.current_epoch >= 1
    assert _rendered(bar) == ("Fooling", "step 3/3", 3, 3)
    out = capsys.readouterr().out                                          # not a terminal: the final bar, once
    assert "Fooling" in out and "step 3/3" in out and "loss:" in out
    assert "Epoch" not in out and "-2" not in out


def test_an_epoch_bounded_fit_shows_epoch_e_of_epochs(capsys):
    bar = RunProgressBar("theta0")
    _fit(bar, max_epochs=2)
    assert _rendered(bar) == ("theta0 epoch 2/2", "batch 2/2", 2, 2)
    out = capsys.readouterr().out
    assert "theta0 epoch 2/2" in out and "Epoch" not in out


def test_only_rank_zero_draws():
    bar = RunProgressBar("Fooling")
    bar.setup(SimpleNamespace(is_global_zero=False), None, "fit")
    assert bar.is_disabled


def test_validation_counts_batches_beside_the_step_bar():
    bar = RunProgressBar("Fooling")
    loader = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)

    class WithVal(Tiny):
        def validation_step(self, batch, batch_idx):
            pass

    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, callbacks=[bar], max_steps=3, max_epochs=-1,
                        val_check_interval=2, check_val_every_n_epoch=None, num_sanity_val_steps=0)
    trainer.fit(WithVal(), loader, loader)
    val = bar.progress.tasks[bar.val_progress_bar_id]
    assert bar.progress.columns[2].render(val).plain == "batch 2/2"
    assert _rendered(bar)[1] == "step 3/3"


def test_a_resumed_fit_starts_the_bar_at_its_step(tmp_path):
    """Resumed at step 2 of 4: the bar reads step 4/4 at the end, and only the 2 steps run now count towards its
    speed (the resumed start is no burst of 2 steps in no time)."""
    first = _fit(RunProgressBar("Fooling"), max_steps=2, max_epochs=-1)
    first.save_checkpoint(tmp_path / "last.ckpt")
    bar = RunProgressBar("Fooling")
    loader = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, callbacks=[bar], max_steps=4, max_epochs=-1)
    trainer.fit(Tiny(), loader, ckpt_path=tmp_path / "last.ckpt")
    assert _rendered(bar)[1:] == ("step 4/4", 4, 4)
    assert sum(sample.completed for sample in bar.train_progress_bar._progress) == 2


def test_on_a_terminal_every_frame_of_the_step_bar_counts_steps():
    """Drawn to a (forced) terminal, frame by frame: the bar's first frame, drawn while Rich adds the task, read
    ``Fooling ... batch 0/3`` before the unit was carried by the task itself."""
    import io
    import re

    buf = io.StringIO()
    bar = RunProgressBar("Fooling", console_kwargs={"file": buf, "force_terminal": True, "width": 120})
    _fit(bar, max_steps=3, max_epochs=-1)
    frames = [line for line in re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue()))
              if "Fooling" in line]
    assert frames and all(re.search(r"step \d/3", f) for f in frames), frames
    assert "step 3/3" in frames[-1]
