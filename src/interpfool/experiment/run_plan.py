"""Say what a run will do, before its first step: data and splits, model and where theta0 comes from, fooling,
interpreter, lambda, lr, steps, device, run folder; and a time estimate for a theta0 that is about to be trained,
from its first batches (``Theta0Estimate``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

# Models of the paper (ImageNet-sized): on the offline data they train from scratch, which is slow and not the
# paper's setup; the plan says how to run that instead.
PAPER_MODELS = ("vgg19", "resnet50", "densenet121")
PAPER_SETUP = ("data=imagenet data.root=<ILSVRC2012 folder> model.pretrained=true (and the paper's lr / lambda: "
               "python train.py -m +sweep=table4 data.root=...; README, \"The paper's ImageNet experiments\")")


def _sizes(data: Any) -> str:
    sizes = getattr(data, "sizes", None) or {}
    splits = getattr(data, "splits", ("train", "val", "test"))
    parts = [f"{s} {sizes[s] if sizes.get(s) is not None else 'all'}" for s in splits if s in sizes or not sizes]
    return " / ".join(parts) if parts else "splits as in its folders"


def describe(cfg: DictConfig, built: Any, run_dir: Path, theta0: str, device: str) -> list[str]:
    """The lines of the plan (``theta0``: where the original model comes from, in words)."""
    data_name = str(cfg.data.get("name") or type(built.data).__name__.removesuffix("DataModule").lower())
    image = getattr(built.data, "image_size", None) or cfg.data.get("image_size")
    shape = f", {image}x{image}" if image else ""
    fool, tr = cfg.fooling, cfg.trainer
    select = (f"best validation FSR within {cfg.select.max_top1_drop:g} top-1 points" if cfg.select.weights == "best"
              else "the last step's weights")
    lines = [
        f"data:      {data_name} ({_sizes(built.data)}{shape}, {cfg.data.num_classes} classes); "
        f"report on {cfg.eval.split}",
        f"model:     {cfg.model.name}; theta0 {theta0}",
        f"fooling:   {fool.name} of {built.interp_name}, lambda {float(fool.lam):g}, lr {float(fool.lr):g}, "
        f"{tr.max_steps} steps, validation every {tr.val_check_interval}; keeps {select}",
        f"device:    {device} (trainer={tr.accelerator}, devices={tr.devices}, precision {tr.precision})",
        f"folder:    {run_dir}",
    ]
    if cfg.model.name in PAPER_MODELS and not cfg.model.get("pretrained") and data_name != "imagenet":
        lines.append(f"note:      {cfg.model.name} on {data_name} trains theta0 from scratch; the paper's setup is "
                     + PAPER_SETUP)
    return lines


def announce(lines: list[str]) -> None:
    print("\n".join(["interpfool run", *("  " + line for line in lines)]), flush=True)


class Theta0Estimate(L.Callback):
    """After ``after`` training batches of theta0, print how long all its epochs will take at that pace."""

    def __init__(self, epochs: int, after: int = 20, skip: int = 5):
        self.epochs, self.after, self.skip, self.start, self.done = epochs, after, skip, None, False

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self.start is None and trainer.global_step == self.skip:   # the first batches pay one-off set-up costs
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.done or self.start is None or trainer.global_step < self.skip + self.after:
            return
        self.done = True
        per_batch = (time.perf_counter() - self.start) / self.after
        total = per_batch * trainer.num_training_batches * self.epochs
        if trainer.is_global_zero:
            print(f"original model: {per_batch * 1e3:.0f} ms a batch: about {total / 60:.1f} min for "
                  f"{self.epochs} epochs of {trainer.num_training_batches} batches", flush=True)
