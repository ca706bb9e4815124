"""(a) Fooling-step overhead: median time of a CE + lambda * penalty step over a plain CE step.

Same model, batch and device, the two steps measured interleaved in one process. A step is the
whole update: forward, loss, one backward, Adam step. The fooling step explains the predicted
class (random weights: the label would give all-zero Grad-CAM maps, DESIGN.md 4); top-k also runs
theta0's map (no graph) each step.

    python bench/fooling_overhead.py --device cuda --batch 32 --size 224
    python bench/fooling_overhead.py --device cpu --batch 4 --size 112 --reps 5     # this CPU
    python bench/fooling_overhead.py --device cpu --models small_vgg,small_resnet,small_densenet --classes 10 \
        --size 28 --batch 32 --reps 9   # Fashion-MNIST
"""
from __future__ import annotations

import argparse
import functools

import _common
import torch
import torch.nn.functional as F

from interpfool import interpreters, models
from interpfool.fooling import FoolingModule
from interpfool.fooling.module import ADAM_IMPLEMENTATIONS
from interpfool.fooling.penalties import LocationFooling

FOOLINGS = {"location": lambda: LocationFooling()}
try:  # top-k arrives with the full set of penalties
    from interpfool.fooling.penalties import TopKFooling
    FOOLINGS["topk"] = lambda: TopKFooling()
except ImportError:  # pragma: no cover
    pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default="vgg19,resnet50,densenet121")
    p.add_argument("--interps", default="gradcam,lrpT,simplegT,lrp,simpleg")
    p.add_argument("--foolings", default="location,topk")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--classes", type=int, default=1000, help="the head's classes (Fashion-MNIST: 10)")
    p.add_argument("--amp", choices=["none", "bf16"], default="none", help="autocast dtype for both steps")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--original-cache", action="store_true",
                   help="also time top-k with theta0's maps read from the per-image cache (the steady state of "
                        "cache_original_maps=true after the first epoch), as the fooling 'topk-cached'")
    p.add_argument("--adam", default="auto", choices=ADAM_IMPLEMENTATIONS,
                   help="torch's Adam for both steps, as fooling.adam picks it")
    p.add_argument("--glibc-malloc", action="store_true",
                   help="leave glibc malloc at its defaults (runs set backends.reuse_host_memory=true)")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    from interpfool.experiment.host_memory import reuse_host_memory
    allocator = reuse_host_memory(not args.glibc_malloc)
    rows = []
    for model_name in args.models.split(","):
        torch.manual_seed(0)
        net = models.build(model_name, num_classes=args.classes).to(device).eval()
        if args.channels_last:
            net = net.to(memory_format=torch.channels_last)
        x = torch.randn(args.batch, 3, args.size, args.size, device=device)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, args.classes, (args.batch,), device=device)
        autocast = functools.partial(torch.autocast, device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16")
        # lr 0: the weights stay, the work is the same; the Adam implementation a run picks (fooling.adam)
        opt = FoolingModule(net, functools.partial(interpreters.REGISTRY["gradcam"]), LocationFooling(),
                            adam=args.adam).configure_optimizers()
        for group in opt.param_groups:
            group["lr"] = 0.0

        def plain_step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()

        for interp_name in args.interps.split(","):
            names = args.foolings.split(",")
            if args.original_cache and "topk" in names:
                names.insert(names.index("topk") + 1, "topk-cached")
            for fooling_name in names:
                cached = fooling_name == "topk-cached"
                if fooling_name.removesuffix("-cached") not in FOOLINGS:
                    continue
                module = FoolingModule(net, functools.partial(interpreters.REGISTRY[interp_name]),
                                       FOOLINGS[fooling_name.removesuffix("-cached")](), lam=1.0, lr=1e-3,
                                       target="pred", original_cache=args.batch if cached else 0).to(device)
                module.train()
                index = torch.arange(args.batch, device=device) if cached else None   # filled in the warm-up

                def fooling_step(module=module, index=index):
                    opt.zero_grad(set_to_none=True)
                    with autocast():
                        loss = module.objective(x, y, index=index)["loss"]
                    loss.backward()
                    opt.step()

                t = _common.interleaved_medians({"plain": plain_step, "fool": fooling_step}, device, reps=args.reps)
                rows.append([model_name, interp_name, fooling_name, t["plain"] * 1e3, t["fool"] * 1e3,
                             t["fool"] / t["plain"]])
                print(rows[-1], flush=True)
                del module
    table = _common.markdown_table(["model", "interpreter", "fooling", "CE step (ms)", "fooling step (ms)",
                                    "overhead (x)"], rows)
    notes = (f"batch {args.batch}, {args.size}x{args.size}, amp={args.amp}, channels_last={args.channels_last}, "
             f"median of {args.reps} interleaved repetitions; {type(opt).__name__} "
             f"{'fused' if opt.defaults.get('fused') else 'foreach' if opt.defaults.get('foreach') else 'default'} "
             f"(--adam {args.adam}); {allocator}")
    _common.record("Fooling-step overhead (a)", table, device, notes, print_only=args.no_record)


if __name__ == "__main__":
    main()
