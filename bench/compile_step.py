"""Does ``torch.compile`` speed up the fooling step? Three ways, each against the eager step in the same run.

- ``objective``: compile ``FoolingModule.objective`` (forward, map with create_graph, penalty, CE) and backward
  the result eagerly: the double backward has to be traced by AOTAutograd;
- ``model``: compile the classifier only (``nn.Module.compile``, in place, so the interpreter's hook on the
  target layer stays); the interpreter differentiates the compiled model's graph (first order inside the map,
  second order in the penalty's backward);
- ``eager``: the step as a run takes it.

Each way reports whether it compiled, the first call's time (compilation) and the median step after warm-up,
and how far its loss and gradients are from eager's (same weights, same batch, one step, lr 0). Nothing here is
offered as a setting: the project enables ``torch.compile`` only where this script shows it compiles and pays.

    python bench/compile_step.py --model small_vgg --size 32 --batch 8 --classes 10
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time
import traceback

import _common  # noqa: F401  (puts src/ on the path)
import torch

from interpfool import interpreters, models
from interpfool.fooling import FoolingModule
from interpfool.fooling.penalties import LocationFooling


def build(args):
    torch.manual_seed(0)
    net = models.build(args.model, num_classes=args.classes).eval()
    module = FoolingModule(net, functools.partial(interpreters.REGISTRY[args.interp]), LocationFooling(), lam=1.0,
                           lr=1e-4, target="label")
    module.train()
    opt = module.configure_optimizers()
    for group in opt.param_groups:
        group["lr"] = 0.0       # the weights stay, so every step and every way sees the same theta
    return net, module, opt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="small_vgg")
    p.add_argument("--interp", default="gradcam")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(1)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))
    results, reference = {}, None
    for way in ("eager", "objective", "model"):
        net, module, opt = build(args)
        objective = module.objective
        if way == "objective":
            objective = torch.compile(module.objective)
        elif way == "model":
            net.compile()       # in place: the interpreter's hooks and layer names stay

        def step():
            opt.zero_grad(set_to_none=True)
            loss = objective(x, y)["loss"]
            loss.backward()
            opt.step()
            return loss

        try:
            start = time.perf_counter()
            loss = step()
            first = time.perf_counter() - start
        except Exception as err:      # noqa: BLE001 — the point is to report what fails
            line = traceback.format_exception_only(type(err), err)[-1].strip().splitlines()[0][:160]
            results[way] = f"fails: {line}"
            print(way, results[way], flush=True)
            continue
        grads = torch.cat([q.grad.flatten() for q in net.parameters() if q.grad is not None])
        if reference is None:
            reference = (loss.detach(), grads)
        dev = ((grads - reference[1]).norm() / reference[1].norm()).item()
        for _ in range(args.warmup):
            step()
        times = []
        for _ in range(args.reps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        results[way] = (first, statistics.median(times), abs((loss.detach() - reference[0]).item()), dev)
        print(way, results[way], flush=True)
    eager = results["eager"][1]
    rows = []
    for way, r in results.items():
        if isinstance(r, str):
            rows.append([way, r, "-", "-", "-"])
        else:
            rows.append([way, f"{r[0]:.2f}", f"{r[1] * 1e3:.1f}", f"{r[1] / eager:.2f}", f"{r[3]:.1e}"])
    print(_common.markdown_table(["compiled", "first call (s)", "median step (ms)", "x eager", "grad deviation"],
                                 rows))
    print(f"{args.model} {args.interp} Location, batch {args.batch}, {args.size}x{args.size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")


if __name__ == "__main__":
    main()
