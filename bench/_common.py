"""Shared helpers of the benchmarks: interleaved timing, machine description, BENCHMARKS.md output.

Only torch, torchvision and this package are needed (the GPU machine has no hydra-core or wandb);
the peer libraries (Captum, Zennit, pytorch-grad-cam) are imported only by the scripts that compare.
"""
from __future__ import annotations

import datetime as _dt
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(fns: dict[str, Callable[[], object]], device: torch.device, reps: int = 7,
                        warmup: int = 2) -> dict[str, float]:
    """Median wall time (s) of each fn, the fns run round-robin so drifts (thermal, other load) hit all alike; the
    order reverses every repetition (A B, B A, ...): in a fixed order the second fn ran on the first one's warm
    caches and freed heap, measured 3% faster on a CPU SmoothGrad pair that alternating shows level."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for rep in range(reps):
        for name, fn in (list(fns.items()) if rep % 2 == 0 else list(fns.items())[::-1]):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        what = f"{cpu}, {torch.get_num_threads()} threads"
    return f"{what}; torch {torch.__version__}"


def random_model_and_batch(model_name: str, batch: int, size: int, device: torch.device):
    """A randomly initialised 1000-class model (seed 0) in eval mode and a random batch on ``device``."""
    from interpfool import models

    torch.manual_seed(0)
    net = models.build(model_name, num_classes=1000).to(device).eval()
    return net, torch.randn(batch, 3, size, size, device=device)


def markdown_table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def record(title: str, table: str, device: torch.device, notes: str = "", out: Path | None = None,
           print_only: bool = False) -> None:
    """Print the table and append it, with machine, date and command, to BENCHMARKS.md (``print_only``:
    the scripts' ``--no-record``, print and write nothing)."""
    script = Path(sys.argv[0]).resolve()
    command = "python " + " ".join([str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else str(script),
                                    *sys.argv[1:]])
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"\n### {title}\n\n- machine: {machine(device)}\n- date: {stamp}\n- command: `{command}`\n"
    if notes:
        block += f"- notes: {notes}\n"
    block += f"\n{table}\n"
    print(block)
    if print_only:
        return
    path = out or ROOT / "BENCHMARKS.md"
    if not path.exists():
        path.write_text("# Benchmarks\n\nEvery table is appended by a script in `bench/`, with its machine, date and command.\n")
    with path.open("a") as fh:
        fh.write(block)


def peak_memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float | str:
    """CUDA max allocated since the last reset; on CPU there is no per-step allocator peak: "n/a"."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return "n/a"
