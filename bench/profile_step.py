"""Where the time of a fooling step goes, next to a plain CE step (torch.profiler, same model and batch).

Splits each step into its phases (forward + maps, backward, Adam step; inclusive time), groups the
operators by kind (Linear matmuls, convolutions, the rest; self time, all phases) and prints the top
operators of the fooling step. Explains an overhead ratio from bench/fooling_overhead.py.

    python bench/profile_step.py --model vgg19 --interp gradcam --fooling location --batch 2 --size 64
    python bench/profile_step.py --model vgg19 --interp gradcam --fooling location --batch 32 --size 224 --device cuda
"""
from __future__ import annotations

import argparse
import functools

import _common
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function

from interpfool import interpreters
from interpfool.fooling import FoolingModule
from interpfool.fooling.penalties import LocationFooling, TopKFooling

PHASES = ("forward + maps", "backward", "Adam step")
GROUPS = {"matmul (Linear)": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul"),
          "convolution": ("conv",)}


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS.items():
        if any(k in low for k in keys):
            return group
    return "other"


def profiled(step, device: torch.device, steps: int):
    for _ in range(2):
        step()
    _common.sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        _common.sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total_key = "device_time_total" if device.type == "cuda" else "cpu_time_total"
    averages = prof.key_averages()
    ops = [(e.key, getattr(e, key) / steps / 1e3) for e in averages if e.key not in PHASES]
    phases = {e.key: getattr(e, total_key) / steps / 1e3 for e in averages if e.key in PHASES}
    return [(k, ms) for k, ms in ops if ms > 0], phases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="vgg19")
    p.add_argument("--interp", default="gradcam")
    p.add_argument("--fooling", choices=["location", "topk"], default="location")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=8)
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    net, x = _common.random_model_and_batch(args.model, args.batch, args.size, device)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    opt = torch.optim.Adam(net.parameters(), lr=0.0)
    fooling = LocationFooling() if args.fooling == "location" else TopKFooling()
    module = FoolingModule(net, functools.partial(interpreters.REGISTRY[args.interp]), fooling, lam=1.0, lr=1e-3,
                           target="pred").to(device)
    module.train()

    def step(loss_fn):
        opt.zero_grad(set_to_none=True)
        with record_function(PHASES[0]):
            loss = loss_fn()
        with record_function(PHASES[1]):
            loss.backward()
        with record_function(PHASES[2]):
            opt.step()

    plain = functools.partial(step, lambda: F.cross_entropy(net(x), y))
    fool = functools.partial(step, lambda: module.objective(x, y)["loss"])
    profiles = {"CE step": profiled(plain, device, args.steps), "fooling step": profiled(fool, device, args.steps)}
    results = {name: ops for name, (ops, _) in profiles.items()}
    phase_rows = [[ph, *[profiles[n][1].get(ph, 0.0) for n in profiles]] for ph in PHASES]
    phase_rows = [[*r, r[2] - r[1]] for r in phase_rows]
    totals = {name: sum(ms for _, ms in ev) for name, ev in results.items()}
    added = totals["fooling step"] - totals["CE step"]
    rows = []
    for group in [*GROUPS, "other"]:
        per = {name: sum(ms for k, ms in ev if group_of(k) == group) for name, ev in results.items()}
        rows.append([group, per["CE step"], per["fooling step"], per["fooling step"] - per["CE step"],
                     100 * (per["fooling step"] - per["CE step"]) / max(added, 1e-9)])
    rows.append(["total", totals["CE step"], totals["fooling step"], added, 100.0])
    table = _common.markdown_table(["operators", "CE step (ms)", "fooling step (ms)", "added (ms)",
                                    "share of the added time (%)"], rows)
    top = sorted(results["fooling step"], key=lambda kv: -kv[1])[:args.top]
    top_table = _common.markdown_table(["fooling step: top operators by self time", "ms per step"],
                                       [[k, ms] for k, ms in top])
    notes = (f"{args.model}, {args.interp}, {args.fooling}, batch {args.batch}, {args.size}x{args.size}, "
             f"profiler self time per step (mean of {args.steps}); "
             f"ratio {totals['fooling step'] / totals['CE step']:.2f}x")
    phase_table = _common.markdown_table(["phase (inclusive)", "CE step (ms)", "fooling step (ms)", "added (ms)"],
                                         phase_rows)
    text = phase_table + "\n\n" + table + "\n\n" + top_table
    _common.record(f"Profile of one step: {args.model} {args.interp} {args.fooling} ({args.size}px)",
                   text, device, notes, print_only=args.no_record)


if __name__ == "__main__":
    main()
