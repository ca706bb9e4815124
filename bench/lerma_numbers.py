"""The pre-softmax manipulation (Lerma & Lucas 2023) measured on two models, for one or several K:

    PYTHONPATH=src python bench/lerma_numbers.py --model small_vgg --images 64 --k 10 100
    PYTHONPATH=src python bench/lerma_numbers.py --model vgg19 --size 112 --images 16 --k 10

small_vgg: the trained synthetic-benchmark original cached by ``python train.py`` (``INTERPFOOL_CACHE`` or
--cache; its file is found through ``pipeline.original_key``), images of the synthetic val split, target =
predicted class. vgg19: torchvision VGG19 with random weights (seed 0, 8 classes), synthetic images at
--size, target = predicted class. Writes one JSON per K to --out and prints a table (see
``interpfool.jobs.lerma.measure`` for every number).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from interpfool import models
from interpfool.jobs.lerma import DETAIL_DEFAULT, measure


def _small_vgg(cache: str, images: int):
    from hydra import compose, initialize_config_dir

    from interpfool.experiment.cli import CONF_DIR
    from interpfool.experiment.original import cached_original_path
    from interpfool.experiment.build import checked_build
    from interpfool.experiment.original import original_key

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"cache_dir={cache}"])
    path = cached_original_path(cfg.cache_dir, original_key(cfg))
    if not path.is_file():
        raise SystemExit(f"no cached original at {path}; run `INTERPFOOL_CACHE={cache} python train.py` first")
    built = checked_build(cfg)
    net = built.net
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    data = built.data.dataset("val")
    x = torch.stack([data[i][0] for i in range(images)])
    y = torch.as_tensor([int(data[i][1]) for i in range(images)])
    return net.eval(), x, y, str(path)


def _vgg19(size: int, images: int):
    from interpfool.data.synthetic import SyntheticSpec, render_index

    torch.manual_seed(0)
    net = models.build("vgg19", num_classes=8).eval()
    spec = SyntheticSpec(size=size, num_classes=8)
    x = torch.stack([(render_index(spec, 1, i)[0] - 0.5) / 0.25 for i in range(images)])
    return net, x, None, "random (seed 0)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["small_vgg", "vgg19"], default="small_vgg")
    parser.add_argument("--size", type=int, default=112, help="vgg19 image side")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--k", type=float, nargs="+", default=[10.0])
    parser.add_argument("--post", choices=["all", "detail"], default="all",
                        help="post-softmax check on every interpreter or the detailed ones only")
    parser.add_argument("--no-float64", action="store_true", help="skip the float64 post-softmax comparison")
    parser.add_argument("--cache", default=os.environ.get("INTERPFOOL_CACHE", ".cache/interpfool"))
    parser.add_argument("--out", default="bench/results/lerma")
    args = parser.parse_args()
    torch.set_num_threads(1)
    net, x, y, source = _small_vgg(args.cache, args.images) if args.model == "small_vgg" else \
        _vgg19(args.size, args.images)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for k in args.k:
        start = time.perf_counter()
        report = measure(net, models.presoftmax_shift(net, k=k), x, y, detail=DETAIL_DEFAULT,
                         post=None if args.post == "all" else DETAIL_DEFAULT, float64_post=not args.no_float64)
        report.update(model=args.model, weights=source, seconds=time.perf_counter() - start)
        file = out / f"{args.model}_{x.shape[-1]}px_k{k:g}.json"
        file.write_text(json.dumps(report, indent=2))
        print(f"# {file} ({report['seconds']:.0f} s)")
        print_table(report)


def _m(d: dict | None, key: str = "mean") -> str:
    return "-" if not d or key not in d else f"{d[key]:.3f}"


def print_table(r: dict) -> None:
    o, g = r["outputs"], r["ce_gradient"]
    print(f"{r['model']} K={r['k']:g} images={r['n_images']} size={r['image_size'][0]} "
          f"saturated(float32 y_c=1)={r['saturated_float32']} with 1-y_c>=1e-3: {r['unsure_images']}")
    print(f"  softmax max|dev| float32 {o['softmax_max_abs_dev']:.2e} float64 {o['softmax_max_abs_dev_float64']:.2e}; "
          f"argmax agreement {o['argmax_agreement']:.3f}; t mean {o['t']['mean']:.1f} max {o['t']['max']:.1f}")
    print(f"  CE grad max|dev| eval {g['eval']['max_abs_dev']:.2e} (rel {g['eval']['relative']:.1e}), "
          f"train {g['train']['max_abs_dev']:.2e} (rel {g['train']['relative']:.1e}) over {g['n_parameters']} params")
    print("  interp       | post-softmax Spearman min: f32 / f32 where 1-y_c>=1e-3 / f64 | corner mass mean orig -> manip "
          "(share>=0.9) | class-indep Spearman mean orig -> manip (share>=0.95) | channel-sum Spearman orig -> manip")
    for name, e in r["interpreters"].items():
        if "@" in name:
            c, s, m = e["class_independence_spearman"], e["channel_sum_spearman"], e["corner_mass"]
            print(f"  {name:12s} | (Grad-CAM at the pooling input {e['map_shape']}) | corner {_m(m['original'])} -> "
                  f"{_m(m['manipulated'])} | {_m(c['original'])} -> {_m(c['manipulated'])} "
                  f"({_m(c['manipulated'], 'share_ge_0.95')}) | {_m(s['original'])} -> {_m(s['manipulated'])}")
            continue
        line = (f"  {name:12s} | {_m(e['post_softmax_spearman'], 'min')} / "
                f"{_m(e['post_softmax_spearman_where_1-y_c>=1e-3'], 'min')} / "
                f"{_m(e.get('post_softmax_spearman_float64'), 'min')}")
        if "corner_mass_original" in e:
            line += (f" | {_m(e['corner_mass_original'])} -> {_m(e['corner_mass_manipulated'])} "
                     f"({_m(e['corner_mass_manipulated'], 'share_ge_0.9')}; area {e['corner_region_area_share']:.3f})")
        if "class_independence_spearman" in e:
            c = e["class_independence_spearman"]
            line += f" | {_m(c['original'])} -> {_m(c['manipulated'])} ({_m(c['manipulated'], 'share_ge_0.95')})"
        if "channel_sum_spearman" in e:
            c = e["channel_sum_spearman"]
            line += f" | {_m(c['original'])} -> {_m(c['manipulated'])}"
        print(line)


if __name__ == "__main__":
    main()
