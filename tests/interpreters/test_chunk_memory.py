"""``chunk_size`` bounds what a differentiable map keeps for the backward (SmoothGrad, Integrated Gradients,
RSI-Grad-CAM): with ``create_graph=True`` each chunk keeps only its output and input-sized tensors, and its graph is
rebuilt in the backward, one chunk at a time (``paths.chunk_terms``).

Float64 small VGG, batch 2 at 32 x 32, 16 samples / path points: the maps and the parameter gradient of a
penalty on them (the double backward) are the same with and without chunking; what is kept from the map's
construction to its backward, and the peak through the backward, grow with the chunk size, not with the number
of samples (no saved-tensor hooks: a hook that returns the tensor itself keeps an unused graph's tensors in a
reference cycle). Two measures, bytes of distinct storages: ``alive``, the storages created while the map was built
that are still held by anything before the backward (weak references); ``peak``, the most bytes of such storages
alive at once through the map and the penalty's backward. Measured at this commit (MB; chunk 16 of 16 samples,
i.e. no chunking / 4 of 16 / 4 of 32): smoothgrad alive 21.2 / 0.92 / 0.92, peak 28.9 / 8.2 / 8.2 (about 0.9 MB
of what is kept is the plain forward of the real batch, which the CE loss needs anyway).

ResNet50 (float32, batch 2, 32 x 32, SmoothGrad n=8): with ``torch.utils.checkpoint`` per chunk (the previous
implementation) a chunked map kept more than an unchunked one (188 MB against 110 MB in float64: the first-order
gradient inside a checkpointed chunk left a convolution's recomputed input alive until the backward, and an H200
run at 112 x 112, batch 8, n=16 peaked at 7.36 GB chunked against 5.64 GB unchunked); the recomputing chunk keeps
nothing of it.
"""
from __future__ import annotations

import sys
import weakref
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interp_testnets import inputs, predicted, small_vgg  # noqa: E402

from interpfool import interpreters  # noqa: E402

CASES = [("smoothgrad", {"n": 16, "sigma": 0.1, "seed": 0}), ("smoothgrad", {"n": 16, "sigma": 0.1}),
         ("ig", {"steps": 16, "baseline": "black"}), ("rsigradcam", {"steps": 16})]
IDS = ["smoothgrad-seeded", "smoothgrad-global-rng", "ig", "rsigradcam"]


class LiveStorages(TorchDispatchMode):
    """Every storage an op creates, by weak reference: ``now`` = bytes of those still held by anything (after
    ``alive()``'s garbage collection), ``peak`` = the most ``now`` has been."""

    def __init__(self):
        super().__init__()
        self.tracked, self.now, self.peak = {}, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                ref = self.tracked.get(storage.data_ptr())
                if ref is not None and ref() is storage:        # a view of a storage already counted
                    continue
                self.tracked[storage.data_ptr()] = weakref.ref(storage)
                self.now += storage.nbytes()
                self.peak = max(self.peak, self.now)
                weakref.finalize(storage, self._freed, storage.nbytes())
        return out

    def _freed(self, nbytes: int) -> None:
        self.now -= nbytes

    def alive(self) -> int:
        import gc
        gc.collect()
        return self.now


def _map_and_penalty_grad(name: str, kw: dict, chunk: int | None, n: int = 16):
    net, x = small_vgg(), inputs(2, 32)
    target = predicted(net, x)
    kw = {**kw, ("n" if name == "smoothgrad" else "steps"): n}
    interp = interpreters.build(name, net, chunk_size=chunk, **kw)
    torch.manual_seed(7)                                     # SmoothGrad without a seed: the global RNG
    live = LiveStorages()
    with live:
        h = interp.explain(interp.forward(x), target, create_graph=True)
    alive = live.alive()
    params = [p for p in net.parameters() if p.requires_grad]
    with live:
        penalty = ((h - 0.5) ** 2).mean()                    # a Location-like penalty: the double backward
        grads = torch.autograd.grad(penalty, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
    return h.detach(), grads, alive, live.peak


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_chunked_maps_and_penalty_gradients_equal_the_unchunked_ones(name, kw):
    h0, g0, *_ = _map_and_penalty_grad(name, kw, None)
    assert float(h0.abs().max()) > 0 and max(float(g.abs().max()) for g in g0) > 0
    for chunk in (4, 5):                                     # 5: a last chunk of one sample
        h, g, *_ = _map_and_penalty_grad(name, kw, chunk)
        torch.testing.assert_close(h, h0, rtol=0, atol=1e-10)
        for a, b in zip(g, g0):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_what_a_map_keeps_for_the_backward_grows_with_chunk_size_not_with_samples(name, kw):
    runs = {(chunk, n): _map_and_penalty_grad(name, kw, chunk, n)[2:] for chunk, n in ((16, 16), (4, 16), (4, 32))}
    print(f"\n{name} {kw} (MB; chunk 16 of 16 / 4 of 16 / 4 of 32): "
          + "; ".join(f"{what} " + " / ".join(f"{r[i] / 1e6:.2f}" for r in runs.values())
                      for i, what in enumerate(("alive", "peak"))))
    (alive16, peak16), (alive4, peak4), (alive4_32, peak4_32) = runs.values()
    assert alive4 < 0.25 * alive16 and alive4_32 < 1.1 * alive4       # twice the samples, the same
    assert peak4 < 0.5 * peak16 and peak4_32 < 1.1 * peak4           # the backward: one chunk's graph at a time


def test_a_chunked_resnet50_map_keeps_nothing_of_its_chunks():
    """torchvision's ResNet50: the chunked map keeps under 2% of what the unchunked one keeps (a checkpointed chunk
    kept 170% of it)."""
    from interpfool import models

    def alive(chunk):
        torch.manual_seed(0)
        net = models.build("resnet50", num_classes=10).eval()
        x, target = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])
        interp = interpreters.build("smoothgrad", net, n=8, seed=0, chunk_size=chunk)
        live = LiveStorages()
        with live:
            h = interp.explain(interp.forward(x), target, create_graph=True)
        kept = live.alive()
        grads = torch.autograd.grad(h.square().mean(), [p for p in net.parameters()], allow_unused=True)
        return kept, h.detach(), grads

    whole, h_whole, g_whole = alive(None)
    chunked, h_chunked, g_chunked = alive(2)
    print(f"\nresnet50 smoothgrad n=8: alive {whole / 1e6:.1f} MB unchunked, {chunked / 1e6:.2f} MB in chunks of 2")
    assert chunked < 0.02 * whole
    torch.testing.assert_close(h_chunked, h_whole, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_chunked, g_whole):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
