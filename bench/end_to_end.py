"""(c) End-to-end fooling throughput (images/s) and peak memory for the three ImageNet models:
the FoolingModule's full step (forward, CE + lambda * location penalty with the heatmap built
with create_graph=True, one backward, Adam) on random data, repeated; plus a plain CE step for
reference, the two measured interleaved. Peak memory: CUDA max allocated of one step (n/a on CPU).

    python bench/end_to_end.py --device cuda --batch 32 --steps 20
    python bench/end_to_end.py --device cpu --batch 4 --size 112 --steps 3
"""
from __future__ import annotations

import argparse
import functools

import _common
import torch
import torch.nn.functional as F

from interpfool import interpreters, models
from interpfool.fooling import FoolingModule
from interpfool.fooling.penalties import LocationFooling


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default="vgg19,resnet50,densenet121")
    p.add_argument("--interps", default="gradcam,lrpT")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--amp", choices=["none", "bf16"], default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    for model_name in args.models.split(","):
        for interp_name in args.interps.split(","):
            torch.manual_seed(0)
            net = models.build(model_name, num_classes=1000).to(device).eval()
            fmt = torch.channels_last if args.channels_last else torch.contiguous_format
            net = net.to(memory_format=fmt)
            module = FoolingModule(net, functools.partial(interpreters.REGISTRY[interp_name]), LocationFooling(),
                                   lam=1.0, lr=1e-6, target="pred").to(device)
            module.train()
            opt = module.configure_optimizers()
            x = torch.randn(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=fmt)
            y = torch.randint(0, 1000, (args.batch,), device=device)

            def step(kind, module=module, opt=opt, x=x, y=y):   # bound now: deleted after this model
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
                    loss = module.objective(x, y)["loss"] if kind == "fool" else F.cross_entropy(module.net(x), y)
                loss.backward()
                opt.step()

            # Throughput: plain and fooling steps interleaved (median step time), robust to drifting load.
            t = _common.interleaved_medians({k: functools.partial(step, k) for k in ("plain", "fool")}, device,
                                            reps=args.steps, warmup=1)
            result = {}
            for kind in ("plain", "fool"):                   # peak memory of one step of each kind
                _common.sync(device)
                _common.peak_memory_reset(device)
                step(kind)
                _common.sync(device)
                result[kind] = (args.batch / t[kind], _common.peak_memory_mb(device))
            rows.append([model_name, interp_name, result["plain"][0], result["fool"][0],
                         result["plain"][1], result["fool"][1]])
            print(rows[-1], flush=True)
            del module, net, opt
            if device.type == "cuda":
                torch.cuda.empty_cache()
    table = _common.markdown_table(["model", "interpreter", "CE training (img/s)", "fooling (img/s)",
                                    "CE peak mem (MiB)", "fooling peak mem (MiB)"], rows)
    notes = (f"batch {args.batch}, {args.size}x{args.size}, {args.steps} steps, amp={args.amp}, "
             f"channels_last={args.channels_last}, Location penalty")
    _common.record("End-to-end fooling throughput and memory (c)", table, device, notes, print_only=args.no_record)


if __name__ == "__main__":
    main()
