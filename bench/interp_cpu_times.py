"""Wall time of one heatmap batch per interpreter on VGG19 (random weights, predicted class),
one call each after a warm-up call, no graph kept (information, not a target).

    python bench/interp_cpu_times.py --batch 16 --size 224 --path-steps 4
Path methods (smoothgrad, ig, rsigradcam) run with --path-steps samples/steps; their cost grows linearly.
"""
from __future__ import annotations

import argparse
import time

import _common
import torch

from interpfool import interpreters, models


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--path-steps", type=int, default=4)
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = models.build("vgg19", num_classes=1000).to(device).eval()
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    with torch.no_grad():
        target = net(x).argmax(1)
    path = {"smoothgrad": {"n": args.path_steps}, "ig": {"steps": args.path_steps},
            "rsigradcam": {"steps": args.path_steps}}
    rows = []
    for name in interpreters.names():
        interp = interpreters.build(name, net, **path.get(name, {}))
        interp(x[:1], target[:1])
        _common.sync(device)
        start = time.perf_counter()
        interp(x, target)
        _common.sync(device)
        rows.append([name, ", ".join(f"{k}={v}" for k, v in path.get(name, {}).items()) or "defaults",
                     time.perf_counter() - start])
        print(rows[-1], flush=True)
    table = _common.markdown_table(["interpreter", "options", f"seconds per {args.batch}x3x{args.size}x{args.size} batch"],
                                   rows)
    _common.record("Heatmap time per batch, VGG19", table, device,
                   "random weights, predicted class, one call after a warm-up; "
                   f"path methods at {args.path_steps} steps",
                   print_only=args.no_record)


if __name__ == "__main__":
    main()
