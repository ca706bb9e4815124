"""Counts host-device synchronisations and host-to-device copies in one fooling training step.

The step runs on the ``meta`` device (shapes, no data), under a ``TorchDispatchMode`` that sees every aten op:
* a sync: an op whose result the host must read from the device — ``_local_scalar_dense`` (``.item()``,
  ``float()``, ``bool()``, ``int()``), ``is_nonzero``, ``equal``, ``nonzero`` (boolean-mask indexing, ``where``
  with one argument), ``masked_select``, ``unique*``; on meta they get a stand-in result (0 / empty);
* a host-to-device copy: ``_to_copy`` / ``copy_`` whose source is a CPU tensor and whose result is on meta
  (``torch.tensor(..., device=x.device)``, ``cpu_tensor.to(x.device)``);
* a device-to-host copy (``copy_`` / ``_to_copy`` from meta to the CPU): with ``non_blocking=True`` a read that
  waits for nothing (listed apart, not run: the host copy keeps its contents); a blocking one is a sync.
On a CPU-only machine this finds what a CUDA step would wait for: meta stands in for the device, and the CPU is
still the host. CPU tensors the optimizer keeps on purpose (Adam's ``step`` counter) are host work, not counted.
The optimizer is the module's own (``configure_optimizers``: fused Adam, which torch's check is told meta supports,
as CUDA does), and the NaN guard's events on meta are ready at once.
"""
from __future__ import annotations

import traceback

import torch
import torch.fx.experimental._config  # noqa: F401
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = {"_local_scalar_dense", "is_nonzero", "equal", "nonzero", "masked_select", "_unique2", "unique_dim",
            "unique_consecutive", "nonzero_static"}
COPY_OPS = {"_to_copy", "copy_", "copy"}
BOOL_INDEX_OPS = {"index", "index_put", "index_put_", "_index_put_impl_"}    # x[mask]: a nonzero inside the kernel


def _tensors(tree):
    from torch.utils._pytree import tree_leaves
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


class SyncCounter(TorchDispatchMode):
    def __init__(self, device: str = "meta"):
        super().__init__()
        self.device, self.syncs, self.copies, self.reads = device, [], [], []

    @staticmethod
    def _where() -> str:
        frames = [f for f in traceback.extract_stack() if "/interpfool/" in f.filename and "sync_harness" not in f.filename]
        return f"{frames[-1].filename.split('/interpfool/')[-1]}:{frames[-1].lineno}" if frames else "?"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        ins = _tensors((args, kwargs))
        on_device = [t for t in ins if t.device.type == self.device]
        bool_index = name in BOOL_INDEX_OPS and any(t.dtype == torch.bool for t in _tensors(args[1:2]))
        if (name in SYNC_OPS or bool_index) and on_device:
            self.syncs.append(f"{name} @ {self._where()}")
            if name in ("_local_scalar_dense",):
                return False if ins[0].dtype == torch.bool else 0
            if name in ("is_nonzero", "equal"):
                return False
            if name in ("nonzero", "nonzero_static"):
                return torch.empty((0, ins[0].dim()), dtype=torch.long, device=self.device)
            if bool_index:                         # meta's nonzero assumes every element is selected
                with torch.fx.experimental._config.patch(meta_nonzero_assume_all_nonzero=True):
                    return func(*args, **kwargs)
            if name == "masked_select":
                return torch.empty((0,), dtype=ins[0].dtype, device=self.device)
        if name in COPY_OPS and ins:
            src = ins[1] if name == "copy_" else ins[0]
            to_host = ins[0].device.type == "cpu" if name == "copy_" else \
                torch.device(kwargs.get("device") or src.device).type == "cpu"
            if src.device.type == self.device and to_host:
                blocking = not kwargs.get("non_blocking", args[2] if name == "copy_" and len(args) > 2 else False)
                (self.syncs if blocking else self.reads).append(f"{name} to host @ {self._where()}")
                return ins[0] if name == "copy_" else torch.zeros(src.shape, dtype=kwargs.get("dtype") or src.dtype)
        out = func(*args, **kwargs)
        if name in COPY_OPS:
            src = ins[1] if name == "copy_" else ins[0]
            dst = _tensors(out)
            if src.device.type == "cpu" and dst and dst[0].device.type == self.device:
                self.copies.append(f"{name} {tuple(src.shape)} @ {self._where()}")
        return out


class HostDataMode(TorchFunctionMode):
    """``torch.tensor(data, device=...)`` / ``torch.as_tensor(data, device=...)`` build the tensor on the host and
    copy it below the dispatcher, where ``SyncCounter`` cannot see it: count them at the function level."""

    def __init__(self, counter: SyncCounter):
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor) and str(kwargs.get("device", "cpu")).startswith(self.counter.device):
            if not (args and isinstance(args[0], torch.Tensor) and args[0].device.type == self.counter.device):
                self.counter.copies.append(f"{func.__name__}(host data) @ {self.counter._where()}")
        return func(*args, **kwargs)


class _StubTrainer:
    training, global_step, world_size, global_rank, precision_plugin = True, 0, 1, 0, None
    optimizers: list = []


class _ReadyEvent:
    def query(self):
        return True

    def synchronize(self):
        pass


def fooling_step_counts(fooling_name: str, interp_name: str, steps: int = 2, batch: int = 4, size: int = 32,
                        cache: bool = True, callbacks=()) -> list[tuple[list[str], list[str], list[str]]]:
    """(syncs, host-to-device copies, non-blocking device-to-host copies) of each of ``steps`` training steps of the
    fooling module on meta tensors: the module's ``training_step`` (objective, logging values), the callbacks'
    ``on_before_backward``, the backward, the callbacks' ``on_before_optimizer_step`` and the module's optimizer
    step. Passive foolings use the theta0 map cache over an indexed batch when ``cache``."""
    from unittest import mock

    from torch.optim import optimizer as optim_base

    from interpfool.experiment import callbacks as guards

    fused_devices = optim_base._get_fused_kernels_supported_devices
    with mock.patch.object(optim_base, "_get_fused_kernels_supported_devices", lambda: [*fused_devices(), "meta"]), \
            mock.patch.object(guards, "_device_event", lambda device: _ReadyEvent()):
        return _counts(fooling_name, interp_name, steps, batch, size, cache, callbacks)


def _counts(fooling_name, interp_name, steps, batch, size, cache, callbacks):
    import functools

    from interpfool import interpreters, models
    from interpfool.fooling import penalties
    from interpfool.fooling.module import FoolingModule

    torch.manual_seed(0)
    classes = 4
    net = models.build("small_vgg", num_classes=classes, width=4, hidden=8)
    fooling = {"location": penalties.LocationFooling, "topk": penalties.TopKFooling,
               "center_mass": penalties.CenterMassFooling,
               "active": functools.partial(penalties.ActiveFooling, c1=0, c2=1)}[fooling_name]()
    make = functools.partial(interpreters.REGISTRY[interp_name], **({"n": 4} if interp_name == "smoothgrad" else {}),
                             **({"steps": 4} if interp_name == "ig" else {}))
    swap = bool(fooling.classes)
    n_train = batch * steps
    module = FoolingModule(net, make, fooling, lam=1.0, lr=1e-3, target="label",
                           original_cache=n_train if cache and not swap and fooling.needs_original else 0)
    trainer = _StubTrainer()
    module._trainer = trainer
    logged = []
    module.log = lambda name, value, **kw: logged.append((name, value))
    module.log_dict = lambda d, **kw: logged.extend(d.items())
    module = module.to("meta")._freeze_modes()
    opt = module.configure_optimizers()
    trainer.optimizers = [opt]
    out = []
    for step in range(steps):
        trainer.global_step = step
        index = torch.arange(step * batch, (step + 1) * batch)     # new images every step: theta0's maps computed
        host = [torch.randn(batch, 3, size, size), torch.randint(0, classes, (batch,)),
                torch.zeros(batch, size, size), index]
        if swap:
            host = {"images": host[:2], "collage": [torch.randn(batch, 3, size, size)]}
        else:
            host = module.on_before_batch_transfer(host, 0)
        from lightning_utilities.core.apply_func import apply_to_collection
        batch_dev = apply_to_collection(host, torch.Tensor, lambda t: t.to("meta"))
        counter = SyncCounter()
        with counter, HostDataMode(counter):
            loss = module.training_step(batch_dev, step)
            for cb in callbacks:
                cb.on_before_backward(trainer, module, loss)
            loss.backward()
            for cb in callbacks:
                cb.on_before_optimizer_step(trainer, module, opt)
            opt.step()
            opt.zero_grad()
        logged.clear()
        out.append((counter.syncs, counter.copies, counter.reads))
    return out
