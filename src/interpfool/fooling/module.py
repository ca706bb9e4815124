"""The adversarial model manipulation as a LightningModule (Heo et al. 2019, eq. 2).

loss = CE(f(x; theta), y) + lambda * penalty(h(x; theta), h(x; theta0)), Adam at a constant lr,
the model in eval mode (frozen BatchNorm statistics, authors' code), exactly one backward per
step (Lightning's automatic optimisation). The heatmap comes from the same forward pass as the
logits of the CE term and is built with ``create_graph=True``, so the penalty's gradient is exact.
"""
from __future__ import annotations

import copy
from typing import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from interpfool.fooling.penalties.base import Fooling
from interpfool.interpreters.base import Interpreter, zero_map_share
from interpfool.metrics.fsr import FoolingSuccessRate

InterpreterFactory = Callable[..., Interpreter]


def frozen_copy(net: nn.Module) -> nn.Module:
    """theta0: a deep copy in eval mode whose parameters take no gradient."""
    net0 = copy.deepcopy(net).eval()
    for p in net0.parameters():
        p.requires_grad_(False)
    return net0


class FoolingModule(L.LightningModule):
    """Fine-tunes ``net`` so that ``interp``'s maps satisfy ``fooling`` while accuracy stays."""

    def __init__(self, net: nn.Module, interp: InterpreterFactory, fooling: Fooling, lam: float = 1.0,
                 lr: float = 1e-4, target: str = "label", num_classes: int | None = None,
                 interp_name: str | None = None):
        super().__init__()
        self.check_hyper(lam, lr, target)
        self.net, self.net0 = net, frozen_copy(net)
        self.interp, self.interp0 = interp(net=self.net), interp(net=self.net0)
        self.interp_name = interp_name or self.interp.name
        self.fooling, self.lam, self.lr, self.target = fooling, lam, lr, target
        num_classes = num_classes or self._infer_classes()
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")
        self.val_fsr = FoolingSuccessRate()

    @staticmethod
    def check_hyper(lam: float, lr: float, target: str) -> None:
        if not lam >= 0:
            raise ValueError(f"fooling.lam={lam}; allowed: >= 0")
        if not lr > 0:
            raise ValueError(f"fooling.lr={lr}; allowed: > 0")
        if target not in ("label", "pred"):
            raise ValueError(f"target={target!r}; allowed: label, pred")

    def _infer_classes(self) -> int:
        last = [m for m in self.net.modules() if isinstance(m, nn.Linear)][-1]
        return last.out_features

    def train(self, mode: bool = True):
        """Lightning switches to train mode each epoch; the fooled model stays in eval mode."""
        super().train(mode)
        return self._freeze_modes()

    def _freeze_modes(self):
        self.net.eval()
        self.net0.eval()
        return self

    def on_train_batch_start(self, batch, batch_idx):
        # Lightning restores each submodule's mode by attribute after validation, bypassing
        # train(); re-assert eval mode (frozen BatchNorm statistics, authors' code) every step.
        self._freeze_modes()

    def on_validation_batch_start(self, batch, batch_idx, dataloader_idx=0):
        self._freeze_modes()

    # -- the objective -------------------------------------------------------------------------
    def original_maps(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """theta0's maps, without a graph (theta0 is frozen)."""
        if not self.fooling.needs_original:
            return None
        return self.interp0(x, self.target, labels=y)

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        fwd = self.interp.forward(x)
        ce = F.cross_entropy(fwd.logits, y)
        h = self.interp.explain(fwd, self.target, labels=y, create_graph=True)
        penalty = self.fooling.penalty(h, self.original_maps(x, y)).mean()
        return {"loss": ce + self.lam * penalty, "ce": ce, "penalty": penalty, "maps": h, "logits": fwd.logits}

    def training_step(self, batch, _idx):
        x, y = batch[0], batch[1]
        out = self.objective(x, y)
        self.log_dict({"train/loss": out["loss"], "train/ce": out["ce"], "train/penalty": out["penalty"]},
                      prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/zero_maps", zero_map_share(out["maps"].detach()), on_step=True, on_epoch=False)
        return out["loss"]

    # -- validation ----------------------------------------------------------------------------
    def validation_step(self, batch, _idx):
        x, y = batch[0], batch[1]
        with torch.enable_grad():
            fwd = self.interp.forward(x)
            h = self.interp.explain(fwd, self.target, labels=y)
            t = self.fooling.test_loss(h, self.original_maps(x, y))
        logits = fwd.logits.detach()
        self.val_top1.update(logits, y)
        self.val_top5.update(logits, y)
        self.val_fsr.update(self.fooling.success(t))
        self.log("val/penalty", t.mean(), sync_dist=True)
        self.log("val/zero_maps", zero_map_share(h), sync_dist=True)

    def on_validation_epoch_end(self):
        self.log_dict({"val/acc_top1": self.val_top1.compute(), "val/acc_top5": self.val_top5.compute(),
                       f"val/fsr/{self.interp_name}": self.val_fsr.compute()}, prog_bar=True)
        for metric in (self.val_top1, self.val_top5, self.val_fsr):
            metric.reset()

    def configure_optimizers(self):
        # Adam at a constant learning rate (Heo et al. 2019, Sec. 4.1; authors' code).
        return torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=self.lr)
