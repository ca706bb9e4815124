"""``eval.py``'s job: the evaluation suite on fooled checkpoints.

For each ``ckpt`` (a ``fooled.pt`` state dict or the run folder that holds it) and its original theta0
(``original_ckpt=``, else the cached original of the run's model/data config): accuracy, FSR of every
interpreter of ``eval.interpreters`` (the transfer row), localisation, per-image test losses (CSV),
the Figure-2 grid, AOPC curves (``eval.aopc``) and the parameter-noise curves (``eval.robustness``).
With several checkpoints of one fooling, also the transfer matrix (rows: the interpreter each model
was fooled through). Everything goes to ``report.json`` in the output folder and to the logger.

Config of a checkpoint: train.py writes the resolved ``config.yaml`` next to ``fooled.pt``; its
model, data, fooling, interp, target, seed, original and cache_dir are used, with ``key=value``
overrides from the eval command line applied on top (``data.val_size=100``); a group override
(``fooling=topk``) replaces the run's section. Without a saved config, this command's config is used.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from interpfool.experiment.cli import BadInput
from interpfool.experiment.schema import typed
from interpfool.experiment.distributed import eval_device
from interpfool.experiment.evaluate import evaluate_aopc, fsr_row, matrix_markdown, noise_robustness
from interpfool.experiment.loggers import finish_logger, log_summary, make_logger, wandb_run_dir
from interpfool.experiment.original import cached_original_path, seed_all
from interpfool.experiment.build import Built, checked_build, eval_loaders, interp_factory
from interpfool.jobs.train import evaluate_and_report
from interpfool.experiment.original import original_key
from interpfool.metrics.robustness import SCALES
from interpfool.models.builders import load_state_file
from interpfool.viz.curves import save_aopc_curves, save_robustness_curves, save_transfer_matrix

RUN_KEYS = ("model", "data", "fooling", "interp", "target", "seed", "original", "cache_dir")


def _overrides(argv: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    return OverridesParser.create().parse_overrides(argv)


def saved_config(run_dir: Path) -> DictConfig | None:
    """The resolved config train.py wrote next to ``fooled.pt``, if any."""
    path = run_dir / "config.yaml"
    return OmegaConf.load(path) if path.is_file() else None


def run_config(cfg: DictConfig, saved: DictConfig | None, argv: list[str]) -> DictConfig:
    """``cfg`` with the run's sections from its saved config (if any), command-line overrides on top."""
    if saved is None:
        return cfg
    merged = copy.deepcopy(cfg)
    overrides = _overrides(argv)
    replaced = {o.key_or_group for o in overrides}        # whole sections / scalars set on the command line
    OmegaConf.set_struct(merged, False)
    for key in RUN_KEYS:
        if key in saved and key not in replaced:
            try:
                merged[key] = typed(key, saved[key])     # the saved section over its typed schema
            except ValueError as err:
                raise BadInput(f"the run's config.yaml does not fit this version's settings: {err}") from None
    for o in overrides:
        key = o.key_or_group
        if "." in key and key.split(".")[0] in RUN_KEYS and key.split(".")[0] not in replaced and not o.is_delete():
            OmegaConf.update(merged, key, o.value(), force_add=True)
    return merged


def resolve_ckpt(ckpt: Any) -> tuple[Path, Path]:
    """(weights file, run folder) of a ``fooled.pt`` path or a run folder; one-line errors."""
    if ckpt is None or ckpt == "":
        raise BadInput("ckpt is required: a fooled.pt file or the run folder that holds it (ckpt=outputs/.../run)")
    path = Path(str(ckpt)).expanduser()
    if path.is_dir():
        weights = path / "fooled.pt"
        if not weights.is_file():
            raise BadInput(f"ckpt={str(ckpt)!r} is a folder without fooled.pt; give a run folder of train.py or a .pt file")
        return weights, path
    if not path.is_file():
        raise BadInput(f"ckpt={str(ckpt)!r} does not exist; give a fooled.pt file or the run folder that holds it")
    return path, path.parent


def load_state(net: torch.nn.Module, path: Path, what: str) -> torch.nn.Module:
    """``net`` (eval mode) with the state dict at ``path``; not a state dict or not fitting -> BadInput."""
    try:
        return load_state_file(net, path, what).eval()
    except ValueError as err:
        raise BadInput(str(err)) from None


def find_original(cfg: DictConfig, built: Built, fallback_cache: str | None,
                  trained_with: DictConfig | None = None) -> tuple[torch.nn.Module, str]:
    """theta0: ``original_ckpt``, the given pretrained/weights_path model, or the cached original of
    the config the run was trained with (``trained_with``; eval overrides such as data.val_size
    would otherwise change the cache key)."""
    net = copy.deepcopy(built.net)
    if cfg.get("original_ckpt"):
        path = Path(str(cfg.original_ckpt)).expanduser()
        if not path.is_file():
            raise BadInput(f"original_ckpt={str(cfg.original_ckpt)!r} does not exist")
        return load_state(net, path, "original_ckpt"), str(path)
    if cfg.model.get("pretrained") or cfg.model.get("weights_path"):
        return net.eval(), str(cfg.model.get("weights_path") or "torchvision")
    key = original_key(trained_with if trained_with is not None else cfg)
    candidates = list(dict.fromkeys([str(cfg.cache_dir), *([fallback_cache] if fallback_cache else [])]))
    for cache in candidates:
        path = cached_original_path(cache, key)
        if path.is_file():
            return load_state(net, path, "cached original"), str(path)
    raise BadInput(f"no cached original for this model/data config in {', '.join(candidates)}; "
                   f"pass original_ckpt=path/to/original.pt (or run train.py with this config first)")


def _check_suite(cfg: DictConfig) -> None:
    aopc, rob = cfg.eval.aopc, cfg.eval.robustness
    for key in ("images", "steps", "cell", "chunk"):
        value = aopc[key]
        low = 0 if key == "images" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise BadInput(f"eval.aopc.{key}={value!r}; allowed: an integer >= {low}")
    if not float(aopc.noise_std) >= 0:
        raise BadInput(f"eval.aopc.noise_std={aopc.noise_std}; allowed: >= 0")
    if rob.scale not in SCALES:
        raise BadInput(f"eval.robustness.scale={rob.scale!r}; allowed: {', '.join(SCALES)}")
    if not isinstance(rob.sigmas, (list, ListConfig)) or any(not float(s) >= 0 for s in rob.sigmas):
        raise BadInput(f"eval.robustness.sigmas={rob.sigmas}; allowed: a list of numbers >= 0")
    if isinstance(rob.trials, bool) or not isinstance(rob.trials, int) or rob.trials < 1:
        raise BadInput(f"eval.robustness.trials={rob.trials!r}; allowed: an integer >= 1")


def _factory(built: Built, name: str, key: str):
    """The interpreter factory ``name`` (one of the run's, or from the registry); one-line error if unknown."""
    if name in built.eval_interps:
        return built.eval_interps[name]
    try:
        return interp_factory(name)
    except ValueError as err:
        raise BadInput(f"{key}: {err}") from None


def evaluate_checkpoint(cfg: DictConfig, ckpt: Any, out_dir: Path, argv: list[str], logger=None,
                        prefix: str = "") -> dict:
    weights, run_dir = resolve_ckpt(ckpt)
    saved = saved_config(run_dir)
    ccfg = run_config(cfg, saved, argv)
    seed_all(ccfg.seed)   # global-RNG draws (SmoothGrad with seed=null): the same in every process, for every ckpt
    built = checked_build(ccfg)
    net0, original_path = find_original(ccfg, built, cfg.get("cache_dir"), saved)
    net = load_state(copy.deepcopy(net0), weights, "ckpt")
    out_dir.mkdir(parents=True, exist_ok=True)
    device = eval_device(ccfg)           # trainer.accelerator of the run (command-line overrides apply)
    report = evaluate_and_report(ccfg, out_dir, built, net0, net, logger, prefix, device=device)
    report.update({"ckpt": str(weights), "original_ckpt": original_path})
    images = {}
    title = f"{ccfg.model.name}, {ccfg.fooling.name} fooling through {built.interp_name}"
    loader, collages = eval_loaders(built.data, ccfg.eval.split, built.fooling)
    aopc_cfg = cfg.eval.aopc
    if aopc_cfg.images > 0:
        make = _factory(built, aopc_cfg.interpreter or built.interp_name, "eval.aopc.interpreter")
        report["aopc"] = evaluate_aopc(net0, net, loader, make, ccfg.target, cell=aopc_cfg.cell, steps=aopc_cfg.steps,
                                       noise_std=float(aopc_cfg.noise_std), seed=aopc_cfg.seed,
                                       images=aopc_cfg.images, chunk=aopc_cfg.chunk, device=device)
        report["aopc"]["interpreter"] = aopc_cfg.interpreter or built.interp_name
        images["aopc"] = save_aopc_curves(report["aopc"], out_dir / "aopc.png",
                                          f"{title}; orders from {report['aopc']['interpreter']}")
        report["paths"]["aopc"] = str(images["aopc"])
    rob_cfg = cfg.eval.robustness
    if len(rob_cfg.sigmas):
        names = list(rob_cfg.interpreters or [built.interp_name])
        report["robustness"] = noise_robustness(net0, net, loader,
                                                {n: _factory(built, n, "eval.robustness.interpreters") for n in names},
                                                built.fooling, list(rob_cfg.sigmas), rob_cfg.trials, rob_cfg.seed,
                                                rob_cfg.scale, ccfg.target, device=device, collage_batches=collages)
        images["robustness"] = save_robustness_curves(report["robustness"], out_dir / "robustness.png", title)
        report["paths"]["robustness"] = str(images["robustness"])
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    if logger is not None:
        flat = {f"{prefix}final/aopc/{m}/{o}": v for m, d in report.get("aopc", {}).get("aopc", {}).items()
                for o, v in d.items()}
        log_summary(logger, flat, {prefix + k: v for k, v in images.items()})
    return report


def run_eval(cfg: DictConfig, out_dir: Path, argv: list[str]) -> dict:
    """Evaluate ``cfg.ckpt`` (one checkpoint or a list); writes report.json (+ transfer matrix) in ``out_dir``."""
    _check_suite(cfg)
    ckpts = list(cfg.ckpt) if isinstance(cfg.ckpt, (list, ListConfig)) else [cfg.ckpt]
    if not ckpts:
        raise BadInput("ckpt=[] is empty; give a fooled.pt file, a run folder, or a list of them")
    for c in ckpts:                          # every path checked before any work starts
        resolve_ckpt(c)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logger = make_logger(cfg.logger, out_dir, "eval", OmegaConf.to_container(cfg, resolve=True))
    try:
        if len(ckpts) == 1:
            result = evaluate_checkpoint(cfg, ckpts[0], out_dir, argv, logger)
        else:
            reports = []
            for i, c in enumerate(ckpts):
                name = Path(str(c)).name if Path(str(c)).is_dir() else Path(str(c)).parent.name
                reports.append(evaluate_checkpoint(cfg, c, out_dir / f"{i}-{name}", argv, logger, prefix=f"{i}/"))
            result = transfer_report(reports, out_dir, logger)
        wandb_dir = wandb_run_dir(logger)
    finally:
        finish_logger(logger)
    print(f"report:  {out_dir / 'report.json'}")
    if wandb_dir:
        print(f"wandb:   {wandb_dir}")
    return result


def transfer_report(reports: list[dict], out_dir: Path, logger=None) -> dict:
    """The transfer matrix of several fooled models of one fooling: rows = fooled-through interpreter."""
    foolings = {r["fooling_name"] for r in reports}
    if len(foolings) > 1:
        raise BadInput(f"a transfer matrix compares models of one fooling; got {', '.join(sorted(foolings))}")
    matrix = {}
    for r in reports:
        row = r["interpreter"] if r["interpreter"] not in matrix else f"{r['interpreter']} ({r['paths']['run_dir']})"
        matrix[row] = fsr_row(r)
    fooling = reports[0]["fooling_name"]
    # The FSR of theta0 itself (the same original for every row when the runs share a config): how
    # often the test loss is in R with no fooling at all, the floor each column should be read against.
    base = {n: v["theta0"] for n, v in reports[0]["fsr"].items()}
    shown = {**matrix, "theta0 (no fooling)": base}
    figure = save_transfer_matrix(shown, out_dir / "transfer_matrix.png", f"FSR (%) after {fooling} fooling")
    (out_dir / "transfer_matrix.md").write_text(matrix_markdown(shown) + "\n")
    result = {"fooling": fooling, "transfer_matrix": matrix, "theta0_fsr": base, "reports": reports,
              "paths": {"transfer_matrix": str(figure), "run_dir": str(out_dir)}}
    (out_dir / "report.json").write_text(json.dumps(result, indent=2))
    if logger is not None:
        rows = [[row, col, v] for row, cols in matrix.items() for col, v in cols.items()]
        log_summary(logger, {}, {"transfer_matrix": figure}, ("transfer_matrix", ["fooled_through", "interpreter",
                                                                                  "fsr"], rows))
    return result
