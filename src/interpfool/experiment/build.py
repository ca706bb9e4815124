"""Build and check every object a job needs (data, model, interpreters, fooling) before anything runs, and the
loaders of a fooling run. A bad value raises ``ValueError`` / ``FileNotFoundError``; ``checked_build`` turns it
into ``BadInput`` (one line, exit code 2)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
import torch
from torch import nn

from interpfool import interpreters
from interpfool.data.split_loaders import whole_splits
from interpfool.experiment.cli import BadInput
from interpfool.experiment.host_memory import reuse_host_memory
from interpfool.experiment.validate import check
from interpfool.fooling.module import FoolingModule
from interpfool.fooling.penalties.base import Fooling
from interpfool.models.determinism import apply_backends, deterministic_pooling

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass
class Built:
    data: Any
    net: nn.Module
    interp: Callable
    interp_name: str
    fooling: Fooling
    eval_interps: dict[str, Callable]
    # name -> the settings that decide each evaluation interpreter's maps (``experiment.original_maps``' key)
    eval_interp_keys: dict[str, str] = field(default_factory=dict)


def interp_factory(spec: Any, **kwargs) -> Callable:
    """A ``conf/interp`` node (``_target_`` + ``_partial_``) or a registry name (with ``kwargs``) -> factory(net=...)."""
    if isinstance(spec, str):
        if spec not in interpreters.REGISTRY:
            raise ValueError(f"unknown interpreter {spec!r}; allowed: {', '.join(interpreters.names())}")
        cls = interpreters.REGISTRY[spec]
        try:
            cls(torch.nn.Identity(), **kwargs) if kwargs and not cls.uses_layer else None
        except TypeError as err:
            raise ValueError(f"eval.interp_kwargs.{spec}={kwargs}: {err}") from None
        # per-call settings (a defense's other layer or score) on top of the factory's own
        return lambda net, cls=cls, **more: cls(net, **{**kwargs, **more})
    return instantiate(spec)


def build_all(cfg: DictConfig) -> Built:
    """Instantiate data, model, interpreters and fooling; raises one-line errors on bad values.

    Types, ranges and choices of every key are checked first, in one walk over the typed schema
    (``experiment.validate``); what is checked here needs the data or the model."""
    check(cfg)
    check_trainer(cfg)
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
    log.info(reuse_host_memory(bool(cfg.backends.reuse_host_memory)))
    make_interp = interp_factory(cfg.interp)
    interp_name = make_interp(net=net).name          # also checks layer= and score= on this model
    fooling = instantiate(cfg.fooling.penalty)
    FoolingModule.check_hyper(float(cfg.fooling.lam), float(cfg.fooling.lr), cfg.target)
    if fooling.classes:
        check_collage_data(data, fooling)
    check_whole_batches(data, fooling)
    names = list(dict.fromkeys([interp_name, *cfg.eval.interpreters]))
    given = cfg.eval.get("interp_kwargs")
    given = OmegaConf.to_container(given, resolve=True) if given is not None else {}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"eval.interp_kwargs names {', '.join(unknown)}; allowed: interpreters of eval.interpreters "
                         f"or the fooled one ({', '.join(names)})")
    eval_interps = {n: (interp_factory(n, **given[n]) if n in given else make_interp if n == interp_name
                        else interp_factory(n)) for n in names}
    for make in eval_interps.values():
        make(net=net)
    fooled_spec = OmegaConf.to_container(cfg.interp, resolve=True) if OmegaConf.is_config(cfg.interp) else cfg.interp
    keys = {n: json.dumps(["eval.interp_kwargs", n, given[n]] if n in given else ["interp", fooled_spec]
                          if n == interp_name else ["registry", n], sort_keys=True, default=str) for n in names}
    return Built(data, net, make_interp, interp_name, fooling, eval_interps, keys)


BACKEND_FLAGS = ("allow_tf32", "cudnn_benchmark")


def check_trainer(cfg: DictConfig) -> None:
    """Let Lightning judge ``trainer.*`` (an accelerator this machine lacks, devices that do not exist, an extra
    Trainer argument of the wrong type) now, before theta0 is trained, as one line naming the setting."""
    import warnings

    import lightning as L
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            L.Trainer(**kwargs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    except Exception as err:  # noqa: BLE001 - Lightning's MisconfigurationException, TypeError, ValueError, ...
        text = " ".join(str(err).split())
        hints = {"devices": ("device",), "strategy": ("strategy", "ddp"), "precision": ("precision",),
                 "accelerator": ("accelerator", "gpu", "cuda", "mps", "tpu", "backend")}
        named = [k for k in kwargs if f"`{k}`" in text or f"{k}=" in text] or \
            [k for k, words in hints.items() if any(w in text.lower() for w in words)]
        key = named[0] if named else None
        shown = f"trainer.{key}={kwargs[key]!r}" if key else "trainer=" + ",".join(f"{k}={v}" for k, v in kwargs.items())
        raise BadInput(f"{shown}: {text}; allowed: what Lightning's Trainer accepts on this machine "
                       f"(trainer=cpu needs no GPU)") from None


def backend_flags(cfg: DictConfig) -> dict[str, bool]:
    """``backends``: TF32 and cuDNN autotuning (GPU only; both off by default, see ``models.determinism``)."""
    given = OmegaConf.to_container(cfg.get("backends") or {}, resolve=True)
    return {k: bool(given.get(k, False)) for k in BACKEND_FLAGS}


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
