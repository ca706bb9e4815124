"""Deterministic pooling for ``Trainer(deterministic=True)`` on CUDA.

``adaptive_avg_pool2d``'s CUDA backward has no deterministic kernel (``torch.use_deterministic_algorithms``
raises on it), and every model here has an ``nn.AdaptiveAvgPool2d``. Where the input size is an integer
multiple of the output size the adaptive pool is exactly a plain average pool with kernel = stride = the
ratio, whose CUDA backward is deterministic (and linear, so its double backward is too). Where the ratio is
not an integer the module keeps the adaptive kernel (use ``trainer.deterministic=warn`` there).

The module keeps its type (LRP's layer plans check exact types); only its ``forward`` changes.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


def _pair(size, like: tuple[int, int]) -> tuple[int, int]:
    size = (size, size) if isinstance(size, int) or size is None else tuple(size)
    return tuple(like[i] if s is None else int(s) for i, s in enumerate(size))


def pooled(x: torch.Tensor, output_size) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, output_size)``, as ``F.avg_pool2d`` when the ratio is an integer."""
    h, w = x.shape[-2:]
    oh, ow = _pair(output_size, (h, w))
    if oh and ow and h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        return F.avg_pool2d(x, kernel_size=k, stride=k) if k != (1, 1) else x
    return F.adaptive_avg_pool2d(x, (oh, ow))


def _forward(self: nn.AdaptiveAvgPool2d, x: torch.Tensor) -> torch.Tensor:
    return pooled(x, self.output_size)


def deterministic_pooling(net: nn.Module) -> nn.Module:
    """Make every ``nn.AdaptiveAvgPool2d`` of ``net`` (in place) pool through ``pooled``; returns ``net``."""
    for m in net.modules():
        if type(m) is nn.AdaptiveAvgPool2d:
            m.forward = types.MethodType(_forward, m)
    return net


def apply_backends(allow_tf32: bool = False, cudnn_benchmark: bool = False) -> None:
    """GPU numerics (no effect on CPU runs): TF32 for matmuls and cuDNN convolutions (PyTorch enables it for
    convolutions by default; ~1e-3 relative error, which breaks bit-exact resume, DDP parity and the oracle
    tests) and cuDNN autotuning (faster convolutions; a nondeterministic algorithm choice unless
    ``deterministic``)."""
    torch.backends.cuda.matmul.allow_tf32 = bool(allow_tf32)
    torch.backends.cudnn.allow_tf32 = bool(allow_tf32)
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
