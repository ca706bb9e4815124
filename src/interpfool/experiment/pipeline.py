"""``train.py``'s job: build and check everything, get theta0, fool it, evaluate, report.

Every object is built (and so every value checked) before any training starts; a bad value
raises ``ValueError``/``FileNotFoundError`` with one line that ``cli.run_entry`` prints.
"""
from __future__ import annotations

import copy
import csv
import json
import logging
import os
import warnings
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from interpfool import interpreters
from interpfool.data.split_loaders import cuda_pinning, whole_splits
from interpfool.experiment import distributed as dist_env
from interpfool.experiment.callbacks import StopOnNonFiniteLoss
from interpfool.experiment.cli import BadInput
from interpfool.experiment.evaluate import CSV_COLUMNS, evaluate_pair
from interpfool.experiment.loggers import finish_logger, log_summary, make_logger, wandb_run_dir
from interpfool.experiment.original import ClassifierModule, atomic_save, cached_original_path, seed_all
from interpfool.fooling.module import FoolingModule
from interpfool.fooling.penalties.base import Fooling
from interpfool.models.determinism import apply_backends, deterministic_pooling
from interpfool.viz.heatmap_grid import save_heatmap_grid

TARGETS = ("label", "pred")

# The fooled model is kept in eval mode on purpose (frozen BatchNorm statistics, authors' code).
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
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


def _data_key_ignores(target: Any) -> tuple[str, ...]:
    """Keys a data module declares as loading-only (``original_key_ignores``: where the files come from, not which
    images), e.g. Fashion-MNIST's root and download: the same official files wherever they are read from."""
    try:
        return tuple(getattr(get_class(str(target)), "original_key_ignores", ()))
    except Exception:  # noqa: BLE001 - no or unknown _target_: ignore nothing
        return ()


def original_key(cfg: DictConfig) -> dict:
    """The config that determines theta0's weights (and nothing else)."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    model.pop("target_layer", None)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    for k in ("batch_size", "eval_batch_size", "num_workers", "collage_train_size", "collage_val_size", "c1", "c2",
              "cache_dir", "check_images", *_data_key_ignores(data.get("_target_"))):
        data.pop(k, None)
    original = OmegaConf.to_container(cfg.original, resolve=True)
    original.pop("seed", None)
    return {"model": model, "data": data, "original": original, "seed": original_seed(cfg)}


def original_seed(cfg: DictConfig) -> int:
    """theta0's seed: ``original.seed`` (e.g. 0 in the Fashion-MNIST experiments, so every fooling seed starts
    from the same theta0), by default the run's ``seed``."""
    seed = cfg.original.get("seed")
    return int(cfg.seed if seed is None else seed)


def original_loaders(cfg: DictConfig, built: Built, accelerator: str) -> tuple[DataLoader, DataLoader]:
    """theta0's train (shuffled by its seed, drop_last) and val loaders; pinned when it trains on CUDA."""
    pin = cuda_pinning(accelerator)
    train = DataLoader(built.data.dataset("train"), batch_size=cfg.original.batch_size, shuffle=True,
                       drop_last=True, generator=torch.Generator().manual_seed(original_seed(cfg)), pin_memory=pin)
    return train, DataLoader(built.data.dataset("val"), batch_size=256, pin_memory=pin)


def obtain_original(cfg: DictConfig, built: Built, accelerator: str) -> tuple[nn.Module, dict]:
    """theta0: pretrained / given weights as built, else the cached trained original, else train and cache it."""
    net = built.net
    if cfg.model.get("pretrained") or cfg.model.get("weights_path"):
        return net, {"status": "given", "source": cfg.model.get("weights_path") or "torchvision"}
    path = cached_original_path(cfg.cache_dir, original_key(cfg))
    if not path.is_file() and not dist_env.is_rank_zero():
        # torchrun / SLURM start every rank at once: rank 0 trains and caches theta0, the others load it
        print(f"original model: rank {dist_env.global_rank()} waits for rank 0 to train {path}")
        dist_env.wait_for_file(path, "the original model (theta0)")
    if path.is_file():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        print(f"original model: reusing cached {path}")
        return net, {"status": "reused", "path": str(path)}
    print(f"original model: none cached for this config; training it ({cfg.original.epochs} epochs) -> {path}")
    start = time.time()
    seed = original_seed(cfg)
    seed_all(seed)   # initial weights, flip and dropout draws: a function of theta0's seed and config alone,
    # not of what the build drew before (the same cache key must mean the same weights, whatever the run seed)
    net.load_state_dict(instantiate(cfg.model).state_dict())   # fresh initial weights under theta0's seed
    loader, val = original_loaders(cfg, built, accelerator)
    trainer = L.Trainer(max_epochs=cfg.original.epochs, accelerator=accelerator, devices=1, logger=False,
                        deterministic=cfg.trainer.get("deterministic", False), enable_checkpointing=False,
                        enable_model_summary=False, callbacks=[RichProgressBar()],
                        check_val_every_n_epoch=cfg.original.epochs)
    trainer.fit(ClassifierModule(net, lr=cfg.original.lr, weight_decay=cfg.original.weight_decay, seed=seed),
                loader, val)
    net.eval()
    atomic_save(net.state_dict(), path)
    seconds = time.time() - start
    print(f"original model: trained in {seconds:.0f} s, cached at {path}")
    return net, {"status": "trained", "path": str(path), "seconds": seconds}


def checked_build(cfg: DictConfig) -> Built:
    """``build_all`` with its value errors turned into ``BadInput`` (one line, exit code 2)."""
    try:
        return build_all(cfg)
    except InstantiationException as err:   # Hydra wraps the constructor's error: report that one
        cause = err.__cause__ or err
        raise BadInput(" ".join(str(cause).split())) from None
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        raise BadInput(" ".join(str(err).split())) from None


def resolve_ckpt(ckpt_path: str | None, run_dir: Path) -> str | None:
    """``None`` (fresh run; the folder must not already hold one), ``last`` (this folder's last
    checkpoint) or a checkpoint file."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if ckpt_path in (None, "", "null") and dist_env.slurm_requeued() and last.is_file():
        print(f"SLURM requeued this job (SLURM_RESTART_COUNT={os.environ['SLURM_RESTART_COUNT']}): "
              f"resuming {last}")
        return str(last)
    if ckpt_path in (None, "", "null"):
        for existing in (run_dir / "report.json", last):
            if existing.exists():
                raise BadInput(f"run folder {run_dir} already holds a run ({existing.name}); resume it with "
                               f"ckpt_path=last or choose another hydra.run.dir (nothing was overwritten)")
        return None
    if ckpt_path == "last":
        if not last.is_file():
            raise BadInput(f"ckpt_path=last but {last} does not exist; resume with hydra.run.dir=<the killed run's "
                           f"folder> or give ckpt_path=/path/to/file.ckpt")
        return str(last)
    if not Path(ckpt_path).is_file():
        raise BadInput(f"ckpt_path={ckpt_path!r} is not a file; allowed: null, last, or a .ckpt file")
    return str(ckpt_path)


SELECT_WEIGHTS = ("last", "best")


def selection(cfg: DictConfig) -> dict:
    """``select``: which weights the final evaluation takes: the last step's, or the best validation's."""
    sc = OmegaConf.to_container(cfg.get("select") or {}, resolve=True)
    s = {"weights": "last", "max_top1_drop": 3.0, **sc}
    if s["weights"] not in SELECT_WEIGHTS:
        raise BadInput(f"select.weights={s['weights']!r}; allowed: {', '.join(SELECT_WEIGHTS)}")
    drop = s["max_top1_drop"]
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not drop >= 0:
        raise BadInput(f"select.max_top1_drop={drop!r}; allowed: a number >= 0 (top-1 points)")
    if s["weights"] == "best" and cfg.eval.split == "val":
        print("select.weights=best picks the checkpoint on the validation split; eval.split=val reports on the "
              "same images (use eval.split=test for an unbiased number)")
    return s


def original_cache_size(cfg: DictConfig, built: Built) -> int:
    """Number of training images whose theta0 maps the module caches (0: off). Needs data whose training
    batches carry the image index and serve the same image for it every epoch (no augmentation)."""
    if not cfg.get("cache_original_maps", True) or not getattr(built.data, "indexed_train", False):
        return 0
    if not built.fooling.needs_original or built.fooling.classes:
        return 0
    return len(built.data.dataset("train"))


def load_selected(module: FoolingModule, best: ModelCheckpoint, trainer: L.Trainer) -> dict:
    """Load the best validation checkpoint's weights into ``module`` (every rank reads the same file)."""
    path = trainer.strategy.broadcast(best.best_model_path)
    if not path:
        raise RuntimeError("select.weights=best: no validation ran, so there is no best checkpoint; "
                           "lower trainer.val_check_interval below trainer.max_steps")
    state = torch.load(path, map_location="cpu", weights_only=False)   # load_state_dict copies onto the device
    module.load_state_dict(state["state_dict"])
    score = None if best.best_model_score is None else float(best.best_model_score)
    # selection_score puts every validation over the top-1 budget 2 below the admissible ones (FSR <= 1)
    within = score is not None and score > -1
    if not within:
        print(f"select.weights=best: no validation was within select.max_top1_drop={module.max_top1_drop} top-1 "
              f"points; kept the least bad one (step {int(state['global_step'])}): its drop exceeds the budget")
    return {"weights": "best", "step": int(state["global_step"]), "path": path, "val_select_score": score,
            "within_budget": within}


def run(cfg: DictConfig, run_dir: Path, group: str | None = None) -> dict | None:
    """The whole job. Under DDP every rank trains; only global rank 0 evaluates and writes the run files
    (config.yaml, fooled.pt, report.json, figures, CSVs); the other ranks return None."""
    seed_all(cfg.seed)   # before anything is built: the model's initial weights come from the global RNG
    built = checked_build(cfg)
    run_dir = Path(run_dir)
    ckpt = resolve_ckpt(cfg.get("ckpt_path"), run_dir)
    _positive_int_or_bad("checkpoint_every", cfg.get("checkpoint_every", 200))
    select = selection(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = cfg.trainer.get("accelerator", "cpu")
    net0, original_info = obtain_original(cfg, built, accelerator)
    fooled = copy.deepcopy(net0)
    module = FoolingModule(fooled, built.interp, built.fooling, lam=float(cfg.fooling.lam), lr=float(cfg.fooling.lr),
                           target=cfg.target, interp_name=built.interp_name, max_top1_drop=select["max_top1_drop"],
                           original_cache=original_cache_size(cfg, built))
    run_name = f"{cfg.model.name}-{cfg.fooling.name}-{built.interp_name}"
    logger = make_logger(cfg.logger, run_dir, run_name, OmegaConf.to_container(cfg, resolve=True), group=group)
    launcher_env = dist_env.launcher_env()
    report, wandb_dir = None, None
    try:
        ckpt_dir = run_dir / "checkpoints"
        callbacks = [RichProgressBar(), StopOnNonFiniteLoss(int(cfg.get("nan_check_every", 1)), str(ckpt_dir)),
                     # last.ckpt every N steps; Lightning writes it through an fsspec transaction (temp + move)
                     ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=int(cfg.get("checkpoint_every", 200)),
                                     save_last=True, save_top_k=0, enable_version_counter=False)]
        if select["weights"] == "best":   # best.ckpt: highest val/select_score (FSR within the accuracy budget)
            callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/select_score",
                                             mode="max", save_top_k=1, save_last=False, enable_version_counter=False))
        trainer = L.Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True), logger=logger or False,
                            callbacks=callbacks, inference_mode=False, check_val_every_n_epoch=None,
                            num_sanity_val_steps=0, default_root_dir=str(run_dir), enable_model_summary=False,
                            # the data modules' loaders shard themselves across ranks (val / test without
                            # padding; the synthetic train loader also resumes mid-epoch)
                            use_distributed_sampler=not getattr(built.data, "shards_by_rank", False))
        rank_zero = dist_env.is_rank_zero()
        if rank_zero:
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))   # eval.py reads it
        built.data.trainer = trainer   # resumable loaders read the global step from it
        train_loader, val_loaders = fit_loaders(built.data, built.fooling)
        seed_all(cfg.seed)   # the same draws whether theta0 was just trained or read from the cache
        start = time.time()
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loaders, ckpt_path=ckpt)
        fit_seconds = time.time() - start
        selected = load_selected(module, callbacks[-1], trainer) if select["weights"] == "best" else \
            {"weights": "last", "step": int(trainer.global_step)}
        # Lightning's teardown moved the module back to the CPU: evaluate where it trained
        device = trainer.strategy.root_device
        if not trainer.is_global_zero:           # every rank has the same weights (plain DDP, one backward)
            return None
        atomic_save(module.net.state_dict(), run_dir / "fooled.pt")
        seed_all(cfg.seed)   # e.g. SmoothGrad noise: independent of how training went (resumed or not)
        report = evaluate_and_report(cfg, run_dir, built, module.net0, module.net, logger, device=device)
        report.update({"original": original_info, "fooling_seconds": fit_seconds, "run_name": run_name,
                       "steps": int(trainer.global_step), "selected": selected,
                       "original_map_cache_images": module.original_cache})
        (run_dir / "report.json").write_text(json.dumps(report, indent=2))
        wandb_dir = wandb_run_dir(logger)
    finally:
        finish_logger(logger)
        dist_env.end_of_job(launcher_env)
    print(f"report:  {run_dir / 'report.json'}")
    print(f"figure:  {report['paths']['figure']}")
    if wandb_dir:
        print(f"wandb:   {wandb_dir}")
    return report


def evaluate_and_report(cfg: DictConfig, run_dir: Path, built: Built, net0: nn.Module, net: nn.Module,
                        logger=None, prefix: str = "", device: torch.device | str | None = None) -> dict:
    """Metrics on ``eval.split``, the heatmap grid, the per-image test losses (CSV), and the summary
    (final numbers, a table and a histogram per interpreter of the test losses) sent to the logger.
    ``device``: where to evaluate (default: ``dist_env.eval_device(cfg)``, from ``trainer.accelerator``)."""
    device = dist_env.eval_device(cfg) if device is None else torch.device(device)
    loader, collages = eval_loaders(built.data, cfg.eval.split, built.fooling)
    result = evaluate_pair(net0, net, loader, built.eval_interps, built.fooling, cfg.target, device,
                           keep_maps=int(cfg.eval.figure_images), collage_batches=collages)
    result["device"] = str(device)
    fig = result.pop("figure")
    per_image = result.pop("per_image_test_loss")
    shown = built.data.denormalize(fig["images"])
    figure_path = save_heatmap_grid(shown, fig["maps"], run_dir / "heatmaps.png")
    torch.save({"images": shown, "labels": fig["labels"], "maps": fig["maps"]}, run_dir / "figure.pt")  # grid_summary
    losses_path = write_test_losses(per_image, run_dir / "test_losses.csv")
    report = {"model": cfg.model.name, "fooling_name": cfg.fooling.name, "interpreter": built.interp_name,
              "seed": int(cfg.seed), "data": _data_name(cfg),
              "lam": float(cfg.fooling.lam), "lr": float(cfg.fooling.lr), "split": cfg.eval.split, **result,
              "paths": {"figure": str(figure_path), "test_losses": str(losses_path), "run_dir": str(run_dir)}}
    log_summary(logger, {prefix + k: v for k, v in summary_metrics(result).items()}, {prefix + "heatmaps": figure_path},
                (prefix + "test_losses", CSV_COLUMNS, per_image),
                histograms={prefix + k: v for k, v in loss_histograms(per_image).items()})
    return report


def _data_name(cfg: DictConfig) -> str:
    """The data set's name: ``data.name`` where the config has one, else from the data module's class
    (``SyntheticDataModule`` -> ``synthetic``)."""
    return str(cfg.data.get("name") or cfg.data.get("_target_", "?").rsplit(".", 1)[-1].removesuffix("DataModule")
               .lower())


def write_test_losses(rows: list[list], path: Path) -> Path:
    """One row per image, interpreter, model (and class for a swap fooling): ``CSV_COLUMNS``."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return path


def loss_histograms(rows: list[list]) -> dict[str, list[float]]:
    """theta*'s per-image test losses per interpreter (and class): the distribution behind the FSR."""
    out: dict[str, list[float]] = {}
    for _, interp, model, tag, t, _ok in rows:
        if model == "theta_star":
            out.setdefault("/".join(filter(None, ("final/test_loss", interp, tag))), []).append(t)
    return out


def summary_metrics(result: dict) -> dict[str, float]:
    """The flat final numbers of ``evaluate_pair``'s result for the logger."""
    flat = {"final/acc_top1_theta0": result["accuracy"]["theta0"]["top1"],
            "final/acc_top1_theta_star": result["accuracy"]["theta_star"]["top1"],
            "final/acc_top5_theta0": result["accuracy"]["theta0"]["top5"],
            "final/acc_top5_theta_star": result["accuracy"]["theta_star"]["top5"],
            "final/top1_drop_points": result["top1_drop_points"]}
    for name, values in result["fsr"].items():
        flat[f"final/fsr/{name}"] = values["theta_star"]
    for name, values in result.get("fsr_per_class", {}).items():
        for tag, rate in values["theta_star"].items():
            flat[f"final/fsr/{name}/{tag}"] = rate
    for name, values in result.get("localisation", {}).items():
        for m in ("theta0", "theta_star"):
            flat[f"final/localisation/{name}/{m}"] = values[m]["mass_inside"]
    return flat
