"""(e) The Location / Grad-CAM fooling step of this tree against the plain CE step and a previous release.

One step = CE + lambda * Location(Grad-CAM) (Heo et al. 2019, eq. 3), one backward, Adam's update, float32, at the
authors' settings (VGG19 lambda 1, lr 1e-6; ResNet50 lambda 2, lr 2e-6; target layer the model's default = theirs;
labels fixed to theta0's argmax). Each variant runs in its own fresh process per repetition (the host allocator's
state and the process-wide ``backends.reuse_host_memory`` belong to a process), the variants round-robin, medians:

- ``ce``: the plain CE step on this tree's model, with the run's settings (reuse_host_memory on, adam auto);
- ``fool``: this tree's fooling step as a run takes it (``FoolingModule.configure_optimizers``, reuse on);
- ``fool_fused``: the same with ``fooling.adam=fused``;
- ``fool_glibc``: the same with ``backends.reuse_host_memory=false`` (glibc's defaults);
- ``fool_cl``: ``fool`` with the model's weights and the input in channels_last memory format;
- ``release``: the previous release's step, its package imported from ``--baseline-src`` (a checkout beside this
  one: ``git worktree add ../interpfool-prev <rev>``), with that release's own defaults;
- ``authors`` / ``authors_reuse``: the authors' own step (their hand-written layers and training loop, Heo et al.'s
  repository run under this torch), from ``--authors-harness DIR``: a folder outside this repository whose
  ``adapter.py`` has ``make_step(model, torchvision_state_dict, x, y, lam, lr)`` -> a zero-argument step (their
  code is not part of this package; BENCHMARKS.md says how the harness was made and checked). ``authors`` runs with
  glibc's defaults as their code would; ``authors_reuse`` with this package's host-memory setting, so the allocator
  is not what the comparison measures. The same weights and inputs go to every variant.

    python bench/step_vs_release.py --baseline-src ../interpfool-prev/src --authors-harness ../authors \
        --models vgg19,resnet50 --reps 5

Each process warms up ``--warmup`` steps (glibc needs a few steps before it reuses freed blocks) and times
``--steps`` steps; the process's peak resident memory is reported too (reuse keeps the peak until exit).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = {"vgg19": (1.0, 1e-6), "resnet50": (2.0, 2e-6)}      # authors' passive_fooling.sh, Location / Grad-CAM
VARIANTS = ("ce", "fool", "fool_fused", "fool_glibc", "fool_cl", "release", "authors", "authors_reuse")


def worker(args) -> None:
    """One process: build, warm up, time ``args.steps`` steps of one variant; print a JSON line."""
    sys.path.insert(0, args.src)
    import functools

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    reuse = args.variant in ("ce", "fool", "fool_fused", "fool_cl", "authors_reuse")
    if reuse:
        from interpfool.experiment.host_memory import reuse_host_memory
        reuse_host_memory(True)
    from interpfool import interpreters, models
    from interpfool.fooling import FoolingModule
    from interpfool.fooling.penalties import LocationFooling

    lam, lr = SETTINGS[args.model]
    torch.manual_seed(0)
    net = models.build(args.model, num_classes=1000).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        y = net(x).argmax(1)
    if args.variant.startswith("authors"):
        sys.path.insert(0, args.authors_harness)
        import adapter
        step = adapter.make_step(args.model, net.state_dict(), x, y, lam, lr)
        del net          # their model alone stays for the steps
        adam = "authors' own"
    else:
        if args.variant == "fool_cl":
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        # no adam argument unless fused: the previous release's FoolingModule has none
        module = FoolingModule(net, functools.partial(interpreters.REGISTRY["gradcam"]), LocationFooling(), lam=lam,
                               lr=lr, target="label", **({"adam": "fused"} if args.variant == "fool_fused" else {}))
        module.train()
        opt = module.configure_optimizers()
        adam = type(opt).__name__ + str(opt.defaults.get("fused"))

        def step():
            opt.zero_grad(set_to_none=True)
            if args.variant == "ce":
                loss = F.cross_entropy(net(x), y)
            else:
                loss = module.objective(x, y)["loss"]
            loss.backward()
            opt.step()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "peak_mb": peak_mb, "adam": adam}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline-src", help="the previous release's src/ folder (without it: no release row)")
    p.add_argument("--authors-harness", help="folder with the authors' adapter.py (without it: no authors rows)")
    p.add_argument("--models", default="vgg19,resnet50")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5, help="fresh processes per variant (round-robin)")
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--steps", type=int, default=2, help="timed steps per process (their median is the rep's)")
    p.add_argument("--no-record", action="store_true")
    p.add_argument("--json", help="write all raw times here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--src", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    import _common
    import torch

    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise SystemExit(f"--variants: {','.join(bad)}; allowed: {', '.join(VARIANTS)}")
    if "release" in variants and not args.baseline_src:
        variants.remove("release")
    if not args.authors_harness:
        variants = [v for v in variants if not v.startswith("authors")]
    here_src = str(HERE.parent / "src")
    raw: dict = {}
    for model in args.models.split(","):
        if model not in SETTINGS:
            raise SystemExit(f"--models: {model}; allowed: {', '.join(SETTINGS)}")
        raw[model] = {v: {"reps": [], "peak_mb": []} for v in variants}
        for rep in range(args.reps):
            for v in variants:
                cmd = [sys.executable, __file__, "--worker", "--variant", v, "--model", model,
                       "--src", args.baseline_src if v == "release" else here_src,
                       "--batch", str(args.batch), "--size", str(args.size), "--threads", str(args.threads),
                       "--warmup", str(args.warmup), "--steps", str(args.steps)]
                if v.startswith("authors"):
                    cmd += ["--authors-harness", str(Path(args.authors_harness).resolve())]
                env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE)
                if out.returncode:
                    raise SystemExit(f"{model} {v}: worker failed\n{out.stderr[-2000:]}")
                got = json.loads(out.stdout.strip().splitlines()[-1])
                raw[model][v]["reps"].append(statistics.median(got["times"]))
                raw[model][v]["peak_mb"].append(got["peak_mb"])
                raw[model][v]["adam"] = got["adam"]
                print(model, rep, v, f"{raw[model][v]['reps'][-1]:.3f} s", flush=True)
    rows = []
    for model, by in raw.items():
        med = {v: statistics.median(r["reps"]) for v, r in by.items()}
        for v, r in by.items():
            rows.append([model, v, med[v], f"{min(r['reps']):.3f}-{max(r['reps']):.3f}",
                         f"{med[v] / med['ce']:.2f}" if "ce" in med else "-",
                         f"{med['release'] / med[v]:.2f}" if "release" in med else "-",
                         f"{med['authors'] / med[v]:.2f}" if "authors" in med else "-",
                         f"{max(r['peak_mb']):.0f}"])
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "raw": raw}, indent=1))
    table = _common.markdown_table(["model", "variant", "median step (s)", "rep range (s)", "x CE step",
                                    "release / this", "authors / this", "peak RSS (MB)"], rows)
    notes = (f"batch {args.batch}, {args.size}x{args.size}, float32, {args.threads} threads, Location / Grad-CAM "
             f"at the authors' lambda and lr; median over {args.reps} fresh processes per variant (round-robin), each "
             f"the median of {args.steps} steps after {args.warmup} warm-up steps; release = {args.baseline_src}; "
             f"authors = {args.authors_harness}")
    torch.set_num_threads(args.threads)
    _common.record("Fooling step against the CE step, the previous release and the authors' step (e)", table, torch.device("cpu"),
                   notes, print_only=args.no_record)


if __name__ == "__main__":
    main()
