"""A few Grad-CAM Location fooling steps, with 1 process or with 2-process DDP (gloo, CPU).

Run as a script (Lightning's `ddp` strategy re-executes it for rank 1):
    python ddp_fooling_run.py OUT_DIR DEVICES
Each rank saves its final parameters to OUT_DIR/rank<r>.pt. The global batch is 8 in both cases:
the DistributedSampler gives rank 0 samples 0, 2, 4, 6 and rank 1 samples 1, 3, 5, 7 of each
global batch, and DDP averages the two rank gradients, which equals the one-process gradient.
"""
import functools
import os
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from interpfool import interpreters, models
from interpfool.fooling import FoolingModule, LocationFooling

warnings.filterwarnings("ignore")
GLOBAL_BATCH, STEPS = 8, 3


def main(out_dir: str, devices: int) -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(GLOBAL_BATCH * STEPS, 3, 32, 32, generator=gen),
                         torch.randint(0, 4, (GLOBAL_BATCH * STEPS,), generator=gen))
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=4, width=4, hidden=8)
    module = FoolingModule(net, functools.partial(interpreters.REGISTRY["gradcam"]), LocationFooling(),
                           lam=5.0, lr=1e-3, target="pred")
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                        max_steps=STEPS, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, inference_mode=False, limit_val_batches=0, sync_batchnorm=False,
                        use_distributed_sampler=False)
    # Lightning's own distributed sampler always shuffles training data; fix the order instead.
    rank = int(os.environ.get("LOCAL_RANK", 0))
    sampler = DistributedSampler(data, num_replicas=devices, rank=rank, shuffle=False)
    trainer.fit(module, DataLoader(data, batch_size=GLOBAL_BATCH // devices, sampler=sampler))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in module.net.state_dict().items()}, Path(out_dir) / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
