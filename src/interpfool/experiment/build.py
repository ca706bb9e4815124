"""Build and check every object a job needs (data, model, interpreters, fooling) before anything runs, and the
loaders of a fooling run. A bad value raises ``ValueError`` / ``FileNotFoundError``; ``checked_build`` turns it
into ``BadInput`` (one line, exit code 2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from interpfool import interpreters
from interpfool.data.split_loaders import whole_splits
from interpfool.experiment.cli import BadInput
from interpfool.fooling.module import FoolingModule
from interpfool.fooling.penalties.base import Fooling
from interpfool.models.determinism import apply_backends, deterministic_pooling

TARGETS = ("label", "pred")
SPLITS = ("train", "val", "test")


@dataclass
class Built:
    data: Any
    net: nn.Module
    interp: Callable
    interp_name: str
    fooling: Fooling
    eval_interps: dict[str, Callable]


def _positive_int_or_bad(name: str, value: Any) -> None:
    try:
        _positive_int(name, value)
    except ValueError as err:
        raise BadInput(str(err)) from None


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r}; allowed: an integer >= 1")


def interp_factory(spec: Any) -> Callable:
    """A ``conf/interp`` node (``_target_`` + ``_partial_``) or a registry name -> factory(net=...)."""
    if isinstance(spec, str):
        if spec not in interpreters.REGISTRY:
            raise ValueError(f"unknown interpreter {spec!r}; allowed: {', '.join(interpreters.names())}")
        cls = interpreters.REGISTRY[spec]
        return lambda net, cls=cls: cls(net)
    return instantiate(spec)


def build_all(cfg: DictConfig) -> Built:
    """Instantiate data, model, interpreters and fooling; raises one-line errors on bad values."""
    if cfg.target not in TARGETS:
        raise ValueError(f"target={cfg.target!r}; allowed: {', '.join(TARGETS)}")
    if cfg.eval.split not in (*SPLITS, "auto"):
        raise ValueError(f"eval.split={cfg.eval.split!r}; allowed: auto, {', '.join(SPLITS)}")
    for name in ("max_steps", "val_check_interval"):
        _positive_int(f"trainer.{name}", cfg.trainer.get(name))
    for name in ("epochs", "batch_size"):
        _positive_int(f"original.{name}", cfg.original.get(name))
    seed0 = cfg.original.get("seed")
    if seed0 is not None and (isinstance(seed0, bool) or not isinstance(seed0, int) or seed0 < 0):
        raise ValueError(f"original.seed={seed0!r}; allowed: an integer >= 0 or null (the run's seed)")
    if float(cfg.original.lr) <= 0:
        raise ValueError(f"original.lr={cfg.original.lr}; allowed: > 0")
    data = instantiate(cfg.data)
    splits = getattr(data, "splits", SPLITS)          # ImageNet / torchvision sets: train, val
    if cfg.eval.split == "auto":                      # the held-out test split where the data has one
        cfg.eval.split = "test" if "test" in splits else "val"
        if cfg.eval.split == "val":
            print(f"eval.split=auto: {type(data).__name__} has no test split; reporting on val")
    if cfg.eval.split not in splits:
        raise ValueError(f"eval.split={cfg.eval.split!r} with this data; allowed: {', '.join(splits)}")
    net = deterministic_pooling(instantiate(cfg.model))   # adaptive pools with an integer ratio: avg_pool2d
    apply_backends(**backend_flags(cfg))
    make_interp = interp_factory(cfg.interp)
    interp_name = make_interp(net=net).name          # also checks layer= and score= on this model
    fooling = instantiate(cfg.fooling.penalty)
    FoolingModule.check_hyper(float(cfg.fooling.lam), float(cfg.fooling.lr), cfg.target)
    if fooling.classes:
        check_collage_data(data, fooling)
    check_whole_batches(data, fooling)
    names = list(dict.fromkeys([interp_name, *cfg.eval.interpreters]))
    eval_interps = {n: (make_interp if n == interp_name else interp_factory(n)) for n in names}
    for make in eval_interps.values():
        make(net=net)
    return Built(data, net, make_interp, interp_name, fooling, eval_interps)


BACKEND_FLAGS = ("allow_tf32", "cudnn_benchmark")


def backend_flags(cfg: DictConfig) -> dict[str, bool]:
    """``backends``: TF32 and cuDNN autotuning (GPU only; both off by default, see ``models.determinism``)."""
    given = OmegaConf.to_container(cfg.get("backends") or {}, resolve=True)
    flags = {k: False for k in BACKEND_FLAGS}
    for key, value in given.items():
        if key not in flags:
            raise ValueError(f"backends.{key}={value!r}; allowed: keys {', '.join(BACKEND_FLAGS)}")
        if not isinstance(value, bool):
            raise ValueError(f"backends.{key}={value!r}; allowed: true, false")
        flags[key] = value
    return flags


def check_collage_data(data: Any, fooling: Fooling) -> None:
    """A swap fooling needs collages of its two classes for training and held-out evaluation."""
    if not hasattr(data, "collage_dataloader"):
        raise ValueError(f"{fooling.name} fooling needs collage images; {type(data).__name__} has none")
    sizes = getattr(data, "collage_sizes", {})
    for split in ("train", "val"):
        if not sizes.get(split):
            raise ValueError(f"{fooling.name} fooling needs collages: data.collage_{split}_size={sizes.get(split)}; "
                             f"allowed: an integer >= 1 (experiment=synthetic_active sets both)")
    if (getattr(data, "c1", None), getattr(data, "c2", None)) != tuple(fooling.classes):
        raise ValueError(f"fooling classes {tuple(fooling.classes)} differ from the collage classes "
                         f"(data.c1, data.c2)=({data.c1}, {data.c2}); allowed: the same two classes")


def check_whole_batches(data: Any, fooling: Fooling) -> None:
    """The training loaders drop an incomplete last batch, so a split smaller than ``data.batch_size`` yields no
    batch at all, and Lightning then loops over empty epochs forever: refuse it before anything runs."""
    batch = getattr(data, "batch_size", None)
    sizes = {"data.train_size": getattr(data, "sizes", {}).get("train")}
    if fooling.classes:
        sizes["data.collage_train_size"] = getattr(data, "collage_sizes", {}).get("train")
    for key, n in sizes.items():
        if isinstance(batch, int) and isinstance(n, int) and 0 < n < batch:
            raise ValueError(f"{key}={n}; allowed: >= data.batch_size ({batch}): the training loader drops an "
                             f"incomplete batch, so it would yield none")


def fit_loaders(data: Any, fooling: Fooling) -> tuple[Any, Any]:
    """(train, val) loaders of the fooling run. Passive: the data module's. Swap foolings (active,
    Heo Sec. 3.2.2): train batches {"images": ..., "collage": ...} (the shorter loader cycles), val
    loaders [images (accuracy), held-out collages (FSR per class)]."""
    if not fooling.classes:
        return data.train_dataloader(), data.val_dataloader()
    from lightning.pytorch.utilities import CombinedLoader
    train = CombinedLoader({"images": data.train_dataloader(), "collage": data.collage_dataloader("train")},
                           mode="max_size_cycle")
    return train, [data.val_dataloader(), data.collage_dataloader("val")]


def eval_loaders(data: Any, split: str, fooling: Fooling) -> tuple[Any, Any]:
    """(image loader of ``split``, held-out collage loader or None) for the end-of-run evaluation, which rank 0
    runs alone: the val / test / collage loaders read the whole split, not rank 0's share."""
    with whole_splits(data):
        loader = {"train": data.train_dataloader, "val": data.val_dataloader, "test": data.test_dataloader}[split]()
        return loader, (data.collage_dataloader("val") if fooling.classes else None)


def checked_build(cfg: DictConfig) -> Built:
    """``build_all`` with its value errors turned into ``BadInput`` (one line, exit code 2)."""
    try:
        return build_all(cfg)
    except InstantiationException as err:   # Hydra wraps the constructor's error: report that one
        cause = err.__cause__ or err
        raise BadInput(" ".join(str(cause).split())) from None
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        raise BadInput(" ".join(str(err).split())) from None
