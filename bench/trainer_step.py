"""(d) The fooling step as a run takes it: Lightning's ``Trainer.fit`` with the pipeline's callbacks, against the
bare step the other benchmarks time (``FoolingModule.objective``, backward, Adam; no Lightning, no callbacks).

The other tables time ``objective()`` alone, so they cannot see what the loop around it costs: the NaN guard
(``StopOnNonFiniteLoss``), ``self.log`` of the step's values, the progress bar (Rich, which reads the logged
values on the host every refresh), the batch transfer from the DataLoader (pinned on CUDA). Both sides run the
same module, batch size and data, interleaved in one process; the Trainer side is timed from the start of
batch ``--warmup`` to the end of the last batch (one device sync at each end, none in between).

    python bench/trainer_step.py --device cuda --model resnet50 --size 224 --batch 32
    python bench/trainer_step.py --device cpu --model small_vgg --size 64 --batch 32 --steps 20
"""
from __future__ import annotations

import argparse
import functools
import logging
import time
import warnings

import _common
import torch
from torch.utils.data import DataLoader, TensorDataset

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from interpfool import interpreters, models
from interpfool.experiment.callbacks import StopOnNonFiniteLoss
from interpfool.fooling import FoolingModule
from interpfool.fooling.penalties import LocationFooling

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


class _SyncCounter(L.Callback):
    """CUDA's own report of synchronising calls (``set_sync_debug_mode("warn")``) over whole loop iterations after
    the warm-up: from one batch's start to the next's, so Lightning's logging after a step is counted too."""

    def __init__(self, first: int):
        self.first, self.per_step, self._catch = first, [], None

    def _close(self):
        if self._catch is not None:
            torch.cuda.set_sync_debug_mode("default")
            self._catch.__exit__(None, None, None)
            self.per_step.append(sum("synchroniz" in str(w.message).lower() and "prototype" not in str(w.message)
                                     for w in self._records))
            self._catch = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._close()
        if trainer.global_step >= self.first:
            self._catch = warnings.catch_warnings(record=True)
            self._records = self._catch.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_end(self, trainer, pl_module):
        self._close()


class _Clock(L.Callback):
    """Wall time from the start of batch ``first`` to the end of the last batch, synced at both ends only."""

    def __init__(self, first: int, device: torch.device):
        self.first, self.device, self.start, self.end, self.steps = first, device, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.first:
            _common.sync(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.steps += 1

    def on_train_end(self, trainer, pl_module):
        _common.sync(self.device)
        self.end = time.perf_counter()


def build(model_name: str, interp: str, device: torch.device, classes: int) -> FoolingModule:
    torch.manual_seed(0)
    net = models.build(model_name, num_classes=classes)
    return FoolingModule(net, functools.partial(interpreters.REGISTRY[interp]), LocationFooling(), lam=1.0, lr=1e-6,
                         target="label").to(device)._freeze_modes()     # the fooled model stays in eval mode


def trainer_seconds(module, loader, device, steps, warmup, progress_bar: bool, log_every: int,
                    syncs: list | None = None) -> float:
    """Mean step time in the Trainer; with ``syncs`` (a list, CUDA), appends the synchronising calls per step of a
    second, untimed run instead."""
    clock = _Clock(warmup, device)
    counter = _SyncCounter(warmup) if syncs is not None else None
    callbacks = [StopOnNonFiniteLoss(), counter or clock] + ([RichProgressBar()] if progress_bar else [])
    trainer = L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_steps=steps,
                        logger=False, enable_checkpointing=False, enable_model_summary=False,
                        enable_progress_bar=progress_bar, callbacks=callbacks, limit_val_batches=0,
                        num_sanity_val_steps=0, inference_mode=False, log_every_n_steps=log_every)
    trainer.fit(module, train_dataloaders=loader)
    if counter is not None:
        syncs.extend(counter.per_step)
        return float("nan")
    return (clock.end - clock.start) / clock.steps


def bare_seconds(module, loader, device, steps, warmup) -> float:
    opt = module.configure_optimizers()
    it = iter(loader)
    for k in range(steps):
        if k == warmup:
            _common.sync(device)
            start = time.perf_counter()
        x, y, _mask, _index = (t.to(device, non_blocking=True) for t in next(it))
        opt.zero_grad(set_to_none=True)
        module.objective(x, y)["loss"].backward()
        opt.step()
    _common.sync(device)
    return (time.perf_counter() - start) / (steps - warmup)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default="small_vgg,resnet50")
    p.add_argument("--interps", default="gradcam,lrpT")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--small-size", type=int, default=64, help="image size of the small models")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--log-every", type=int, default=10, help="log_every_n_steps (the run's default: 10)")
    p.add_argument("--count-syncs", action="store_true", help="CUDA: also count synchronising calls per step, "
                   "with the bar and without (separate, untimed runs)")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    for model_name in args.models.split(","):
        small = model_name.startswith("small")
        classes, size = (8, args.small_size) if small else (1000, args.size)
        n = args.batch * args.steps
        data = TensorDataset(torch.randn(n, 3, size, size), torch.randint(0, classes, (n,)),
                             torch.zeros(n, size, size, dtype=torch.bool), torch.arange(n))
        loader = DataLoader(data, batch_size=args.batch, drop_last=True, pin_memory=device.type == "cuda")
        for interp in args.interps.split(","):
            t = {}
            for kind in ("bare", "trainer", "trainer+bar", "bare"):    # bare twice: drift shows as its spread
                module = build(model_name, interp, device, classes)
                if kind == "bare":
                    t.setdefault("bare", []).append(bare_seconds(module, loader, device, args.steps, args.warmup))
                else:
                    t[kind] = trainer_seconds(module, loader, device, args.steps, args.warmup, kind.endswith("bar"),
                                              args.log_every)
                del module
            if args.count_syncs and device.type == "cuda":
                for bar in (False, True):
                    counts: list = []
                    trainer_seconds(build(model_name, interp, device, classes), loader, device, args.steps,
                                    args.warmup, bar, args.log_every, syncs=counts)
                    print(f"syncs per step, {model_name}/{interp}, bar={bar}: {counts}", flush=True)
            bare = min(t["bare"])
            rows.append([model_name, interp, bare * 1e3, t["trainer"] * 1e3, t["trainer+bar"] * 1e3,
                         t["trainer"] / bare, t["trainer+bar"] / bare])
            print(rows[-1], flush=True)
    table = _common.markdown_table(["model", "interpreter", "bare step (ms)", "Trainer + guard (ms)",
                                    "Trainer + guard + Rich bar (ms)", "Trainer / bare (x)", "with bar / bare (x)"],
                                   rows)
    notes = (f"batch {args.batch}, {args.size}x{args.size} (small models {args.small_size}x{args.small_size}), Location "
             f"penalty, {args.steps} steps of which {args.warmup} warm-up; mean step time; bare = the faster of two; "
             f"log_every_n_steps={args.log_every}")
    _common.record("Fooling step inside the Trainer with the run's callbacks (d)", table, device, notes,
                   print_only=args.no_record)


if __name__ == "__main__":
    main()
