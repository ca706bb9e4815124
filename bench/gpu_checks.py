"""Single-GPU checks of the off-CPU issue, on the real device (torch, torchvision, lightning and this package only):

1. syncs: every fooling x {gradcam, lrpT, simplegT, smoothgrad, ig} on small_vgg, the training step as the CPU
   harness runs it (``tests/fooling/sync_harness.py``: training_step, the NaN guard's hooks, backward, fused
   Adam), steps 3-5 under ``torch.cuda.set_sync_debug_mode("warn")``: CUDA's own report of every synchronising
   call (``.item()``, blocking copies, ``nonzero``...), counted per step;
2. autocast: each interpreter's map under bf16 and fp16 autocast is float32 and finite (LRP also with
   ``score=prob``);
3. determinism: with ``torch.use_deterministic_algorithms(True)`` (what ``trainer.deterministic=true`` sets) and
   TF32 off, two fooling steps from the same state give bit-identical gradients, per interpreter and model;
   ``apply_backends`` sets the TF32 / cuDNN flags it names;
4. memory: peak CUDA memory of a differentiable SmoothGrad / IG penalty's backward with and without
   ``chunk_size`` (the checkpointed chunks bound the live graph);
5. portable noise: SmoothGrad's SplitMix64 bits equal on the CPU and CUDA, the normal draws within float32 ulps,
   and a seeded SmoothGrad map on CUDA against the same map on the CPU.

    python bench/gpu_checks.py --out /tmp/gpu_checks.json         # on the GPU machine
    python bench/gpu_checks.py --device cpu --quick               # a dry run of the script on the CPU
"""
from __future__ import annotations

import argparse
import functools
import json
import time
import warnings
from pathlib import Path

import _common  # noqa: F401  (puts src/ on the path)
import torch

from interpfool import interpreters, models
from interpfool.experiment.callbacks import StopOnNonFiniteLoss
from interpfool.fooling import penalties
from interpfool.fooling.module import FoolingModule
from interpfool.interpreters import portable_noise
from interpfool.models.determinism import apply_backends, deterministic_pooling

FOOLINGS = ("location", "topk", "center_mass", "active")
INTERPS = ("gradcam", "lrpT", "simplegT", "smoothgrad", "ig")
SMALL_KW = {"smoothgrad": {"n": 4}, "ig": {"steps": 4}, "rsigradcam": {"steps": 4}}


class _Trainer:
    """What the module and the NaN guard read of a trainer in one step (as the CPU harness's stub)."""
    training, global_step, world_size, global_rank, precision_plugin = True, 0, 1, 0, None
    optimizers: list = []


def _fooling(name):
    return {"location": penalties.LocationFooling, "topk": penalties.TopKFooling,
            "center_mass": penalties.CenterMassFooling,
            "active": functools.partial(penalties.ActiveFooling, c1=0, c2=1)}[name]()


def sync_counts(device, steps=5, batch=8, size=32) -> dict:
    """Synchronising CUDA calls reported per step (steps 3..``steps``) of each fooling x interpreter."""
    from lightning_utilities.core.apply_func import apply_to_collection
    out = {}
    for fooling_name in FOOLINGS:
        for interp_name in INTERPS:
            torch.manual_seed(0)
            net = models.build("small_vgg", num_classes=4, width=8, hidden=16)
            fooling = _fooling(fooling_name)
            swap = bool(fooling.classes)
            make = functools.partial(interpreters.REGISTRY[interp_name], **SMALL_KW.get(interp_name, {}))
            module = FoolingModule(net, make, fooling, lam=1.0, lr=1e-4, target="label",
                                   original_cache=batch * steps if fooling.needs_original and not swap else 0)
            trainer, guard = _Trainer(), StopOnNonFiniteLoss()
            module._trainer = trainer
            module.log = lambda *a, **k: None
            module.log_dict = lambda *a, **k: None
            module = module.to(device)._freeze_modes()
            opt = module.configure_optimizers()
            trainer.optimizers = [opt]
            per_step = []
            for step in range(steps):
                trainer.global_step = step
                index = torch.arange(step * batch, (step + 1) * batch)
                host = [torch.randn(batch, 3, size, size), torch.randint(0, 4, (batch,)),
                        torch.zeros(batch, size, size, dtype=torch.bool), index]
                host = {"images": host[:2], "collage": [torch.randn(batch, 3, size, size)]} if swap else \
                    module.on_before_batch_transfer(host, 0)
                pinned = apply_to_collection(host, torch.Tensor, lambda t: t.pin_memory() if device.type == "cuda"
                                             else t)
                b = apply_to_collection(pinned, torch.Tensor, lambda t: t.to(device, non_blocking=True))
                watch = step >= 2 and device.type == "cuda"
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    if watch:
                        torch.cuda.set_sync_debug_mode("warn")
                    try:
                        loss = module.training_step(b, step)
                        guard.on_before_backward(trainer, module, loss)
                        loss.backward()
                        guard.on_before_optimizer_step(trainer, module, opt)
                        opt.step()
                        opt.zero_grad()
                    finally:
                        if watch:
                            torch.cuda.set_sync_debug_mode("default")
                if watch:
                    msgs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()
                            and "prototype feature" not in str(w.message)]   # the mode's own notice, once
                    per_step.append(len(msgs))
                    if msgs:
                        out.setdefault("examples", {})[f"{fooling_name}/{interp_name}"] = msgs[:3]
            out[f"{fooling_name}/{interp_name}"] = per_step
            print("syncs", fooling_name, interp_name, per_step, flush=True)
    return out


def autocast_dtypes(device) -> dict:
    """Map dtype and finiteness of each interpreter under bf16 / fp16 autocast."""
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=4, width=8, hidden=16).to(device).eval()
    x = torch.randn(4, 3, 32, 32, device=device)
    y = torch.tensor([0, 1, 2, 3], device=device)
    out = {}
    for dtype in (torch.bfloat16, torch.float16):
        for name in interpreters.names():
            for kw in ({}, {"score": "prob"}) if name.startswith("lrp") else ({},):
                interp = interpreters.build(name, net, **SMALL_KW.get(name, {}), **kw)
                with torch.autocast(device.type, dtype=dtype):
                    h = interp(x, y, create_graph=True)
                    loss = h.square().mean()
                (g,) = torch.autograd.grad(loss, next(net.parameters()))
                key = f"{str(dtype).split('.')[-1]}/{name}{'/prob' if kw else ''}"
                out[key] = {"map_dtype": str(h.dtype).split(".")[-1], "finite": bool(torch.isfinite(h).all()),
                            "grad_finite": bool(torch.isfinite(g).all()), "zero_maps": float((h.flatten(1).amax(1)
                                                                                               == 0).float().mean())}
    bad = {k: v for k, v in out.items() if v["map_dtype"] != "float32" or not v["finite"] or not v["grad_finite"]}
    print("autocast: cases", len(out), "bad", bad, flush=True)
    return {"cases": out, "bad": bad}


def determinism(device, models_=("small_vgg", "resnet50"), interps=("gradcam", "lrpT", "lrp", "smoothgrad", "ig"),
                size=64) -> dict:
    """Bit-identity of two fooling-step gradients from the same state, deterministic algorithms on, TF32 off."""
    apply_backends(allow_tf32=False, cudnn_benchmark=False)
    flags = {"matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
             "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32, "cudnn.benchmark": torch.backends.cudnn.benchmark}
    torch.use_deterministic_algorithms(True)
    out = {"flags_after_apply_backends(False, False)": flags}
    try:
        for model_name in models_:
            classes = 4 if model_name.startswith("small") else 1000
            for interp_name in interps:
                torch.manual_seed(0)
                net = deterministic_pooling(models.build(model_name, num_classes=classes)).to(device).eval()
                make = functools.partial(interpreters.REGISTRY[interp_name], **SMALL_KW.get(interp_name, {}),
                                         **({"seed": 0} if interp_name == "smoothgrad" else {}))
                module = FoolingModule(net, make, penalties.LocationFooling(), lam=1.0, lr=1e-4,
                                       target="pred").to(device)
                x = torch.randn(4, 3, size, size, device=device)
                y = torch.randint(0, classes, (4,), device=device)
                grads = []
                for _ in range(2):
                    net.zero_grad(set_to_none=True)
                    try:
                        module.objective(x, y)["loss"].backward()
                    except RuntimeError as err:          # a kernel with no deterministic implementation
                        grads = str(err).splitlines()[0]
                        break
                    grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
                key = f"{model_name}/{interp_name}"
                if isinstance(grads, str):
                    out[key] = {"error": grads}
                else:
                    same = all(torch.equal(a, b) for a, b in zip(*grads))
                    out[key] = {"bit_identical": same}
                print("determinism", key, out[key], flush=True)
                del module, net
    finally:
        torch.use_deterministic_algorithms(False)
    return out


def chunk_memory(device, model_name="resnet50", batch=8, size=112, n=16, chunk=4) -> dict:
    """Peak CUDA memory (MiB) of a Location penalty's backward through SmoothGrad / IG maps, by ``chunk_size``."""
    out = {}
    for interp_name, kw in (("smoothgrad", {"n": n, "seed": 0}), ("ig", {"steps": n})):
        for chunk_size in (None, chunk):
            torch.manual_seed(0)
            net = models.build(model_name, num_classes=1000).to(device).eval()
            interp = interpreters.build(interp_name, net, chunk_size=chunk_size, **kw)
            x = torch.randn(batch, 3, size, size, device=device)
            y = torch.randint(0, 1000, (batch,), device=device)
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated() if device.type == "cuda" else 0
            h = interp(x, y, create_graph=True)
            h.square().mean().backward()
            peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20 if device.type == "cuda" else float("nan")
            out[f"{model_name}/{interp_name}/n={n}/chunk={chunk_size}"] = round(peak, 1)
            print("memory", interp_name, chunk_size, round(peak, 1), "MiB", flush=True)
            del net, interp, h
    return out


def noise_across_devices(device) -> dict:
    """Portable SmoothGrad noise and a seeded map, CUDA against the CPU."""
    bits_cpu = portable_noise.splitmix64(123, 10 ** 6, 1 << 20)
    bits_dev = portable_noise.splitmix64(123, 10 ** 6, 1 << 20, device).cpu()
    z_cpu = portable_noise.normal((1 << 22,), 123)
    z_dev = portable_noise.normal((1 << 22,), 123, device=device).cpu()
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=4, width=8, hidden=16).double().eval()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    sg = functools.partial(interpreters.build, "smoothgrad", n=8, seed=5)
    m_cpu = sg(net)(x, y)
    m_dev = sg(net.to(device))(x.to(device), y.to(device)).cpu()
    native = functools.partial(interpreters.build, "smoothgrad", n=8, seed=5, rng="torch")
    n_dev = native(net)(x.to(device), y.to(device)).cpu()
    n_cpu = native(net.cpu())(x, y)
    out = {"splitmix64_bits_equal": bool(torch.equal(bits_cpu, bits_dev)),
           "normal_max_abs_diff": float((z_cpu - z_dev).abs().max()),
           "normal_share_unequal": float((z_cpu != z_dev).double().mean()),
           "seeded_map_max_rel_dev_portable": float((m_cpu - m_dev).abs().max() / m_cpu.abs().max()),
           "seeded_map_max_rel_dev_torch_rng": float((n_cpu - n_dev).abs().max() / n_cpu.abs().max())}
    print("noise", out, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("gpu_checks.json"))
    p.add_argument("--quick", action="store_true", help="small sizes (a dry run on the CPU)")
    p.add_argument("--only", default="noise,syncs,autocast,determinism,memory")
    args = p.parse_args()
    device = torch.device(args.device)
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__}
    parts = {"noise": lambda: noise_across_devices(device),
             "syncs": lambda: sync_counts(device, steps=3 if args.quick else 5),
             "autocast": lambda: autocast_dtypes(device),
             "determinism": lambda: determinism(device, ("small_vgg",) if args.quick else ("small_vgg", "resnet50")),
             "memory": lambda: chunk_memory(device, "small_vgg" if args.quick else "resnet50",
                                            size=32 if args.quick else 112)}
    for name in args.only.split(","):
        start = time.time()
        try:
            result[name] = parts[name]()
        except Exception as err:  # noqa: BLE001 - one failing part must not lose the others' results
            result[name] = {"error": f"{type(err).__name__}: {err}"}
            print(name, "FAILED", result[name], flush=True)
        result[f"{name}_seconds"] = round(time.time() - start, 1)
        args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "autocast"}, indent=1)[:6000])


if __name__ == "__main__":
    main()
