"""Print the LRP checks as one table: interpreter | model | composite | oracle | max relative deviation.

    PYTHONPATH=src python bench/lrp_oracle_table.py            # ~10 s on one CPU core
    PYTHONPATH=src python bench/lrp_oracle_table.py --timing   # + cost of a fooling step at 224x224

Oracles: Zennit 0.5.1 EpsilonPlus(epsilon=0.01) with canonizers (first-order maps, float64; "exact
merge" sets the merged BN's eps to 0, "as shipped" does not, see interpfool.lrp.zennit_oracle);
the score itself (conservation on bias-free nets, negligible stabilisers); central finite differences
of an MSE penalty on the map (second order, float64, max over the parameters checked in
tests/lrp/test_lrp_second_order.py). Deviation = max |ours - oracle| / max |oracle|; for conservation
max |sum R - S| / |S|; for FD max |analytic - FD| / max(|analytic|, |FD|).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from interpfool import interpreters, models
from interpfool.gradcheck import directional_fd_check
from interpfool.lrp.testing import head_above, make_bias_free, max_rel_dev, tiny_net
from interpfool.lrp.zennit_oracle import zennit_relevance

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lrp"))
from test_lrp_second_order import CASES as FD_CASES, FD_STEP, PARAMS as FD_PARAMS  # noqa: E402

ZENNIT_CASES = [("small_vgg", 32, "epsilon_plus"), ("resnet_basic", 64, "zennit_epsilon_plus"),
                ("resnet_bottleneck", 64, "zennit_epsilon_plus"), ("densenet", 32, "zennit_epsilon_plus")]


def _x(side, seed=1, batch=2):
    return torch.randn(batch, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def zennit_rows():
    rows = []
    for kind, side, composite in ZENNIT_CASES:
        net, x = tiny_net(kind), _x(side)
        comps = [composite] + (["epsilon_plus"] if composite != "epsilon_plus" else [])
        for comp in comps:
            lrp = interpreters.build("lrp", net, composite=comp)
            fwd = lrp.forward(x)
            index = fwd.logits.argmax(1)
            ours = lrp.relevance(fwd, index, False, None)
            note = "" if comp == composite else " (ours: default add/pool rules)"
            rows.append(("lrp", kind, comp, "Zennit EpsilonPlus, exact merge" + note,
                         max_rel_dev(ours, zennit_relevance(net, x, index))))
            if comp == composite:
                rows.append(("lrp", kind, comp, "Zennit EpsilonPlus, as shipped",
                             max_rel_dev(ours, zennit_relevance(net, x, index, exact_merge=False))))
            lrp_t = interpreters.build("lrpT", net, composite=comp)
            fwd = lrp_t.forward(x)
            act = fwd.activations[lrp_t.layer]
            ours = lrp_t.relevance(fwd, index, False, lrp_t.layer)
            ref = zennit_relevance(head_above(net, lrp_t.layer), act.detach(), index)
            rows.append(("lrpT", kind, comp, "Zennit EpsilonPlus on the head, exact merge" + note,
                         max_rel_dev(ours, ref)))
    return rows


def conservation_rows():
    rows = []
    for kind, side, options in [("small_vgg", 32, {}), ("small_vgg", 32, {"maxpool": "proportional"}),
                                ("resnet_bottleneck", 32, {}), ("densenet", 32, {}),
                                ("densenet", 32, {"bn_first": "zplus"})]:
        net, x = make_bias_free(tiny_net(kind)), _x(side, seed=0, batch=3)
        for name in ("lrp", "lrpT"):
            interp = interpreters.build(name, net, epsilon=1e-12, stabilizer=1e-12, **options)
            fwd = interp.forward(x)
            index = fwd.logits.argmax(1)
            score = fwd.logits.detach().gather(1, index[:, None]).squeeze(1)
            rel = interp.relevance(fwd, index, False, interp.layer if name == "lrpT" else None)
            err = float(((rel.flatten(1).sum(1) - score).abs() / score.abs()).max())
            label = "epsilon_plus" + "".join(f", {k}={v}" for k, v in options.items())
            rows.append((name, kind + " (bias-free)", label, "score S_c (conservation)", err))
    return rows


def fd_rows():
    rows = []
    for kind, side, name, options in FD_CASES:
        net = tiny_net(kind)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, side, side, dtype=torch.float64, generator=gen)
        interp = interpreters.build(name, net, **options)
        index = interp.forward(x).logits.argmax(1)
        mask = torch.rand(interp(x, index).shape, dtype=torch.float64, generator=gen)
        res = directional_fd_check(lambda: F.mse_loss(interp(x, index, create_graph=True), mask), net,
                                   FD_PARAMS[kind], eps=FD_STEP)
        label = "epsilon_plus" + "".join(f", {k}={v}" for k, v in options.items())
        rows.append((name, kind, label, f"central FD of MSE penalty ({len(res)} params incl. BN)",
                     max(r[2] for r in res.values())))
    return rows


def timing_rows(batch=2, repeats=2):
    """Seconds per fooling step (forward, CE + lambda * MSE(map, mask), one backward) vs a CE step."""
    rows = []
    for arch in ("vgg19", "resnet50", "densenet121"):
        torch.manual_seed(0)
        net = models.build(arch).eval()
        x, y = torch.randn(batch, 3, 224, 224), torch.randint(0, 1000, (batch,))

        def ce_step():
            loss = F.cross_entropy(net(x), y)
            torch.autograd.grad(loss, list(net.parameters()))

        def lrp_step(interp):
            fwd = interp.forward(x)
            h = interp.explain(fwd, "label", y, create_graph=True)
            loss = F.cross_entropy(fwd.logits, y) + F.mse_loss(h, torch.zeros_like(h))
            torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)

        def best(fn):
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return min(times)

        base = best(ce_step)
        rows.append(("CE step", arch, "-", f"{base:.2f} s", 1.0))
        for name in ("lrpT", "lrp"):
            interp = interpreters.build(name, net)
            ratio = best(lambda: lrp_step(interp)) / base
            rows.append((f"{name} penalty step", arch, "epsilon_plus", "x CE step", ratio))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", action="store_true", help="also time fooling steps at 224x224 (minutes)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = zennit_rows() + conservation_rows() + fd_rows()
    if args.timing:
        rows += timing_rows()
    header = ("interpreter", "model", "composite / options", "oracle", "max relative deviation")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths + [0])))
    print("-|-".join("-" * w for w in widths + [22]))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)) + f" | {row[4]:.2e}")


if __name__ == "__main__":
    main()
