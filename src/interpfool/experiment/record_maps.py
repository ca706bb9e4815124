"""Explanations recorded while a model trains (issue 12 item 5; the notes' minibatch-by-minibatch attributions).

``RecordMaps`` computes the maps of a fixed set of images (the first K of the validation split, the same at every
step) every ``every`` optimizer steps, at the start of training too (step 0, or the step a resumed run starts from),
and writes, per recorded step, a frame PNG (``<out_dir>/<name>/step_000100.png``), a W&B image under
``record_maps/<name>`` where the logger has ``log_image`` (W&B; the CSV logger keeps the PNGs only), and at the end
of training an animated GIF (``<out_dir>/<name>.gif``, every frame PNG in the folder, so a resumed run's GIF covers
the steps before the resume too), an MP4 where imageio and ffmpeg exist, and the maps themselves
(``<out_dir>/<name>.pt``: steps [T], maps [T, K, h, w], labels, images).

The recording must not change the training: maps are computed without a graph (``create_graph=False``; gradients
only w.r.t. the input / activations, never ``param.grad``), in eval mode (no BatchNorm statistics update, no
dropout), every module's own mode restored afterwards, and under ``torch.random.fork_rng`` so no RNG draw (e.g.
SmoothGrad's global-RNG seed) is consumed. Weights trained with recording on equal those trained with it off, bit
for bit (tests/experiment/test_record_maps.py). Only global rank 0 records (the maps need no collective).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

import lightning as L
import torch
from torch import nn

from interpfool.viz.animation import render_frame, write_gif, write_mp4

KEY = "record_maps"


@contextlib.contextmanager
def untouched(net: nn.Module, device: torch.device):
    """``net`` in eval mode inside, each module's own mode restored after; the global RNG states (CPU and
    ``device``'s CUDA generator) restored after, so nothing inside consumes a draw the training would see."""
    modes = [(m, m.training) for m in net.modules()]
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        try:
            net.eval()
            yield
        finally:
            for m, mode in modes:
                m.training = mode


def first_images(dataset, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [K, C, H, W], labels [K]) of the first ``k`` items of ``dataset`` (fewer if it is smaller)."""
    items = [dataset[i] for i in range(min(k, len(dataset)))]
    return torch.stack([it[0] for it in items]), torch.as_tensor([int(it[1]) for it in items])


class RecordMaps(L.Callback):
    """Records ``make_interp(net=pl_module.net)``'s maps of ``images`` for ``target`` every ``every`` steps.

    images: [K, C, H, W] model input; labels: [K] (for ``target="label"``); shown: [K, 3, H, W] in [0, 1] for the
    frames (default: ``images`` clamped); name: the recording's name (``theta0``, ``fooling``); logger: where the
    frames go (default: the trainer's); one without ``log_image`` (or none) keeps them for ``flush_to``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, make_interp: Callable, every: int,
                 out_dir: str | Path, name: str, target: str = "label", shown: torch.Tensor | None = None,
                 logger=None, interp_name: str | None = None):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"record_maps.every={every!r}; allowed: an integer >= 1 (0 turns recording off)")
        self.images, self.labels = images, labels
        self.shown = images.clamp(0, 1) if shown is None else shown
        self.make_interp, self.every, self.target = make_interp, every, target
        self.out_dir, self.name, self.logger = Path(out_dir), name, logger
        self.interp_name = interp_name
        self.steps: list[int] = []
        self.maps: list[torch.Tensor] = []
        self.unlogged: list[tuple[int, Path]] = []
        self.seconds = 0.0
        self.paths: dict[str, str | None] = {}

    @property
    def frame_dir(self) -> Path:
        return self.out_dir / self.name

    # -- the maps ------------------------------------------------------------------------------
    def maps_of(self, net: nn.Module) -> torch.Tensor:
        """[K, h, w] maps of the fixed images on ``net``'s current weights (no graph; mode and RNG untouched)."""
        device = next(net.parameters()).device
        with untouched(net, device):
            interp = self.make_interp(net=net)
            x, y = self.images.to(device), self.labels.to(device)
            return interp(x, self.target, labels=y).detach().float().cpu()

    def record(self, trainer: L.Trainer, net: nn.Module, step: int) -> None:
        if self.steps and self.steps[-1] == step:
            return
        start = time.perf_counter()
        h = self.maps_of(net)
        self.steps.append(step)
        self.maps.append(h)
        title = f"{self.name} {self.interp_name or ''} step {step}".replace("  ", " ")
        frame = render_frame(self.shown, h, title)
        self.frame_dir.mkdir(parents=True, exist_ok=True)
        path = self.frame_dir / f"step_{step:07d}.png"
        frame.save(path, compress_level=1)     # zlib level 6 (the default) took 3x longer: ~150 ms a frame
        logger = self.logger or trainer.logger
        if hasattr(logger, "log_image"):
            logger.log_image(key=f"{KEY}/{self.name}", images=[str(path)], step=step, caption=[title])
        else:
            self.unlogged.append((step, path))
        self.seconds += time.perf_counter() - start

    # -- Lightning hooks -----------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.record(trainer, pl_module.net, int(trainer.global_step))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(trainer.global_step)           # optimizer steps taken so far (after this batch's step)
        if trainer.is_global_zero and step % self.every == 0:
            self.record(trainer, pl_module.net, step)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.write()

    # -- outputs -------------------------------------------------------------------------------
    def write(self) -> dict[str, str | None]:
        """The GIF (every frame PNG in the folder), the MP4 where possible, and the maps of this process's steps
        merged with those of an earlier (resumed) process's ``.pt``."""
        from PIL import Image
        if not self.steps:
            return self.paths
        pngs = sorted(self.frame_dir.glob("step_*.png"))
        frames = []
        for p in pngs:
            with Image.open(p) as im:
                frames.append(im.convert("RGB"))
        self.paths["gif"] = str(write_gif(frames, self.out_dir / f"{self.name}.gif"))
        mp4 = write_mp4(frames, self.out_dir / f"{self.name}.mp4")
        self.paths["mp4"] = None if mp4 is None else str(mp4)
        pt = self.out_dir / f"{self.name}.pt"
        steps, maps = list(self.steps), list(self.maps)
        if pt.is_file():
            old = torch.load(pt, weights_only=True)
            keep = [i for i, s in enumerate(old["steps"].tolist()) if s < steps[0]]
            steps = [old["steps"][i].item() for i in keep] + steps
            maps = [old["maps"][i] for i in keep] + maps
        torch.save({"steps": torch.tensor(steps), "maps": torch.stack(maps), "labels": self.labels,
                    "images": self.shown, "interpreter": self.interp_name, "target": self.target}, pt)
        self.paths["maps"] = str(pt)
        return self.paths

    def flush_to(self, logger) -> None:
        """Send the frames recorded without an image logger (theta0 trains before the run's logger exists) to
        ``logger`` (each at its own step), if it has ``log_image``."""
        if hasattr(logger, "log_image"):
            for step, path in self.unlogged:
                logger.log_image(key=f"{KEY}/{self.name}", images=[str(path)], step=step)
            self.unlogged = []

    def info(self) -> dict:
        """What the run's report records: frames, steps, time spent recording, the files."""
        return {"frames": len(self.steps), "every": self.every, "images": int(self.images.shape[0]),
                "interpreter": self.interp_name, "seconds": self.seconds, **self.paths}


def from_config(cfg, built, run_dir: str | Path, name: str) -> RecordMaps | None:
    """The recorder of ``cfg.record_maps`` for the training ``name`` (``theta0`` / ``fooling``), or None when
    ``record_maps.every`` is 0 (off, the default). The images are the first ``record_maps.images`` of the validation
    split; the interpreter is ``record_maps.interpreter`` (a registered name) or, when null, the run's own (with its
    ``interp.*`` options). An unknown interpreter raises ``ValueError`` naming the setting."""
    from interpfool.experiment.build import interp_factory
    rec = cfg.get("record_maps")
    if rec is None or not int(rec.every):
        return None
    if rec.interpreter is None:
        make, interp_name = built.interp, built.interp_name
    else:
        try:
            make, interp_name = interp_factory(str(rec.interpreter)), str(rec.interpreter)
        except ValueError as err:
            raise ValueError(f"record_maps.interpreter={rec.interpreter!r}: {err}") from None
    images, labels = first_images(built.data.dataset("val"), int(rec.images))
    shown = built.data.denormalize(images) if hasattr(built.data, "denormalize") else None
    return RecordMaps(images, labels, make, int(rec.every), Path(run_dir) / KEY, name, target=str(cfg.target),
                      shown=shown, interp_name=interp_name)
