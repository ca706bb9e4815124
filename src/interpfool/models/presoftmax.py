"""The pre-softmax manipulation of Lerma & Lucas (2023), DESIGN.md 2.4.

``presoftmax_shift(net, k, position)`` returns a model whose logits are

    z'_i(x) = z_i(x) + t(x),    t(x) = K * sum_k A_{p q k}(x)

with A the output of the model's last pooling layer (``net.last_pool``: VGG19 ``features.36`` =
block5_pool, as in the paper) and (p, q) = ``position`` (default (0, 0), K = 10 as in the paper).
Since t does not depend on i, softmax(z') = softmax(z): every post-softmax output, every post-softmax
attribution and the gradient of any loss of the probabilities (cross-entropy) are unchanged in exact
arithmetic; only attributions of the pre-softmax scores move.

What is returned: a *shallow copy of the same class* (a subclass created on the fly, e.g.
``PresoftmaxShiftedVGG``) whose submodules are the original's submodules. It **shares the original's
parameters and buffers** (nothing is copied; training one trains the other; ``copy=True`` deep-copies
first to get independent weights). Module names, ``state_dict`` keys, ``target_layer`` and
``last_pool`` are the original's, so every interpreter (and ``layer=`` names) work on it unchanged; the
manipulation adds no parameter (K and the position are plain attributes), so
``shifted.state_dict()`` loads into the unshifted class too. LRP/LRP_T get an adapter that splits the
relevance of z'_c between the original logit and t (``interpfool.lrp.presoftmax``; ``lrp`` recognises the
``PresoftmaxShifted`` class, this module does not import ``lrp``).

Float error: z + t is rounded to the precision of t, so in float32 the logit *differences* (all that
softmax sees) carry an error of about ulp(t) ~ 6e-8 |t| (measured: softmax moves by 2.2e-6 on a random
VGG19 at K = 10, t ~ 30). By default the sum is therefore formed and returned in float64
(``dtype=torch.float64``): two float32 numbers add exactly in float64, so softmax(z') equals softmax(z) to
float64 rounding and the manipulated logits are a float64 tensor. ``dtype=None`` keeps the model's dtype
(the float32 rounding above is then part of the output).
"""
from __future__ import annotations

import copy as copy_module
import numbers

import torch
from torch import nn

from interpfool.models.builders import resolve_module

_SHIFTED_CLASSES: dict[type, type] = {}


class PresoftmaxShifted:
    """Mixin placed before the model's own class: the model's forward, plus t(x) on every logit."""

    presoftmax_k: float
    presoftmax_position: tuple[int, int]
    presoftmax_dtype: torch.dtype | None
    last_pool: str

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        pool = resolve_module(self, self.last_pool)
        handle = pool.register_forward_hook(lambda _m, _args, out: captured.append(out))
        try:
            logits = super().forward(x)
        finally:
            handle.remove()
        if len(captured) != 1:
            raise RuntimeError(f"last_pool {self.last_pool!r} ran {len(captured)} times in one forward; "
                               f"the pre-softmax shift needs exactly one output of it")
        return self.add_shift(logits, self.presoftmax_t(captured[0]))

    def add_shift(self, logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """z' = z + t on every logit (Lerma & Lucas 2023, eq. 2), formed in ``presoftmax_dtype``."""
        dtype = getattr(self, "presoftmax_dtype", None)
        if dtype is not None and dtype != logits.dtype:
            return logits.to(dtype) + t.to(dtype)[:, None]   # exact for float32 inputs (module docstring)
        return logits + t[:, None]

    def presoftmax_t(self, pooled: torch.Tensor) -> torch.Tensor:
        """t = K * sum_k A[:, k, p, q] from the last pooling layer's output A ([B, C, H, W]) -> [B]."""
        if pooled.ndim != 4:
            raise ValueError(f"last_pool {self.last_pool!r} outputs a {pooled.ndim}-d tensor; the pre-softmax "
                             f"shift needs a [B, C, H, W] pooling output")
        p, q = self.presoftmax_position
        height, width = pooled.shape[-2:]
        if not (0 <= p < height and 0 <= q < width):
            raise ValueError(f"presoftmax position {(p, q)} is outside the {height}x{width} output of "
                             f"{self.last_pool!r}; allowed: 0 <= row < {height}, 0 <= col < {width}")
        return self.presoftmax_k * pooled[:, :, p, q].sum(1)

    def __reduce_ex__(self, protocol):
        # the subclass is created at run time: rebuild it from the base class (picklable, deep-copyable)
        return _rebuild, (self._presoftmax_base,), self.__getstate__()

    def extra_repr(self) -> str:
        base = super().extra_repr()
        shift = f"presoftmax: z' = z + {self.presoftmax_k} * sum_k {self.last_pool}[k, " \
                f"{self.presoftmax_position[0]}, {self.presoftmax_position[1]}]"
        return f"{base}, {shift}" if base else shift


def _shifted_class(base: type) -> type:
    if base not in _SHIFTED_CLASSES:
        _SHIFTED_CLASSES[base] = type(f"PresoftmaxShifted{base.__name__}", (PresoftmaxShifted, base),
                                      {"__module__": __name__, "_presoftmax_base": base})
    return _SHIFTED_CLASSES[base]


def _rebuild(base: type) -> nn.Module:
    cls = _shifted_class(base)
    return cls.__new__(cls)


def _check_position(position) -> tuple[int, int]:
    ok = isinstance(position, (tuple, list)) and len(position) == 2 and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0 for v in position)
    if not ok:
        raise ValueError(f"presoftmax position={position!r}; allowed: two integers >= 0 (row, col)")
    return int(position[0]), int(position[1])


def presoftmax_shift(model: nn.Module, k: float = 10.0, position=(0, 0), copy: bool = False,
                     dtype: torch.dtype | None = torch.float64) -> nn.Module:
    """Lerma & Lucas (2023), Sec. 3 and eq. 2: the same model with z'_i = z_i + K * sum_k A_{pqk} at
    ``model.last_pool``.

    Shares ``model``'s parameters (``copy=True``: a deep copy first). Keeps ``target_layer`` / ``last_pool``
    and module names. The mode (train / eval) is the model's. ``dtype``: the dtype in which z + t is formed
    and returned (default float64, exact for float32 models; ``None``: the model's). See the module docstring.
    """
    if isinstance(model, PresoftmaxShifted):
        raise ValueError("the model is already pre-softmax shifted; shift the original instead")
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not torch.isfinite(torch.tensor(float(k))):
        raise ValueError(f"presoftmax k={k!r}; allowed: a finite number")
    position = _check_position(position)
    last_pool = getattr(model, "last_pool", None)
    if not last_pool:
        raise ValueError(f"{type(model).__name__} names no last_pool; build it with interpfool.models.build "
                         f"or set model.last_pool to the name of its last pooling layer")
    resolve_module(model, last_pool)
    if copy:
        model = copy_module.deepcopy(model)
    cls = _shifted_class(type(model))
    shifted = cls.__new__(cls)
    # Shallow copy of the module's state: the same submodules / parameters / buffers, but dicts of its
    # own (hooks registered on the shifted model do not land on the original and vice versa).
    shifted.__dict__.update({key: (value.copy() if isinstance(value, (dict, set)) else value)
                             for key, value in model.__dict__.items()})
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"presoftmax dtype={dtype!r}; allowed: a floating torch.dtype or None")
    shifted.presoftmax_k = float(k)
    shifted.presoftmax_position = position
    shifted.presoftmax_dtype = dtype
    return shifted


class _ReachedPool(Exception):
    """Ends the probe's forward at the pooling layer."""


def feeding_cells(net: nn.Module, layer: str | None, input_size: tuple[int, int], position=(0, 0),
                  pool: str | None = None) -> torch.Tensor:
    """[H, W] bool: the cells of ``layer``'s input (``None``: the image) that feed ``position`` of the
    pooling output ``pool`` (default ``net.last_pool``) — the structural receptive field.

    Computed on a float64 deep copy made positive-linear (conv weights 1 / fan-in, biases 0,
    BatchNorm = identity, max-pooling replaced by average pooling over the same windows, positive input),
    where every ReLU is the identity and every path contributes a positive amount: the gradient of the
    pooled cell w.r.t. the layer input is > 0 exactly on the cells connected to it.
    """
    from interpfool.models.activations import capture_inputs

    pool = pool or net.last_pool
    position = _check_position(position)
    # The forward stops at the pooling layer, so fully connected layers never run: copy them as empty
    # tensors (VGG19's classifier is 120M of its 139M parameters).
    memo = {id(p): torch.empty(0, dtype=p.dtype) for m in net.modules() if isinstance(m, nn.Linear)
            for p in m.parameters(recurse=False)}
    probe = copy_module.deepcopy(net, memo).double().eval()
    with torch.no_grad():
        for name, module in list(probe.named_modules()):
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.fill_(1.0 / fan_in)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.zero_()
                module.running_var.fill_(1.0 - module.eps)
                if module.weight is not None:
                    module.weight.fill_(1.0)
                    module.bias.zero_()
            elif isinstance(module, nn.MaxPool2d) and name:
                parent_name, _, child = name.rpartition(".")
                parent = probe.get_submodule(parent_name) if parent_name else probe
                setattr(parent, child, nn.AvgPool2d(module.kernel_size, module.stride, module.padding,
                                                    ceil_mode=module.ceil_mode, count_include_pad=True))
    x = torch.ones(1, 3, *input_size, dtype=torch.float64, requires_grad=True)
    captured: list[torch.Tensor] = []

    def stop(_m, _a, out):
        captured.append(out)
        raise _ReachedPool

    handle = resolve_module(probe, pool).register_forward_hook(stop)
    try:
        with torch.enable_grad(), capture_inputs(probe, [layer] if layer else []) as store:
            try:
                probe(x)
            except _ReachedPool:
                pass
            wrt = store[layer] if layer else x
            (grad,) = torch.autograd.grad(captured[0][:, :, position[0], position[1]].sum(), wrt)
    finally:
        handle.remove()
    return (grad[0] > 0).any(0)
