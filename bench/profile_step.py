"""Op-level profile of the fooling step: where its overhead over a plain CE step goes, and whether the host binds it.

For each cell (model, interpreter, fooling; plus the plain CE step of every model named) and each batch size:

1. phase times, from CUDA events (``time.perf_counter`` on the CPU) between the phases of a step, no sync inside the
   timed loop, median of ``--iters`` steps after ``--warmup``. Three variants run round-robin (drift hits all alike):
   - ``baseline``: the plain CE step: forward, CE backward, Adam step;
   - ``step``: the real fooling step (``FoolingModule.objective``, one backward of CE + lambda * penalty, Adam step);
   - ``phases``: the same computation split: forward (+ CE), the map with ``create_graph=True`` (first-order
     ``autograd.grad``), theta0's map (top-k; no graph), the penalty, CE's backward alone (graph kept), the penalty's
     backward through the map (second order, and through the forward again), Adam step. Two backward passes
     instead of one, so its sum can exceed ``step``'s;
   each phase in ms and as a multiple of the baseline step (same cell, interleaved);
2. ``torch.profiler`` (CPU + CUDA) over ``--profile-steps`` real steps: the top ops by self CUDA time and by self CPU
   time, kernel launches per step (device kernels and the host's launch calls; aten calls, nested ones too), the
   GPU's busy share (union of kernel intervals per step / the unprofiled median step time; also / the profiled wall
   time, which carries the profiler's own host overhead), and self time by kind (convolution, matmul, other);
3. ``--out``: ``profile_step.json`` (all numbers, rewritten after each cell) and ``profile_step.txt`` (the tables).

Only torch, torchvision and this package (no hydra, wandb). TF32 and cuDNN benchmark are off unless asked; the
optimizer is the run's (``FoolingModule.configure_optimizers``: fused Adam on CUDA, torch's default on the CPU) at
lr 0 (the weights stay, the work is the same); models random (seed 0), eval mode, 1000 classes; the map explains the
predicted class.

    python bench/profile_step.py --device cuda --batches 8 32 --out $OUT        # the GPU run (~2-4 min on an H200)
    python bench/profile_step.py --quick --device cpu                          # CPU dry run: 64 px, batch 2, 1 step
    python bench/profile_step.py --cells resnet50:lrpT:topk,resnet50:lrpT:topk-cached --batches 32
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import statistics
import time
from pathlib import Path

import _common
import torch
import torch.nn.functional as F
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from interpfool import interpreters
from interpfool.fooling import FoolingModule
from interpfool.fooling.penalties import LocationFooling, TopKFooling

DEFAULT_CELLS = ("vgg19:simpleg:location,vgg19:lrp:location,resnet50:lrpT:topk,resnet50:simpleg:location,"
                 "densenet121:simpleg:location")
FOOLINGS = {"location": LocationFooling, "topk": TopKFooling, "topk-cached": TopKFooling}
KINDS = {"convolution": ("conv", "cudnn"), "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul",
                                                      "aten::linear", "gemm", "cublas")}
LAUNCH_CALLS = ("cudaLaunch", "cuLaunch", "cudaGraphLaunch")


class Marks:
    """Time stamps between the phases of one step: CUDA events (no sync) or ``perf_counter`` (CPU)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.stamps: list[tuple[str, object]] = []

    def __call__(self, name: str) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.stamps.append((name, ev))
        else:
            self.stamps.append((name, time.perf_counter()))

    def phases(self) -> dict[str, float]:
        """ms of each phase (from the previous mark to this one) and of the whole step; call after a sync."""
        out, (_, first) = {}, self.stamps[0]
        for (_, a), (name, b) in zip(self.stamps, self.stamps[1:]):
            out[name] = a.elapsed_time(b) if self.cuda else (b - a) * 1e3
        out["step"] = first.elapsed_time(self.stamps[-1][1]) if self.cuda else (self.stamps[-1][1] - first) * 1e3
        return out


class Cell:
    """One model x interpreter x fooling (``interp`` None: the plain CE step only) at one batch."""

    def __init__(self, net, opt, x, y, interp: str | None, fooling: str | None):
        self.net, self.opt, self.x, self.y, self.interp_name, self.fooling_name = net, opt, x, y, interp, fooling
        self.module = None
        self.index = self.new = None
        if interp is not None:
            cached = fooling == "topk-cached"
            self.module = FoolingModule(net, functools.partial(interpreters.REGISTRY[interp]), FOOLINGS[fooling](),
                                        lam=1.0, lr=1e-3, target="pred",
                                        original_cache=len(x) if cached else 0).to(x.device)
            self.module.train()                            # keeps net and net0 in eval mode
            if cached:                                     # the run's steady state: every image's map is cached
                self.index = torch.arange(len(x), device=x.device)
                self.new = (torch.arange(len(x), device=x.device), True)

    def _objective(self):
        out = self.module.objective(self.x, self.y, index=self.index, new=self.new)
        if self.new is not None:                           # first call filled the cache; then nothing is new
            self.new = (self.new[0][:0], False)
        return out

    def baseline(self, mark) -> None:
        mark("start")
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.net(self.x), self.y)
        mark("forward")
        loss.backward()
        mark("ce_backward")
        self.opt.step()
        mark("optimizer")

    def step(self, mark) -> None:
        mark("start")
        self.opt.zero_grad(set_to_none=True)
        loss = self._objective()["loss"]
        mark("objective")
        loss.backward()
        mark("backward")
        self.opt.step()
        mark("optimizer")

    def phases(self, mark, check: bool = False):
        """``objective`` split into its parts (same calls, same order); ``check``: return the loss, not step."""
        m = self.module
        mark("start")
        self.opt.zero_grad(set_to_none=True)
        fwd = m.interp.forward(self.x)
        ce = F.cross_entropy(fwd.logits, self.y)
        mark("forward")
        h = m.explain(m.interp, fwd, self.y, create_graph=True)
        mark("map")
        h0 = m.original_maps(self.x, self.y, self.index, self.new)
        mark("theta0_map")
        penalty = m.fooling.penalty(h, h0).mean()
        mark("penalty")
        if check:
            return ce + m.lam * penalty
        ce.backward(retain_graph=True)
        mark("ce_backward")
        (m.lam * penalty).backward()
        mark("penalty_backward")
        self.opt.step()
        mark("optimizer")

    def variants(self):
        if self.module is None:
            return {"baseline": self.baseline}
        return {"baseline": self.baseline, "step": self.step, "phases": self.phases}

    def real_step(self) -> None:
        (self.step if self.module is not None else self.baseline)(lambda name: None)


def time_phases(cell: Cell, device, warmup: int, iters: int) -> dict[str, dict[str, float]]:
    """Median ms per phase of each variant, the variants round-robin, one sync at the end."""
    variants = cell.variants()
    for _ in range(warmup):
        for fn in variants.values():
            fn(lambda name: None)
    _common.sync(device)
    marks = {name: [] for name in variants}
    for _ in range(iters):
        for name, fn in variants.items():
            mk = Marks(device)
            fn(mk)
            marks[name].append(mk)
    _common.sync(device)
    out = {}
    for name, runs in marks.items():
        per = [mk.phases() for mk in runs]
        out[name] = {k: statistics.median(p[k] for p in per) for k in per[0]}
    return out


def model_and_optimizer(model: str, device, adam: str, size: int):
    """The random model (seed 0, eval mode) and its Adam at lr 0 (the weights stay, the work is the same), shared by
    the model's cells; one plain step allocates Adam's state, so no cell's first step pays for it."""
    net = _common.random_model_and_batch(model, 1, 8, device)[0]
    params = [p for p in net.parameters() if p.requires_grad]
    fused = {"run": device.type != "cpu" or None, "foreach": None, "fused": True}[adam]
    opt = torch.optim.Adam(params, lr=0.0, fused=fused)
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(net(torch.randn(1, 3, size, size, device=device)), torch.zeros(1, dtype=torch.long,
                                                                                   device=device)).backward()
    opt.step()
    return net, opt


def _self_device_us(e) -> float:
    return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0) or 0


def _kernels(dev_events: list) -> list:
    """The kernels among the profiler's device events: by kineto's activity type where this torch records it (2.14:
    "kernel"), else (or when that finds none) by name: not a copy, a fill or a user annotation."""
    kernels = [e for e in dev_events if getattr(e, "activity_type", None) in ("kernel", "concurrent_kernel")]
    return kernels or [e for e in dev_events if not (e.name.startswith(("Memcpy", "Memset", "ProfilerStep"))
                                                     or getattr(e, "is_user_annotation", False))]


def _union_us(intervals) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def profile_cell(cell: Cell, device, steps: int, top: int, step_ms: float, warmup: bool = True) -> tuple[dict, str]:
    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if warmup:
        cell.real_step()
    _common.sync(device)
    walls = []
    with profile(activities=acts, record_shapes=False, with_stack=False) as prof:
        for _ in range(steps):
            _common.sync(device)
            start = time.perf_counter()
            cell.real_step()
            _common.sync(device)
            walls.append(time.perf_counter() - start)
    events = prof.events()
    averages = prof.key_averages()
    wall_ms = 1e3 * sum(walls) / steps
    out: dict = {"profiled_wall_ms_per_step": wall_ms}
    cpu_ops = [e for e in events if e.device_type == DeviceType.CPU]
    out["host_launch_calls_per_step"] = sum(e.name.startswith(LAUNCH_CALLS) for e in cpu_ops) / steps
    out["aten_calls_per_step"] = sum(e.name.startswith("aten::") for e in cpu_ops) / steps   # nested calls too
    if cuda:
        dev = [e for e in events if e.device_type != DeviceType.CPU]
        kernels = _kernels(dev)
        out["device_event_kinds"] = dict(collections.Counter(str(getattr(e, "activity_type", None)) for e in dev))
        out["kernels_per_step"] = len(kernels) / steps
        out["memcpy_memset_per_step"] = sum(e.name.startswith(("Memcpy", "Memset")) for e in dev) / steps
        kernel_ms = sum(e.time_range.end - e.time_range.start for e in kernels) / steps / 1e3
        busy_ms = _union_us((e.time_range.start, e.time_range.end) for e in kernels) / steps / 1e3
        out.update(kernel_sum_ms_per_step=kernel_ms, kernel_union_ms_per_step=busy_ms,
                   gpu_busy_share=busy_ms / step_ms, gpu_idle_share=1 - busy_ms / step_ms,
                   gpu_busy_share_profiled=busy_ms / wall_ms)
    self_of = _self_device_us if cuda else (lambda e: e.self_cpu_time_total)
    kinds = {k: 0.0 for k in (*KINDS, "other")}
    for e in averages:
        low = e.key.lower()
        kind = next((k for k, keys in KINDS.items() if any(s in low for s in keys)), "other")
        kinds[kind] += self_of(e) / steps / 1e3
    out["self_ms_per_step_by_kind" + ("" if cuda else "_cpu")] = kinds
    tables = []
    if cuda:
        tables.append(f"top {top} ops by self CUDA time ({steps} steps)\n"
                      + averages.table(sort_by="self_cuda_time_total", row_limit=top, max_name_column_width=70))
    tables.append(f"top {top} ops by self CPU time ({steps} steps)\n"
                  + averages.table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=70))
    return out, "\n".join(tables)


def summary_of(row: dict) -> dict:
    """One line per cell: the step, its overhead, where the added time goes, and the host-bound indicators."""
    ms, x, prof = row["ms"], row["x_baseline"], row["profile"]
    out = {"cell": f"{row['model']} {row['interp'] or ''} {row['fooling']}".replace("  ", " "), "batch": row["batch"],
           "baseline_ms": round(ms["baseline"]["step"], 2)}
    if "step" in ms:
        out.update(step_ms=round(ms["step"]["step"], 2), overhead_x=round(row["overhead_x"], 2),
                   **{f"{k}_x": round(x["phases"][k], 2) for k in ("forward", "map", "theta0_map", "ce_backward",
                                                                   "penalty_backward", "optimizer")})
    for key in ("kernels_per_step", "host_launch_calls_per_step", "aten_calls_per_step"):
        out[key] = prof.get(key)
    out["gpu_busy_share"] = None if prof.get("gpu_busy_share") is None else round(prof["gpu_busy_share"], 3)
    return out


def phase_text(timing: dict, base_ms: float) -> str:
    rows = []
    for variant, phases in timing.items():
        for name, ms in phases.items():
            rows.append([variant, name, ms, ms / base_ms])
    return _common.markdown_table(["variant", "phase", "ms (median)", "x baseline step"], rows)


def set_backends(tf32: str, cudnn_benchmark: bool) -> dict:
    if tf32 != "default":                                  # default: torch's (matmul off, cuDNN on)
        torch.backends.cuda.matmul.allow_tf32 = tf32 == "on"
        torch.backends.cudnn.allow_tf32 = tf32 == "on"
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cudnn.deterministic = False
    torch.use_deterministic_algorithms(False)
    return {"matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32, "cudnn.benchmark": torch.backends.cudnn.benchmark,
            "deterministic": False}


def parse_cells(spec: str, plain: bool) -> list[tuple[str, str | None, str | None]]:
    cells, seen = [], []
    for item in spec.split(","):
        model, interp, fooling = item.strip().split(":")
        if interp not in interpreters.REGISTRY or fooling not in FOOLINGS:
            raise SystemExit(f"bad cell {item!r}: interpreter in {sorted(interpreters.REGISTRY)}, fooling in "
                             f"{sorted(FOOLINGS)}")
        if plain and model not in seen:
            seen.append(model)
            cells.append((model, None, None))
        cells.append((model, interp, fooling))
    return cells


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--cells", default=DEFAULT_CELLS, help="model:interpreter:fooling,... (fooling: location, topk, "
                   "topk-cached); the plain CE step of each model is added first")
    p.add_argument("--no-plain-cells", action="store_true", help="no separate plain CE cells (each fooling cell "
                   "still times its own interleaved baseline)")
    p.add_argument("--batches", type=int, nargs="+", default=[8])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10, help="timed steps per variant (median)")
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--adam", choices=["run", "foreach", "fused"], default="run",
                   help="run: what FoolingModule.configure_optimizers takes (fused on CUDA, default on the CPU); "
                        "foreach: torch's default (as bench/fooling_overhead.py)")
    p.add_argument("--tf32", choices=["off", "on", "default"], default="off",
                   help="default: torch's (matmul off, cuDNN on; the H200 tables of BENCHMARKS.md)")
    p.add_argument("--cudnn-benchmark", action="store_true")
    p.add_argument("--glibc-malloc", action="store_true",
                   help="leave glibc malloc at its defaults (runs set backends.reuse_host_memory=true)")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "/tmp/profile_step"))
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's; --quick: 1)")
    p.add_argument("--quick", action="store_true", help="CPU dry run: 64 px, batch 2, no warm-up, 1 timed, 1 profiled, "
                   "1 thread (2 threads on 2 shared cores ran ResNet50 3x slower than 1: OpenMP waits on a descheduled "
                   "peer)")
    args = p.parse_args()
    if args.quick:
        args.size, args.batches, args.warmup, args.iters, args.profile_steps = 64, [2], 0, 1, 1
        args.threads = args.threads or 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from interpfool.experiment.host_memory import reuse_host_memory
    allocator = reuse_host_memory(not args.glibc_malloc)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, txt_path = args.out / "profile_step.json", args.out / "profile_step.txt"
    result = {"device": _common.machine(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "size": args.size, "batches": args.batches, "warmup": args.warmup,
              "iters": args.iters, "profile_steps": args.profile_steps, "adam": args.adam, "allocator": allocator,
              "threads": torch.get_num_threads(), "backends": set_backends(args.tf32, args.cudnn_benchmark),
              "quick": args.quick, "summary": [], "cells": [], "errors": []}
    txt_path.write_text(f"# bench/profile_step.py\n{result['device']}; size {args.size}; backends "
                        f"{result['backends']}; adam {args.adam}; {allocator}\n")
    began = time.time()
    cells = parse_cells(args.cells, not args.no_plain_cells)
    nets: dict = {}
    for model, interp, fooling in cells:
        if model not in nets:
            nets.clear()                                   # one model on the device at a time
            if device.type == "cuda":
                torch.cuda.empty_cache()
            nets[model] = model_and_optimizer(model, device, args.adam, args.size)
        for batch in args.batches:
            name = f"{model} {interp or 'plain CE'} {fooling or ''} B={batch}".replace("  ", " ")
            start, cell = time.time(), None
            try:
                torch.manual_seed(1)
                x = torch.randn(batch, 3, args.size, args.size, device=device)
                y = torch.randint(0, 1000, (batch,), device=device)
                cell = Cell(*nets[model], x, y, interp, fooling)
                row = {"model": model, "interp": interp, "fooling": fooling or "plain", "batch": batch}
                if cell.module is not None:                # the split computes what objective() computes
                    ref = cell.module.objective(x, y, index=cell.index)["loss"].detach()
                    split = cell.phases(lambda name: None, check=True).detach()
                    row["phases_loss_matches_objective"] = bool(torch.allclose(split, ref, rtol=1e-4))
                _common.peak_memory_reset(device)
                timing = time_phases(cell, device, args.warmup, args.iters)
                base = timing["baseline"]["step"]
                row["ms"] = timing
                row["x_baseline"] = {v: {k: ms / base for k, ms in ph.items()} for v, ph in timing.items()}
                if "step" in timing:
                    row["overhead_x"] = timing["step"]["step"] / base
                row["peak_memory_mb"] = _common.peak_memory_mb(device)
                prof, tables = profile_cell(cell, device, args.profile_steps, args.top,
                                            timing["step" if "step" in timing else "baseline"]["step"],
                                            warmup=args.warmup > 0)
                row["profile"] = prof
                row["seconds"] = round(time.time() - start, 1)
                result["cells"].append(row)
                result["summary"].append(summary_of(row))
                summary = {k: prof[k] for k in ("kernels_per_step", "host_launch_calls_per_step", "gpu_busy_share")
                           if k in prof}
                with txt_path.open("a") as fh:
                    fh.write(f"\n\n## {name}\n\nphases (median of {args.iters}; x = multiple of the baseline step "
                             f"{base:.2f} ms)\n{phase_text(timing, base)}\n\nprofile: "
                             f"{json.dumps(prof)}\n\n{tables}\n")
                print(f"{name}: baseline {base:.2f} ms, step "
                      f"{timing.get('step', timing['baseline'])['step']:.2f} ms, overhead "
                      f"{row.get('overhead_x', 1.0):.2f}x, {summary}, {row['seconds']} s", flush=True)
            except Exception as err:  # noqa: BLE001 - one failing cell (memory, a kernel) must not lose the others
                result["errors"].append({"cell": name, "error": f"{type(err).__name__}: {err}"})
                print(name, "FAILED", result["errors"][-1]["error"], flush=True)
            finally:
                del cell                                   # theta0's copy and the graphs go before the next cell
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            result["seconds"] = round(time.time() - began, 1)
            json_path.write_text(json.dumps(result, indent=1))
    with txt_path.open("a") as fh:
        rows = [list(r.values()) for r in result["summary"]]
        fh.write("\n\n## summary\n\n" + (_common.markdown_table(list(result["summary"][0]), rows) if rows else "none")
                 + (f"\n\nerrors: {result['errors']}\n" if result["errors"] else "\n"))
    print(json.dumps(result["summary"], indent=1))
    print(f"wrote {json_path} and {txt_path} in {result['seconds']} s; errors: {len(result['errors'])}", flush=True)


if __name__ == "__main__":
    main()
