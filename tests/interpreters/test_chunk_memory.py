"""``chunk_size`` bounds what a differentiable map keeps for the backward (SmoothGrad, Integrated Gradients,
RSI-Grad-CAM): with ``create_graph=True`` each chunk is checkpointed (``paths.chunk_terms``), so only its output
is kept and its graph is rebuilt in the backward, one chunk at a time.

Float64 small VGG, batch 2 at 32 x 32, 16 samples / path points: the maps and the parameter gradient of a
penalty on them (the double backward) are the same with and without chunking; what is kept from the map's
construction to its backward, and the peak through the backward, grow with the chunk size, not with the number
of samples. Three measures, bytes of distinct storages: ``saved``, the tensors autograd saves for the backward
(``saved_tensors_hooks``: what a plain graph holds; a checkpointed chunk hands out placeholders instead);
``alive``, the storages created while the map was built that are still held by anything before the backward
(weak references: the checkpoint's recomputations included); ``peak``, the most bytes of such storages alive at
once through the map and the penalty's backward. Measured on this commit (MB; chunk 16 of 16 samples, i.e. no
checkpoint / 4 of 16 / 4 of 32):
smoothgrad saved 21.2 / 0.90 / 0.90, alive 21.2 / 0.92 / 0.92, peak 28.9 / 8.2 / 8.2;
ig saved 20.5 / 0.97 / 0.97, alive 20.5 / 0.98 / 0.98, peak 28.9 / 8.2 / 8.2;
rsigradcam saved 14.2 / 1.02 / 1.02, alive 14.1 / 1.02 / 1.02, peak 16.3 / 8.0 / 8.0
(about 0.9 MB of what is kept is the plain forward of the real batch, which the CE loss needs anyway).
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
    saved = {}                                               # by storage: the checkpoint saves x per chunk

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    live = LiveStorages()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), live:
        h = interp.explain(interp.forward(x), target, create_graph=True)
    alive = live.alive()
    params = [p for p in net.parameters() if p.requires_grad]
    with live:
        penalty = ((h - 0.5) ** 2).mean()                    # a Location-like penalty: the double backward
        grads = torch.autograd.grad(penalty, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
    return h.detach(), grads, sum(saved.values()), alive, live.peak


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
                      for i, what in enumerate(("saved", "alive", "peak"))))
    (saved16, alive16, peak16), (saved4, alive4, peak4), (saved4_32, alive4_32, peak4_32) = runs.values()
    assert saved4 < 0.25 * saved16 and alive4 < 0.25 * alive16
    assert saved4_32 < 1.1 * saved4 and alive4_32 < 1.1 * alive4     # twice the samples, the same
    assert peak4 < 0.5 * peak16 and peak4_32 < 1.1 * peak4           # the backward: one chunk's graph at a time
