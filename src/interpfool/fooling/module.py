"""The adversarial model manipulation as a LightningModule (Heo et al. 2019, eq. 2).

loss = CE(f(x; theta), y) + lambda * penalty(h(x; theta), h(x; theta0)), Adam at a constant lr,
the model in eval mode (frozen BatchNorm statistics, authors' code), exactly one backward per
step (Lightning's automatic optimisation). The heatmap comes from the same forward pass as the
logits of the CE term and is built with ``create_graph=True``, so the penalty's gradient is exact.

Swap foolings (``fooling.classes``, active fooling) take CE on a normal batch and the penalty on a
collage batch (Heo Sec. 3.2.2): training batches are then ``{"images": (x, y, ...), "collage": (xc, ...)}``
(``experiment.build.fit_loaders`` builds that ``CombinedLoader``), still with one backward of CE + lambda * penalty.
Validation then takes two loaders: 0 = images (accuracy), 1 = collages (FSR per class).

Each validation also logs ``val/top1_drop_points`` (theta0's top-1 minus theta*'s, on the same images) and
``val/select_score``: the FSR (the lower of FSR(c1), FSR(c2) for a swap fooling) minus 1e-4 x the drop (equal
FSRs: the smaller drop wins) when the drop is within ``max_top1_drop`` points, else that minus 2 (below every
admissible one). ``select.weights=best`` keeps
the checkpoint with the highest score (``pipeline.run``), as the authors evaluated every 10,000 steps.
"""
from __future__ import annotations

import copy
from typing import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from interpfool.fooling.penalties.base import Fooling
from interpfool.interpreters.base import Forward, Interpreter, zero_map_share
from interpfool.metrics.fsr import FoolingSuccessRate

InterpreterFactory = Callable[..., Interpreter]


def frozen_copy(net: nn.Module) -> nn.Module:
    """theta0: a deep copy in eval mode whose parameters take no gradient."""
    net0 = copy.deepcopy(net).eval()
    for p in net0.parameters():
        p.requires_grad_(False)
    return net0


def fooling_maps(interp: Interpreter, fwd: Forward, fooling: Fooling, target: str = "label",
                 labels: torch.Tensor | None = None, create_graph: bool = False) -> torch.Tensor:
    """The maps a fooling compares, from one forward ``fwd``: [B, H, W] for ``target``, or
    [B, len(classes), H, W] for a swap fooling (one explanation per class in ``fooling.classes``)."""
    if fooling.classes:
        return torch.stack([interp.explain(fwd, c, create_graph=create_graph) for c in fooling.classes], 1)
    return interp.explain(fwd, target, labels=labels, create_graph=create_graph)


ADAM_IMPLEMENTATIONS = ("auto", "fused", "foreach", "for_loop")


def fused_adam_supported(params) -> bool:
    """Whether torch's fused Adam takes every parameter: floating point, on a device with fused kernels (torch's
    own list, the one its optimizer checks)."""
    from torch.optim import optimizer as optim_base

    devices = getattr(optim_base, "_get_fused_kernels_supported_devices", lambda: ["cpu", "cuda"])()
    return bool(params) and all(p.is_floating_point() and p.device.type in devices for p in params)


def selection_score(fsr: torch.Tensor, drop: torch.Tensor, max_drop: float) -> torch.Tensor:
    """Score of a validation for ``select.weights=best``: the FSR minus 1e-4 x the top-1 drop in points (equal
    FSRs, which differ by >= 1/n_images >> 3e-4 otherwise: the smaller drop wins); minus 2 more when the drop
    exceeds ``max_drop``, so every admissible validation outranks every inadmissible one."""
    score = fsr - 1e-4 * drop
    return torch.where(drop <= max_drop, score, score - 2)


class FoolingModule(L.LightningModule):
    """Fine-tunes ``net`` so that ``interp``'s maps satisfy ``fooling`` while accuracy stays."""


    def __init__(self, net: nn.Module, interp: InterpreterFactory, fooling: Fooling, lam: float = 1.0,
                 lr: float = 1e-4, target: str = "label", num_classes: int | None = None,
                 interp_name: str | None = None, max_top1_drop: float = 3.0, original_cache: int = 0,
                 adversary=None, pgd=None, adam: str = "auto"):
        super().__init__()
        if adam not in ADAM_IMPLEMENTATIONS:
            raise ValueError(f"fooling.adam={adam!r}; allowed: {', '.join(ADAM_IMPLEMENTATIONS)}")
        self.adam = adam
        # free adversarial training kept on during fooling (Heo et al. 2019, Fig. 4c; ``adversarial.free``): CE at
        # x + delta, the penalty on the clean maps, delta from the same backward; ``pgd``: val/acc_top1_pgd
        self.adversary, self.pgd = adversary, pgd
        self.check_hyper(lam, lr, target)
        if not max_top1_drop >= 0:
            raise ValueError(f"select.max_top1_drop={max_top1_drop}; allowed: >= 0 (top-1 points)")
        self.max_top1_drop = float(max_top1_drop)
        # theta0's training maps per image index (the data must serve the same image for an index every
        # epoch): 0 = off, else the number of training images. Filled lazily, never checkpointed.
        self.original_cache = int(original_cache)
        self._h0_store: torch.Tensor | None = None
        self._h0_known: torch.Tensor | None = None          # on the host: decided before the batch moves
        self.net, self.net0 = net, frozen_copy(net)
        self.interp, self.interp0 = interp(net=self.net), interp(net=self.net0)
        self.interp_name = interp_name or self.interp.name
        self.fooling, self.lam, self.lr, self.target = fooling, lam, lr, target
        num_classes = num_classes or self._infer_classes()
        # validate_args=False: the argument checks read the labels back to the host on every update
        acc = {"average": "micro", "validate_args": False}
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, **acc)
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), **acc)
        self.val_top1_0 = MulticlassAccuracy(num_classes, top_k=1, **acc)       # theta0, same images
        self.val_fsr = nn.ModuleList([FoolingSuccessRate() for _ in (self.fooling.classes or (None,))])
        self.val_top1_pgd = MeanMetric() if pgd is not None else None

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
    def explain(self, interp: Interpreter, fwd, y: torch.Tensor | None, create_graph: bool = False) -> torch.Tensor:
        return fooling_maps(interp, fwd, self.fooling, self.target, y, create_graph)

    def original_maps(self, x: torch.Tensor, y: torch.Tensor | None, index: torch.Tensor | None = None,
                      new: tuple[torch.Tensor, bool] | None = None) -> torch.Tensor | None:
        """theta0's maps, without a graph (theta0 is frozen). With ``index`` (training images' dataset
        indices) and ``original_cache`` on, each image's map is computed once and then read back.
        ``new``: (batch positions of the images not seen before, whether there is any), as ``on_before_batch_transfer``
        decided it on the host index; without it the index is brought to the host here."""
        if not self.fooling.needs_original:
            return None
        if index is None or not self.original_cache:
            return self._original(x, y)[1]
        positions, any_missing = new if new is not None else self._mark_new(index.cpu())
        if any_missing:
            # positions of the new images in the batch (an integer index that came with the batch): no
            # boolean-mask indexing, whose result size the host would have to read from the device
            positions = positions.to(x.device)
            fresh = self._original(x.index_select(0, positions), None if y is None else y.index_select(0, positions))[1]
            if self._h0_store is None:
                self._h0_store = fresh.new_zeros((self.original_cache, *fresh.shape[1:]))
            self._h0_store.index_copy_(0, index.index_select(0, positions), fresh)   # theta0 is frozen: no graph
        return self._h0_store.index_select(0, index)

    def _original(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """theta0's logits and maps from one forward pass."""
        with torch.enable_grad():
            fwd = self.interp0.forward(x)
            return fwd.logits, self.explain(self.interp0, fwd, y)

    def _mark_new(self, index: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Host-side record of the images whose theta0 map is cached: (batch positions of the new ones, any
        new), and marks them as cached (the step that receives the positions computes them)."""
        if self._h0_known is None:
            self._h0_known = torch.zeros(self.original_cache, dtype=torch.bool)
        new = ~self._h0_known[index]
        self._h0_known[index] = True
        return new.nonzero().flatten(), bool(new.any())

    def objective(self, x: torch.Tensor, y: torch.Tensor, collage: torch.Tensor | None = None,
                  index: torch.Tensor | None = None, new: tuple[torch.Tensor, bool] | None = None
                  ) -> dict[str, torch.Tensor]:
        """CE + lambda * penalty. Passive foolings: maps of ``x`` from the forward that gives the CE logits
        (``index``: the images' dataset indices, for theta0's map cache). Swap foolings: CE on ``x``,
        penalty on the maps of the ``collage`` images."""
        if self.fooling.classes:
            if collage is None:
                raise ValueError(f"{self.fooling.name} fooling needs a collage batch next to the image batch")
            logits = self.net(x if self.adversary is None else self.adversary.perturb(x))
            fwd = self.interp.forward(collage)
            inputs, labels, index = collage, None, None
        else:
            fwd = self.interp.forward(x)
            logits, inputs, labels = fwd.logits, x, y
            if self.adversary is not None:
                # free adversarial training (Shafahi et al. 2019, Alg. 1) kept on: CE at x + delta (a second forward,
                # still one backward); the penalty stays on the clean maps, which FSR measures, so delta's gradient
                # is CE's alone
                logits = self.net(self.adversary.perturb(x))
        ce = F.cross_entropy(logits, y)
        h = self.explain(self.interp, fwd, labels, create_graph=True)
        penalty = self.fooling.penalty(h, self.original_maps(inputs, labels, index, new)).mean()
        return {"loss": ce + self.lam * penalty, "ce": ce, "penalty": penalty, "maps": h, "logits": logits}

    @staticmethod
    def split_batch(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(x, y, collage images or None) from a plain batch or a ``{"images", "collage"}`` batch."""
        if isinstance(batch, dict):
            return batch["images"][0], batch["images"][1], batch["collage"][0]
        return batch[0], batch[1], None

    def on_before_batch_transfer(self, batch, dataloader_idx):
        """theta0 map cache: an indexed training batch (x, y, mask, index) still on the host gets the batch
        positions of its images not seen before and whether there is any, so the step need not ask the device."""
        if (self.original_cache and self.trainer.training and isinstance(batch, (list, tuple))
                and len(batch) == 4):
            return [*batch, *self._mark_new(batch[3])]
        return batch

    def training_step(self, batch, _idx):
        # an indexed training batch (x, y, mask, index[, new, any new]) feeds theta0's map cache
        cached = self.original_cache and not isinstance(batch, dict) and len(batch) > 3
        index = batch[3] if cached else None
        new = (batch[4], batch[5]) if cached and len(batch) == 6 else None
        out = self.objective(*self.split_batch(batch), index=index, new=new)
        self.log_dict({"train/loss": out["loss"], "train/ce": out["ce"], "train/penalty": out["penalty"]},
                      prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/zero_maps", zero_map_share(out["maps"].detach().flatten(0, -3)), on_step=True, on_epoch=False)
        return out["loss"]

    def on_after_backward(self):
        if self.adversary is not None:       # Shafahi Alg. 1: delta ascends its gradient from this step's backward
            self.adversary.ascend()

    # -- validation ----------------------------------------------------------------------------
    def validation_step(self, batch, _idx, dataloader_idx: int = 0):
        x = batch[0]
        if self.val_top1_pgd is not None and dataloader_idx == 0 and self.pgd.wants(_idx):
            self.val_top1_pgd.update(self.pgd.correct(self.net, x, batch[1], seed=_idx).float())
        if self.fooling.classes and dataloader_idx == 0:       # swap fooling: images -> accuracy only
            logits = self.net(x)
            self.val_top1.update(logits, batch[1])
            self.val_top5.update(logits, batch[1])
            self.val_top1_0.update(self.net0(x), batch[1])
            return
        y = None if self.fooling.classes else batch[1]
        with torch.enable_grad():
            fwd = self.interp.forward(x)
            h = self.explain(self.interp, fwd, y)
            logits0, h0 = self._original(x, y) if self.fooling.needs_original else (None, None)
            penalty, t = self.fooling.penalty(h, h0), self.fooling.test_loss(h, h0)
        if not self.fooling.classes:
            logits = fwd.logits.detach()
            self.val_top1.update(logits, y)
            self.val_top5.update(logits, y)
            if logits0 is None:                                # theta0 not run for its maps
                with torch.no_grad():
                    logits0 = self.net0(x)
            self.val_top1_0.update(logits0.detach(), y)
        success = self.fooling.success(t).reshape(t.shape[0], -1)
        for k, metric in enumerate(self.val_fsr):
            metric.update(success[:, k])
        self.log_dict({"val/penalty": penalty.mean(), "val/test_loss": t.nanmean(),
                       "val/zero_maps": zero_map_share(h.flatten(0, -3))}, sync_dist=True, add_dataloader_idx=False)

    def on_validation_epoch_end(self):
        name = self.interp_name
        rates = [metric.compute() for metric in self.val_fsr]
        top1 = self.val_top1.compute()
        drop = 100 * (self.val_top1_0.compute() - top1)
        worst = torch.stack(rates).min()
        logs = {"val/acc_top1": top1, "val/acc_top5": self.val_top5.compute(),
                f"val/fsr/{name}": torch.stack(rates).mean()}
        if self.fooling.classes:        # FSR(c1), FSR(c2); val/fsr/<interp> is their mean
            logs.update({f"val/fsr/{name}/c{k + 1}": rate for k, rate in enumerate(rates)})
        if self.val_top1_pgd is not None:
            logs["val/acc_top1_pgd"] = self.val_top1_pgd.compute()
            self.val_top1_pgd.reset()
        self.log_dict(logs, prog_bar=True)
        self.log_dict({"val/top1_drop_points": drop,
                       "val/select_score": selection_score(worst, drop, self.max_top1_drop)})
        for metric in (self.val_top1, self.val_top5, self.val_top1_0, *self.val_fsr):
            metric.reset()

    # -- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """theta0 (``net0.*``) stays out of the checkpoint: it is frozen and reproducible from the theta0 cache
        or the weights path. VGG19: a checkpoint was about 2.2 GB (theta*, theta0, Adam's two moments); theta0's
        0.55 GB of it is gone."""
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith("net0.")]:
            del state[key]
        if self.adversary is not None:       # free adversarial training's persistent perturbation
            checkpoint["free_adversarial"] = self.adversary.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.adversary is not None and "free_adversarial" in checkpoint:
            self.adversary.load_state_dict(checkpoint["free_adversarial"])

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Strict loading of a checkpoint written without theta0 (``on_save_checkpoint``): this module's own
        theta0 is put back. Lightning's resume (``ckpt_path=``) and ``load_selected`` both load through here."""
        if not any(k.startswith("net0.") for k in state_dict):
            state_dict = {**state_dict, **{f"net0.{k}": v for k, v in self.net0.state_dict().items()}}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def configure_optimizers(self):
        # Adam at a constant learning rate (Heo et al. 2019, Sec. 4.1; authors' code); ``adam`` picks torch's
        # implementation (``fooling.adam``), all the same update to float rounding (6e-8 after 20 steps):
        # auto: fused on an accelerator whose kernels take the parameters, where it also skips a step on the device
        # when StopOnNonFiniteLoss sets its found_inf (no host read in the step); torch's default on the CPU, so
        # every CPU number measured before stays bit for bit (fused: VGG19's CPU update 0.27 s -> 0.08 s).
        params = [p for p in self.net.parameters() if p.requires_grad]
        if self.adam == "auto":
            kind = "fused" if fused_adam_supported(params) and params[0].device.type != "cpu" else "default"
        else:
            kind = self.adam
        if kind == "fused" and not fused_adam_supported(params):
            raise ValueError(f"fooling.adam=fused: torch has no fused Adam for parameters on "
                             f"{params[0].device.type if params else 'no device'}; allowed: auto, foreach, for_loop")
        options = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for_loop": {"foreach": False},
                   "default": {}}[kind]
        return torch.optim.Adam(params, lr=self.lr, **options)
