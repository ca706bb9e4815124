"""The fooling job (``train.py``, ``job: fool``): build and check everything, get theta0, fool it, select on the
validation split, evaluate on the held-out split, report.

Every object is built (and so every value checked) before any training starts (``experiment.build``).
"""
from __future__ import annotations

import copy
import csv
import json
import logging
import os
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from torch import nn

from interpfool.adversarial import ReplayLoader
from interpfool.adversarial import from_config as adversarial_from_config
from interpfool.experiment import distributed as dist_env
from interpfool.experiment import record_maps
from interpfool.experiment.build import Built, checked_build, eval_loaders, fit_loaders
from interpfool.experiment.callbacks import StopOnNonFiniteLoss
from interpfool.experiment.cli import BadInput, reason
from interpfool.data.first_images import FirstImages
from interpfool.experiment import original_maps
from interpfool.experiment.evaluate import CSV_COLUMNS, evaluate_defenses, evaluate_pair
from interpfool.experiment.loggers import finish_logger, log_summary, make_logger, wandb_run_dir
from interpfool.experiment.original import (atomic_save, atomic_write_text, obtain_original, original_cache_size,
                                            original_source, seed_all)
from interpfool.experiment.progress import RunProgressBar
from interpfool.experiment.run_plan import announce, describe
from interpfool.fooling.module import FoolingModule
from interpfool.models.builders import state_mismatch
from interpfool.viz.heatmap_grid import save_heatmap_grid

# The fooled model is kept in eval mode on purpose (frozen BatchNorm statistics, authors' code).
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)


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



def _load_checkpoint(path: str) -> dict:
    """torch.load of a Lightning checkpoint (memory-mapped where the file allows: only the keys are read here)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # noqa: BLE001 - not a zip-format torch file: the plain load says what it is
        return torch.load(path, map_location="cpu", weights_only=False)


def check_checkpoint(path: str, net: nn.Module, named: str) -> None:
    """Before anything trains: the checkpoint at ``path`` must load as a Lightning checkpoint (``state_dict``,
    ``global_step``) of this run's model (theta*'s ``net.*`` keys and shapes, e.g. not another ``model.width``
    or ``data.num_classes``); else one line naming ``named`` (``ckpt_path=...``) and what is allowed."""
    allowed = "allowed: null, last, or a .ckpt file that train.py wrote for this model"
    try:
        ckpt = _load_checkpoint(path)
    except Exception as err:  # noqa: BLE001 - truncated, garbage, not a torch file
        raise BadInput(f"{named} is not a readable checkpoint (truncated, or not a torch file: {reason(err)}); "
                       f"{allowed}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict) or "global_step" not in ckpt:
        what = "a plain state dict such as fooled.pt" if isinstance(ckpt, dict) else f"a {type(ckpt).__name__}"
        raise BadInput(f"{named} is not a Lightning checkpoint ({what}: no state_dict and global_step); {allowed}")
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("net0.")}
    mismatch = state_mismatch({f"net.{k}": v for k, v in net.state_dict().items()}, state)
    if mismatch:
        raise BadInput(f"{named} is a checkpoint of another model: {mismatch}; allowed: a checkpoint of a run with "
                       f"this model ({type(net).__name__}) and its model.* and data.num_classes settings")


def _ckpt_named(given, resolved: str) -> str:
    """How the one-line errors name the checkpoint: the setting as given, with the file ``last`` stands for."""
    if given in (None, "", "null"):
        return f"the requeued run's checkpoint {resolved}"
    return f"ckpt_path=last ({resolved})" if given == "last" else f"ckpt_path={str(given)!r}"


class SameFolderCheckpointIO(TorchCheckpointIO):
    """Checkpoints written like every run file (``atomic_save``): a temp file in the checkpoint's own folder, then
    a rename. Lightning's own write puts the temp file in the system temp folder and, when that is another file
    system (a node's local /tmp, the run on shared storage), copies it over the earlier checkpoint, so a full disk
    leaves a truncated last.ckpt. Here a failed write raises ``WriteFailed`` naming the file (one line, exit 4),
    the temp file is removed and the earlier checkpoint is unchanged."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):     # remote storage: Lightning's fsspec writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_save(checkpoint, Path(path))



def adversarial_training(cfg: DictConfig, built: Built):
    """(adversary, validation PGD) of ``cfg.adversarial`` (``conf/adversarial/``), (None, None) when off; a data module
    without mean / std is refused in one line."""
    try:
        adversarial_from_config(cfg.original.get("adversarial"), built.data)   # theta0's (obtain_original) too
        return adversarial_from_config(cfg.get("adversarial"), built.data)
    except ValueError as err:
        raise BadInput(str(err)) from None


def selection(cfg: DictConfig) -> dict:
    """``select``: which weights the final evaluation takes: the last step's, or the best validation's (values
    checked by the schema, ``experiment.schema.SelectConfig``)."""
    s = OmegaConf.to_container(cfg.select, resolve=True)
    if s["weights"] == "best" and cfg.eval.split == "val":
        print("select.weights=best picks the checkpoint on the validation split; eval.split=val reports on the "
              "same images (use eval.split=test for an unbiased number)")
    return s


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
    adversary, pgd = adversarial_training(cfg, built)    # checked before anything trains
    run_dir = Path(run_dir)
    ckpt = resolve_ckpt(cfg.get("ckpt_path"), run_dir)
    if ckpt:
        check_checkpoint(ckpt, built.net, _ckpt_named(cfg.get("ckpt_path"), ckpt))
    select = selection(cfg)
    try:   # record_maps.every > 0: maps of the first val images over theta0's training and over the fooling
        recorders = {name: record_maps.from_config(cfg, built, run_dir, name) for name in ("theta0", "fooling")}
    except ValueError as err:
        raise BadInput(str(err)) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = cfg.trainer.get("accelerator", "cpu")
    if dist_env.is_rank_zero():
        announce(describe(cfg, built, run_dir, original_source(cfg), accelerator))
    net0, original_info = obtain_original(cfg, built, accelerator,
                                          callbacks=(recorders["theta0"],) if recorders["theta0"] else ())
    fooled = copy.deepcopy(net0)
    module = FoolingModule(fooled, built.interp, built.fooling, lam=float(cfg.fooling.lam), lr=float(cfg.fooling.lr),
                           target=cfg.target, interp_name=built.interp_name, max_top1_drop=select["max_top1_drop"],
                           original_cache=original_cache_size(cfg, built), adversary=adversary, pgd=pgd,
                           adam=cfg.fooling.adam)
    run_name = f"{cfg.model.name}-{cfg.fooling.name}-{built.interp_name}"
    logger = make_logger(cfg.logger, run_dir, run_name, OmegaConf.to_container(cfg, resolve=True), group=group)
    launcher_env = dist_env.launcher_env()
    report, wandb_dir = None, None
    try:
        ckpt_dir = run_dir / "checkpoints"
        callbacks = [RunProgressBar("Fooling"), StopOnNonFiniteLoss(int(cfg.get("nan_check_every", 1)), str(ckpt_dir)),
                     # last.ckpt every N steps, written atomically (SameFolderCheckpointIO)
                     ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=int(cfg.get("checkpoint_every", 200)),
                                     save_last=True, save_top_k=0, enable_version_counter=False)]
        if recorders["fooling"]:
            callbacks.insert(2, recorders["fooling"])
        if recorders["theta0"] and dist_env.is_rank_zero():
            recorders["theta0"].flush_to(logger)   # theta0 trained before the logger existed
        if select["weights"] == "best":   # best.ckpt: highest val/select_score (FSR within the accuracy budget)
            callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/select_score",
                                             mode="max", save_top_k=1, save_last=False, enable_version_counter=False))
        trainer = L.Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True), logger=logger or False,
                            callbacks=callbacks, plugins=[SameFolderCheckpointIO()], inference_mode=False,
                            check_val_every_n_epoch=None,
                            num_sanity_val_steps=0, default_root_dir=str(run_dir), enable_model_summary=False,
                            # the data modules' loaders shard themselves across ranks (val / test without
                            # padding; the synthetic train loader also resumes mid-epoch)
                            use_distributed_sampler=not getattr(built.data, "shards_by_rank", False))
        rank_zero = dist_env.is_rank_zero()
        if rank_zero:
            atomic_write_text(OmegaConf.to_yaml(cfg, resolve=True), run_dir / "config.yaml")   # eval.py reads it
        built.data.trainer = trainer   # resumable loaders read the global step from it
        train_loader, val_loaders = fit_loaders(built.data, built.fooling)
        if adversary is not None:            # free adversarial training: each batch replayed m times
            train_loader = ReplayLoader(train_loader, adversary.replays)
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
        recorded = {name: r.info() for name, r in recorders.items() if r and r.steps}
        if recorded:
            report["record_maps"] = recorded
        atomic_write_text(json.dumps(report, indent=2), run_dir / "report.json")   # a resumed run's old one survives
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
    loader = FirstImages(loader, cfg.eval.get("images"))       # eval.images: the first n (null: the whole split)
    collages = None if collages is None else FirstImages(collages, cfg.eval.get("images"))
    start = time.perf_counter()
    result = evaluate_pair(net0, net, loader, built.eval_interps, built.fooling, cfg.target, device,
                           keep_maps=int(cfg.eval.figure_images), collage_batches=collages,
                           similarity=bool(cfg.eval.get("similarity", True)),
                           original_maps=original_maps.STORE, interp_keys=built.eval_interp_keys)
    result["device"] = str(device)
    result["seconds"] = {"evaluation": time.perf_counter() - start}   # where a run's time goes (leaderboard.md)
    if len(cfg.eval.get("defenses") or []):          # how much of the fooling each defense undoes
        start = time.perf_counter()
        result["defenses"] = evaluate_defenses(net0, net, loader, built.interp, built.fooling, list(cfg.eval.defenses),
                                               cfg.target, device, collage_batches=collages, aopc=defense_aopc(cfg),
                                               integration_budget=cfg.eval.get("integration_budget"))
        result["seconds"]["defenses"] = time.perf_counter() - start
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



def defense_aopc(cfg: DictConfig) -> dict | None:
    """``evaluate_aopc``'s settings for the defenses' faithfulness cost: eval.py's ``eval.aopc`` (None where the
    config has none, as train.py's, or ``images`` is 0)."""
    a = cfg.eval.get("aopc")
    if a is None or a.images == 0:
        return None
    return {"cell": a.cell, "steps": a.steps, "noise_std": float(a.noise_std), "seed": a.seed, "images": a.images,
            "chunk": a.chunk}


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
    for spec, row in result.get("defenses", {}).get("defenses", {}).items():
        for key, value in row.items():
            flat[f"final/defense/{spec}/{key}"] = value
    for name, values in result.get("fsr_per_class", {}).items():
        for tag, rate in values["theta_star"].items():
            flat[f"final/fsr/{name}/{tag}"] = rate
    for name, values in result.get("localisation", {}).items():
        for m in ("theta0", "theta_star"):
            flat[f"final/localisation/{name}/{m}"] = values[m]["mass_inside"]
    for name, values in result.get("similarity", {}).items():      # theta*'s maps against theta0's
        for key, value in values.items():
            if value is not None:                                   # None: undefined on every image
                flat[f"final/similarity/{name}/{key}"] = value
    for key, value in result.get("fidelity", {}).items():          # theta*'s outputs against theta0's
        flat[f"final/fidelity/{key}"] = value
    return flat
