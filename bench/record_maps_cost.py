"""Cost of ``record_maps`` (explanations recorded during training): the time of a training step with recording at
``every`` = 10 and 50 over the time without, for the fooling step (``FoolingModule``, the default Location fooling
of Grad-CAM) and for theta0's CE step (``ClassifierModule``), on the default small model (small_vgg width 16,
synthetic 64 x 64, batch 32), 1 thread by default.

Each configuration is a ``Trainer.fit`` of ``--steps`` steps (no validation, no logger, no checkpoints), timed from
the start of training to its end; the three settings (off, every=50, every=10) run interleaved, ``--reps`` times,
and the median wall time of each is kept. The recorder's own time per recording (maps of ``--images`` images plus the
frame PNG) is reported too: with it the overhead at any ``every`` is about per_recording / (every x step time).

    OMP_NUM_THREADS=1 python bench/record_maps_cost.py --steps 100 --reps 3 [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import _common
import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from interpfool import interpreters, models
from interpfool.data import SyntheticDataModule
from interpfool.experiment.original import ClassifierModule
from interpfool.experiment.record_maps import RecordMaps, first_images
from interpfool.fooling import FoolingModule
from interpfool.fooling.penalties import LocationFooling

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


class _Clock(L.Callback):
    """Wall time from the start of training (before the recorder's step-0 recording) to its end."""

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def fit_once(kind: str, every: int, args, data, state: dict, out: Path) -> tuple[float, float, int]:
    """(wall seconds of the fit, recorder seconds, recordings) for ``kind`` (fooling | theta0) at ``every``."""
    net = models.build("small_vgg", num_classes=8, width=16)
    net.load_state_dict(state)
    x, y = data["train"]
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=False, drop_last=True)
    make = lambda net: interpreters.build("gradcam", net)  # noqa: E731
    if kind == "fooling":
        module = FoolingModule(net.eval(), make, LocationFooling(), lam=10.0, lr=1e-3, interp_name="gradcam")
    else:
        module = ClassifierModule(net, lr=3e-3, epochs=1, seed=0)
    clock = _Clock()
    callbacks = [clock]
    rec = None
    if every:
        images, labels = data["val"]
        rec = RecordMaps(images, labels, make, every, out / f"{kind}_{every}", kind, shown=data["shown"],
                         interp_name="gradcam")
        callbacks.append(rec)
    trainer = L.Trainer(max_steps=args.steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=callbacks, inference_mode=False,
                        default_root_dir=str(out), deterministic=True)
    trainer.fit(module, loader)
    return clock.seconds, (rec.seconds if rec else 0.0), (len(rec.steps) if rec else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--every", type=int, nargs="+", default=[50, 10])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dm = SyntheticDataModule(image_size=64, num_classes=8, train_size=32 * args.steps, val_size=args.images,
                             test_size=8, seed=0)
    train = dm.dataset("train")
    x = torch.stack([train[i][0] for i in range(len(train))])
    y = torch.as_tensor([int(train[i][1]) for i in range(len(train))])
    images, labels = first_images(dm.dataset("val"), args.images)
    data = {"train": (x, y), "val": (images, labels), "shown": dm.denormalize(images)}
    state = models.build("small_vgg", num_classes=8, width=16).state_dict()
    settings = [0, *args.every]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("fooling", "theta0"):
            walls = {e: [] for e in settings}
            per_record = []
            for _ in range(args.reps):
                for e in settings:
                    wall, rec_s, n = fit_once(kind, e, args, data, state, Path(tmp) / f"r{len(per_record)}")
                    walls[e].append(wall)
                    if n:
                        per_record.append(rec_s / n)
            med = {e: statistics.median(w) for e, w in walls.items()}
            results[kind] = {"step_ms_off": 1e3 * med[0] / args.steps,
                             "ratio": {str(e): med[e] / med[0] for e in args.every},
                             "ms_per_recording": 1e3 * statistics.median(per_record),
                             "walls_s": {str(e): w for e, w in walls.items()}}
    print(f"machine: {_common.machine(torch.device('cpu'))}; {args.steps} steps x {args.reps} reps, "
          f"{args.images} images recorded (Grad-CAM)")
    print("| training | step (ms), off | " + " | ".join(f"every={e}: ratio" for e in args.every)
          + " | ms per recording |")
    print("|---|---|" + "---|" * len(args.every) + "---|")
    for kind, r in results.items():
        print(f"| {kind} | {r['step_ms_off']:.0f} | " + " | ".join(f"{r['ratio'][str(e)]:.3f}" for e in args.every)
              + f" | {r['ms_per_recording']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "machine": _common.machine(torch.device("cpu")), "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
