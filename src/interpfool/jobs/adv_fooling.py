"""Adversarial training under fooling (``train.py experiment=adv_fooling``, ``job: adv_fooling``): Heo, Joo & Moon
2019, Sec. 5, Figure 4(c).

Phase 1: theta0, trained plainly (the theta0 cache, ``experiment.original``). Phase 2: free adversarial training
(Shafahi et al. 2019, ``adversarial.free``) from theta0 for ``adv_fooling.steps`` optimizer steps (replays),
AdamW + one-cycle, in train mode, validated every ``adv_fooling.val_every`` steps: theta_adv. Phase 3: the fooling
run (``fooling``, ``interp``, ``trainer``, ``select``; Location fooling of Grad-CAM in the shipped configs) from
theta_adv with the adversarial training kept on (CE at x + delta, penalty on the clean maps), the checkpoint
selected on the validation split as in ``train.py``: theta*. Validation logs clean and PGD top-1 in both phases.

Outputs in the run folder: ``report.json`` (per phase: test-split clean top-1, PGD top-1 and the fooled
interpreter's FSR; the validation curve; the fooling run's usual evaluation of theta_adv -> theta*),
``adv_fooling.png`` (the curves over the three phases with the boundaries marked, and each phase's maps of the same
test images), ``heatmaps.png`` and the other files of ``jobs.train.evaluate_and_report``.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf
from torch import nn

from interpfool.adversarial import FreeAdversary, PGDSpec, ReplayLoader
from interpfool.experiment import distributed as dist_env
from interpfool.experiment.build import Built, checked_build, eval_loaders, fit_loaders
from interpfool.experiment.callbacks import StopOnNonFiniteLoss
from interpfool.experiment.cli import BadInput
from interpfool.experiment.loggers import finish_logger, make_logger
from interpfool.experiment.original import (ClassifierModule, atomic_save, atomic_write_text, obtain_original,
                                            original_cache_size, seed_all)
from interpfool.experiment.progress import RunProgressBar
from interpfool.fooling.module import FoolingModule
from interpfool.jobs.train import (SameFolderCheckpointIO, adversarial_training, evaluate_and_report, load_selected,
                                   selection)

PHASES = ("theta0", "theta_adv", "theta_star")
PHASE_TITLES = {"theta0": "phase 1: theta0 (plain)", "theta_adv": "phase 2: free adversarial training",
                "theta_star": "phase 3: Location fooling, adversarial training kept"}
PHASE_COLORS = {"theta0": "tab:red", "theta_adv": "tab:green", "theta_star": "tab:blue"}


class CurveRecorder(L.Callback):
    """After every validation: {phase, step (+ ``offset``), and each ``metrics`` name -> the logged value}."""

    def __init__(self, phase: str, metrics: dict[str, str], offset: int = 0):
        self.phase, self.metrics, self.offset, self.rows = phase, metrics, offset, []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        logged = trainer.callback_metrics
        row = {"phase": self.phase, "step": self.offset + int(trainer.global_step)}
        row.update({k: float(logged[v]) for k, v in self.metrics.items() if v in logged})
        self.rows.append(row)


@torch.no_grad()
def val_point(net: nn.Module, loader, pgd: PGDSpec, device: torch.device) -> dict:
    """Clean top-1 on every batch of ``loader``, PGD top-1 on the batches ``pgd`` attacks (as the validations do)."""
    net.eval()
    clean, attacked = [], []
    for idx, batch in enumerate(loader):
        x, y = batch[0].to(device), batch[1].to(device)
        clean.append(net(x).argmax(1) == y)
        if pgd.wants(idx):
            attacked.append(pgd.correct(net, x, y, seed=idx))
    return {"top1": float(torch.cat(clean).float().mean()), "top1_pgd": float(torch.cat(attacked).float().mean())}


def phase_numbers(net: nn.Module, loader, pgd: PGDSpec, built: Built, target: str, device: torch.device,
                  pgd_images: int | None, figure_images: int) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Held-out numbers of one phase's model: clean top-1 (all images), PGD top-1 (the first ``pgd_images``), the
    fooled interpreter's FSR (passive foolings); and the maps and images of the first ``figure_images``."""
    net = net.to(device).eval()
    interp = built.interp(net=net)
    clean, attacked, success, maps, images, seen = [], [], [], [], [], 0
    for idx, batch in enumerate(loader):
        x, y = batch[0].to(device), batch[1].to(device)
        with torch.no_grad():
            clean.append(net(x).argmax(1) == y)
        if pgd_images is None or seen < pgd_images:
            take = len(y) if pgd_images is None else min(len(y), pgd_images - seen)
            attacked.append(pgd.correct(net, x[:take], y[:take], seed=idx))
            seen += take
        h = interp(x, target, labels=y)
        if not built.fooling.needs_original and not built.fooling.classes:
            success.append(built.fooling.success(built.fooling.test_loss(h, None)).reshape(-1))
        if sum(len(m) for m in maps) < figure_images:
            maps.append(h.cpu())
            images.append(x.cpu())
    out = {"top1": float(torch.cat(clean).float().mean()), "top1_pgd": float(torch.cat(attacked).float().mean()),
           "pgd_images": int(seen), "images": int(sum(len(c) for c in clean))}
    if success:
        out["fsr"] = float(torch.cat(success).float().mean())
    return out, torch.cat(images)[:figure_images], torch.cat(maps)[:figure_images]


def save_figure(curve: list[dict], boundaries: tuple[int, int], images: torch.Tensor, maps: dict[str, torch.Tensor],
                path: Path, interp_name: str, fsr: dict[str, float | None]) -> Path:
    """Left: clean and PGD top-1 (validation) over the three phases, boundaries marked. Right: each phase's maps of
    the same test images (a row per phase, framed in the phase's colour)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interpfool.interpreters.base import upsample_map

    n = images.shape[0]
    fig = plt.figure(figsize=(6 + 1.3 * n, 4.2))
    grid = fig.add_gridspec(3, 2 + n, width_ratios=[2.2, 2.2] + [1] * n)
    ax = fig.add_subplot(grid[:, :2])
    end2, _ = boundaries
    p1 = [r for r in curve if r["phase"] == "theta0"]
    for key, style, label in (("top1", "-", "clean top-1"), ("top1_pgd", "--", "PGD top-1")):
        for phase in PHASES:
            rows = [r for r in curve if r["phase"] == phase and key in r]
            if phase == "theta0":
                xs, ys = [-0.12 * max(end2, 1), 0], [p1[0][key]] * 2 if p1 else []
            else:
                xs, ys = [r["step"] for r in rows], [r[key] for r in rows]
            if ys:
                ax.plot(xs, ys, style, color=PHASE_COLORS[phase], marker="o" if phase != "theta0" else None,
                        ms=3, label=f"{label}, {PHASE_TITLES[phase].split(':')[0]}")
    for b in (0, end2):
        ax.axvline(b, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("step (phase 2: free adversarial training, then phase 3: fooling)")
    ax.set_ylabel("validation top-1")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6, loc="center left")     # the middle band: clean curves sit above, PGD below
    ax.set_title("clean and PGD top-1 over the three phases", fontsize=9)
    size = tuple(images.shape[-2:])
    for r, phase in enumerate(PHASES):
        for i in range(n):
            a = fig.add_subplot(grid[r, 2 + i])
            img = images[i].permute(1, 2, 0).float().numpy()
            a.imshow(img)
            h = upsample_map(maps[phase][i:i + 1].float(), size)[0].numpy()
            a.imshow(h, cmap="jet", alpha=0.5, vmin=0, vmax=max(1e-12, float(h.max())))
            a.set_xticks([])
            a.set_yticks([])
            for spine in a.spines.values():
                spine.set_edgecolor(PHASE_COLORS[phase])
                spine.set_linewidth(2.5)
            if i == 0:
                f = fsr.get(phase)
                a.set_ylabel(f"{phase}\nFSR {100 * f:.0f}%" if f is not None else phase, fontsize=7)
    fig.suptitle(f"Adversarial training under fooling (Heo et al. 2019, Fig. 4c): {interp_name} maps per phase",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _trainer_kwargs(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg.trainer, resolve=True)


def run(cfg: DictConfig, run_dir: Path, group: str | None = None) -> dict:
    """The three phases, the held-out evaluation, the figure; returns the report (also ``report.json``)."""
    seed_all(cfg.seed)
    built = checked_build(cfg)
    adversary, pgd = adversarial_training(cfg, built)
    if adversary is None:
        raise BadInput("adversarial.kind=none with job=adv_fooling; allowed: adversarial=free (experiment=adv_fooling "
                       "sets it)")
    if cfg.get("adv_fooling") is None:
        raise BadInput("job=adv_fooling needs the adv_fooling section; allowed: experiment=adv_fooling or "
                       "experiment=fmnist_adv_fooling")
    if built.fooling.classes:
        raise BadInput(f"fooling={built.fooling.name} with job=adv_fooling; allowed: a passive fooling "
                       f"(location, topk, center_mass)")
    if int(cfg.trainer.get("devices", 1) or 1) != 1 or int(cfg.trainer.get("num_nodes", 1)) != 1:
        raise BadInput("job=adv_fooling runs on one device; allowed: trainer.devices=1")
    spec = cfg.adv_fooling
    select = selection(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for existing in (run_dir / "report.json",):
        if existing.exists():
            raise BadInput(f"run folder {run_dir} already holds a run ({existing.name}); choose another "
                           f"hydra.run.dir (nothing was overwritten)")
    accelerator = cfg.trainer.get("accelerator", "cpu")
    device = dist_env.eval_device(cfg)
    atomic_write_text(OmegaConf.to_yaml(cfg, resolve=True), run_dir / "config.yaml")
    print(f"adv_fooling: phase 1 theta0 (plain), phase 2 free adversarial training ({spec.steps} steps, eps "
          f"{adversary.eps:.4g} pixel units, {adversary.replays} replays), phase 3 {cfg.fooling.name} fooling of "
          f"{built.interp_name} ({cfg.trainer.max_steps} steps) with adversarial training kept; PGD: {pgd.steps} "
          f"steps of {pgd.alpha:.4g} in the {pgd.eps:.4g} ball")

    # -- phase 1: theta0 -----------------------------------------------------------------------------------
    net0, original_info = obtain_original(cfg, built, accelerator)
    theta0 = copy.deepcopy(net0).eval()
    with_val = built.data.val_dataloader()
    curve = [{"phase": "theta0", "step": 0, **val_point(theta0.to(device), with_val, pgd, device)}]
    theta0.cpu()

    logger = make_logger(cfg.logger, run_dir, f"{cfg.model.name}-adv_fooling-{built.interp_name}",
                         OmegaConf.to_container(cfg, resolve=True), group=group)
    try:
        # -- phase 2: free adversarial training from theta0 -----------------------------------------------
        seed_all(cfg.seed)
        net_adv = copy.deepcopy(net0)
        rec2 = CurveRecorder("theta_adv", {"top1": "original/val_acc", "top1_pgd": "original/val_acc_pgd"})
        trainer2 = L.Trainer(max_steps=int(spec.steps), accelerator=accelerator, devices=1, logger=False,
                             deterministic=cfg.trainer.get("deterministic", False), enable_checkpointing=False,
                             enable_model_summary=False, inference_mode=False, num_sanity_val_steps=0,
                             val_check_interval=int(spec.val_every), check_val_every_n_epoch=None,
                             callbacks=[RunProgressBar("Adversarial training"), rec2])
        built.data.trainer = trainer2
        start = time.time()
        trainer2.fit(ClassifierModule(net_adv, lr=float(spec.lr), weight_decay=float(spec.weight_decay),
                                      seed=int(cfg.seed), adversary=adversary, pgd=pgd),
                     ReplayLoader(built.data.train_dataloader(), adversary.replays), built.data.val_dataloader())
        adv_seconds = time.time() - start
        net_adv.eval()
        atomic_save(net_adv.state_dict(), run_dir / "theta_adv.pt")

        # -- phase 3: fooling with the adversarial training kept (the same perturbation goes on) ------------
        seed_all(cfg.seed)
        fooled = copy.deepcopy(net_adv)
        module = FoolingModule(fooled, built.interp, built.fooling, lam=float(cfg.fooling.lam),
                               lr=float(cfg.fooling.lr), target=cfg.target, interp_name=built.interp_name,
                               max_top1_drop=select["max_top1_drop"], original_cache=original_cache_size(cfg, built),
                               adversary=adversary, pgd=pgd, adam=cfg.fooling.adam)
        end2 = int(trainer2.global_step)
        rec3 = CurveRecorder("theta_star", {"top1": "val/acc_top1", "top1_pgd": "val/acc_top1_pgd",
                                            "fsr": f"val/fsr/{built.interp_name}"}, offset=end2)
        ckpt_dir = run_dir / "checkpoints"
        callbacks = [RunProgressBar("Fooling"), StopOnNonFiniteLoss(int(cfg.get("nan_check_every", 1)), str(ckpt_dir)),
                     rec3]
        if select["weights"] == "best":
            callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/select_score",
                                             mode="max", save_top_k=1, save_last=False, enable_version_counter=False))
        trainer3 = L.Trainer(**_trainer_kwargs(cfg), logger=logger or False, callbacks=callbacks,
                             plugins=[SameFolderCheckpointIO()], inference_mode=False, check_val_every_n_epoch=None,
                             num_sanity_val_steps=0, default_root_dir=str(run_dir), enable_model_summary=False,
                             enable_checkpointing=select["weights"] == "best",
                             use_distributed_sampler=not getattr(built.data, "shards_by_rank", False))
        built.data.trainer = trainer3
        train_loader, val_loaders = fit_loaders(built.data, built.fooling)
        start = time.time()
        trainer3.fit(module, train_dataloaders=ReplayLoader(train_loader, adversary.replays),
                     val_dataloaders=val_loaders)
        fool_seconds = time.time() - start
        selected = load_selected(module, callbacks[-1], trainer3) if select["weights"] == "best" else \
            {"weights": "last", "step": int(trainer3.global_step)}
        theta_star = module.net.eval()
        atomic_save(theta_star.state_dict(), run_dir / "fooled.pt")

        # -- held-out evaluation ----------------------------------------------------------------------------
        seed_all(cfg.seed)
        report = evaluate_and_report(cfg, run_dir, built, module.net0, theta_star, logger, device=device)
        loader, _ = eval_loaders(built.data, cfg.eval.split, built.fooling)
        phases, maps, images = {}, {}, None
        for name, net in (("theta0", theta0), ("theta_adv", module.net0), ("theta_star", theta_star)):
            phases[name], images, maps[name] = phase_numbers(
                net, loader, pgd, built, cfg.target, device, spec.get("pgd_images"), int(spec.figure_images))
        shown = built.data.denormalize(images)
        figure = save_figure(curve + rec2.rows + rec3.rows, (end2, end2 + int(trainer3.global_step)), shown, maps,
                             run_dir / "adv_fooling.png", built.interp_name,
                             {k: v.get("fsr") for k, v in phases.items()})
        report.update({"job": "adv_fooling", "original": original_info, "phases": phases,
                       "curve": curve + rec2.rows + rec3.rows,
                       "adversarial": {"eps": adversary.eps, "replays": adversary.replays, "step": adversary.step,
                                       "phase2_steps": end2, "phase2_seconds": adv_seconds},
                       "pgd": {"eps": pgd.eps, "alpha": pgd.alpha, "steps": pgd.steps, "val_batches": pgd.batches,
                               "test_images": spec.get("pgd_images")},
                       "fooling_seconds": fool_seconds, "steps": int(trainer3.global_step), "selected": selected})
        report["paths"]["adv_fooling_figure"] = str(figure)
        atomic_write_text(json.dumps(report, indent=2), run_dir / "report.json")
    finally:
        finish_logger(logger)
    print("adv_fooling (test split): " + "; ".join(
        f"{k}: top-1 {100 * v['top1']:.1f}%, PGD {100 * v['top1_pgd']:.1f}%"
        + (f", FSR {100 * v['fsr']:.1f}%" if "fsr" in v else "") for k, v in phases.items()))
    print(f"report:  {run_dir / 'report.json'}")
    print(f"figure:  {figure}")
    return report
