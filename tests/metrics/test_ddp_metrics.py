"""FSR, AOPC, Spearman, the map-similarity metrics (SSIM, Pearson, Kendall, MSE, top-k intersection,
centre-of-mass shift) and output fidelity reduce exactly under DDP: two CPU ranks (gloo), each updating with half of
the images, give the value of one process updating with all of them."""
import math

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from interpfool.metrics import (AOPC, FoolingSuccessRate, MapSimilarity, OutputFidelity, SpearmanCorrelation,
                                perturbation_order, perturbation_scores)
from interpfool.metrics.aopc import cell_relevance, seeded_noise

N, STEPS, CELL = 10, 12, 4


def _data():
    g = torch.Generator().manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5))
    for p in net.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.3
    x = torch.randn(N, 3, 16, 16, generator=g)
    maps = torch.rand(N, 8, 8, generator=g)
    t = torch.rand(N, generator=g)
    return net.eval(), x, maps, t


def _similarity(index: torch.Tensor) -> dict:
    """Similarity of maps h to h0 and fidelity of logits to logits0, after updates with ``index`` (two batches)."""
    g = torch.Generator().manual_seed(7)
    h0 = torch.relu(torch.randn(N, 7, 7, generator=g))
    h = torch.relu(h0 + torch.randn(N, 7, 7, generator=g))
    h[3] = -1.0                                    # no positive mass: left out of the centre-of-mass mean
    logits0 = 2 * torch.randn(N, 5, generator=g)
    logits = logits0 + torch.randn(N, 5, generator=g)
    sim, fid = MapSimilarity(), OutputFidelity()
    for part in index.chunk(2):
        sim.update(h[part], h0[part], (28, 28))
        fid.update(logits0[part], logits[part])
    return {**sim.compute(), **{k: float(v) for k, v in fid.compute().items()},
            "com_undefined": sim.undefined_share()["com_shift_px"]}


def _measure(index: torch.Tensor) -> dict:
    """The three metrics after updates with the images ``index`` (in two batches)."""
    net, x, maps, t = _data()
    fsr, aopc, rho = FoolingSuccessRate(), {o: AOPC(STEPS) for o in ("morf", "random")}, SpearmanCorrelation()
    for part in index.chunk(2):
        fsr.update(t[part] <= 0.4)
        rho.update(maps[part], maps[part].roll(1, -1))
        noise = seeded_noise((3, 16, 16), part, seed=5)
        orders = {"morf": perturbation_order(cell_relevance(maps[part], (16, 16), CELL), "morf", part, seed=5),
                  "random": perturbation_order(None, "random", part, seed=5, cells=16)}
        cls = torch.full((len(part),), 2)
        for o, order in orders.items():
            aopc[o].update(perturbation_scores(net, x[part], cls, order, noise, CELL, STEPS))
    return {"fsr": fsr.compute(), "rho": rho.compute(), **{o: m.compute() for o, m in aopc.items()},
            "similarity": _similarity(index)}


def _rank(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result = _measure(torch.arange(N)[rank::world])       # each rank: every other image
        torch.save(result, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_give_the_one_process_values(tmp_path):
    single = _measure(torch.arange(N))
    mp.spawn(_rank, args=(2, str(tmp_path / "init"), str(tmp_path / "out")), nprocs=2, join=True)
    for rank in range(2):
        ranked = torch.load(tmp_path / f"out.{rank}")
        assert ranked["fsr"] == single["fsr"]                                   # integer sums: exact
        for key in ("rho", "morf", "random"):
            assert torch.allclose(ranked[key], single[key], rtol=0, atol=1e-12), key
        assert ranked["similarity"].keys() == single["similarity"].keys()
        for key, value in single["similarity"].items():
            assert math.isclose(ranked["similarity"][key], value, rel_tol=0, abs_tol=1e-12), key
    assert 0 < single["fsr"] < 1 and single["morf"][-1] != single["random"][-1]
    half = _measure(torch.arange(N)[0::2])       # what an unsynchronised rank would report
    assert half["fsr"] != single["fsr"] and not torch.allclose(half["morf"], single["morf"])
    sim, half_sim = single["similarity"], half["similarity"]
    assert all(half_sim[k] != sim[k] for k in ("ssim", "pearson", "spearman", "kendall", "mse", "topk_intersection",
                                               "com_shift_px", "kl_p0_pstar", "com_undefined"))
    assert sim["com_undefined"] == 0.1 and 0 < sim["top1_agreement"] < 1
