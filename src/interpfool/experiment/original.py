"""The original model theta0: trained once per (model, data, training) config and cached.

The cache key is a hash of exactly the config that determines the weights, so a changed data or
model option trains a new original while everything else reuses the stored one. Files are written
atomically (temp file + rename): a crash half-way leaves no truncated cache entry, and a write that fails
(disk full) raises ``WriteFailed`` naming the path, with the temp file removed and an earlier file at that
path unchanged. A cached entry that cannot be read, or does not fit the model, is never half-loaded: it is
retrained (a one-line notice) and replaced once the new one is written.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from interpfool.experiment import distributed as dist_env
from interpfool.experiment.cli import BadInput, WriteFailed, reason
from interpfool.experiment.progress import RunProgressBar
from interpfool.experiment.run_plan import Theta0Estimate
from interpfool.models.builders import state_mismatch

if TYPE_CHECKING:
    from interpfool.experiment.build import Built


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device) from ``seed``.

    Needed at the start of a job *before anything is built*: this torch seeds its default generator
    from the OS at start-up (``torch.initial_seed()`` differs in every process), so a model built
    before seeding gets different initial weights in every run. Also called at the start of each
    training phase, so its draws (dropout, global-RNG noise) do not depend on what ran before it
    (e.g. whether theta0 was just trained in this process or read from the cache)."""
    L.seed_everything(seed, workers=True, verbose=False)


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of the original classifier (AdamW, one-cycle schedule).

    The flip augmentation draws from its own generator seeded with ``seed``; dropout draws from the
    global RNG (seeded by ``seed_all`` before training).

    ``adversary`` (``adversarial.FreeAdversary``): free adversarial training (Shafahi et al. 2019, Alg. 1): the
    loader replays each batch ``adversary.replays`` times (``adversarial.ReplayLoader``; one flip draw per batch,
    kept over its replays), the loss is CE at x + delta, and delta ascends its gradient from the same backward
    (``on_after_backward``). ``pgd`` (``adversarial.PGDSpec``): validation also logs ``original/val_acc_pgd``."""

    def __init__(self, net: nn.Module, lr: float = 2e-3, weight_decay: float = 1e-4, epochs: int = 1, seed: int = 0,
                 adversary: Any = None, pgd: Any = None):
        super().__init__()
        self.net, self.lr, self.weight_decay, self.epochs = net, lr, weight_decay, epochs
        self.flip_generator = torch.Generator().manual_seed(seed)
        self.adversary, self.pgd = adversary, pgd
        self._steps_seen, self._flip = 0, False

    def training_step(self, batch, _idx):
        x, y = batch[0], batch[1]
        # horizontal flip of the batch: every shape class is flip-closed up to rotation (drawn once per batch:
        # free adversarial training's replays of a batch see the same images)
        replays = 1 if self.adversary is None else self.adversary.replays
        if self._steps_seen % replays == 0:
            self._flip = bool(torch.rand((), generator=self.flip_generator) < 0.5)
        self._steps_seen += 1
        if self._flip:
            x = x.flip(-1)
        if self.adversary is not None:
            x = self.adversary.perturb(x)            # clip_[0,1](x + delta), delta a leaf of this step's graph
        loss = F.cross_entropy(self.net(x), y)
        self.log("original/train_loss", loss, prog_bar=True)
        return loss

    def on_after_backward(self):
        if self.adversary is not None:               # Shafahi Alg. 1: delta from the same backward as theta's grad
            self.adversary.ascend()

    def validation_step(self, batch, idx):
        x, y = batch[0], batch[1]
        self.log("original/val_acc", (self.net(x).argmax(1) == y).float().mean(), prog_bar=True)
        if self.pgd is not None and self.pgd.wants(idx):
            correct = self.pgd.correct(self.net, x, y, seed=idx)
            self.log("original/val_acc_pgd", correct.float().mean(), prog_bar=True, batch_size=len(y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(1, steps), pct_start=0.15)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def config_hash(parts: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable config."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _torch_write_failed(err: RuntimeError) -> bool:
    """torch.save's zip writer reports a failed write (a full disk) as a RuntimeError, not an OSError."""
    text = str(err)
    return any(s in text for s in ("unexpected pos", "PytorchStreamWriter", "file write failed"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(write, path: Path) -> None:
    """``write(tmp)`` into a temp file in ``path``'s folder, then rename it to ``path``. Any failure: the temp
    file is removed, an earlier file at ``path`` is unchanged; a failed write raises ``WriteFailed``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp's 0600 -> what open() would give (a shared cache is readable)
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise WriteFailed.of(err, path) from None
    except RuntimeError as err:
        if not _torch_write_failed(err):
            raise
        full = shutil.disk_usage(path.parent).free < 2 ** 20   # before the temp file is removed
        raise WriteFailed.of(OSError(errno.ENOSPC, "full") if full else err, path) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same folder, then rename: never a half-written file (``_atomic_write``)."""
    _atomic_write(lambda tmp: torch.save(obj, tmp), path)


def atomic_write_text(text: str, path: Path) -> None:
    """``path.write_text(text)`` through a temp file and a rename: an earlier file survives a failed write."""
    _atomic_write(lambda tmp: Path(tmp).write_text(text), path)


def cached_original_path(cache_dir: str | Path, key_parts: dict[str, Any]) -> Path:
    return Path(cache_dir) / "originals" / f"{config_hash(key_parts)}.pt"

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
    adversarial = original.pop("adversarial", None) or {}
    if adversarial.get("kind", "none") != "none":
        # an adversarially trained theta0 is another cache entry; its PGD validation settings change no weight.
        # Plain training leaves the key as it was before this option existed (earlier caches stay valid).
        original["adversarial"] = {k: v for k, v in adversarial.items() if not k.startswith("pgd_")}
    return {"model": model, "data": data, "original": original, "seed": original_seed(cfg)}


def original_seed(cfg: DictConfig) -> int:
    """theta0's seed: ``original.seed`` (e.g. 0 in the Fashion-MNIST experiments, so every fooling seed starts
    from the same theta0), by default the run's ``seed``."""
    seed = cfg.original.get("seed")
    return int(cfg.seed if seed is None else seed)


def original_loaders(cfg: DictConfig, built: Built, accelerator: str) -> tuple[DataLoader, DataLoader]:
    """theta0's train (shuffled by its seed, drop_last) and val loaders; pinned when it trains on CUDA."""
    from interpfool.data.split_loaders import cuda_pinning   # here: interpfool.data imports atomic_save from us
    pin = cuda_pinning(accelerator)
    train = DataLoader(built.data.dataset("train"), batch_size=cfg.original.batch_size, shuffle=True,
                       drop_last=True, generator=torch.Generator().manual_seed(original_seed(cfg)), pin_memory=pin)
    return train, DataLoader(built.data.dataset("val"), batch_size=256, pin_memory=pin)


def original_source(cfg: DictConfig) -> str:
    """Where theta0 will come from, in words (for the run's plan): given weights, the cache, or training now."""
    if cfg.model.get("weights_path"):
        return f"loaded from {cfg.model.weights_path}"
    if cfg.model.get("pretrained"):
        return "pretrained (torchvision's ImageNet weights)"
    path = cached_original_path(cfg.cache_dir, original_key(cfg))
    if path.is_file():
        return f"cached ({path})"
    return f"not cached: trained now for {cfg.original.epochs} epochs (estimate after its first batches) -> {path}"


def read_cached_original(net: nn.Module, path: Path) -> str | None:
    """Load the cached theta0 at ``path`` into ``net``; ``None`` when done, else why the file cannot be used
    (``net`` untouched: the keys and shapes are checked before ``load_state_dict``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated, garbage, not a torch file: all "unreadable"
        return f"unreadable ({reason(err)})"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return f"not a state dict of tensors (a {type(state).__name__})"
    mismatch = state_mismatch(net.state_dict(), state)
    if mismatch:
        return f"not a state dict of this model ({type(net).__name__}: {mismatch})"
    net.load_state_dict(state)
    return None


def _reused(net: nn.Module, path: Path) -> tuple[nn.Module, dict]:
    print(f"original model: reusing cached {path}")
    return net, {"status": "reused", "path": str(path)}


def obtain_original(cfg: DictConfig, built: Built, accelerator: str,
                    callbacks: tuple[L.Callback, ...] = ()) -> tuple[nn.Module, dict]:
    """theta0: pretrained / given weights as built, else the cached trained original, else train and cache it.
    ``callbacks``: extra callbacks of theta0's training (e.g. ``record_maps``), used only when it trains here.
    A cached file that cannot be used is retrained and replaced (never half-loaded); under torchrun / SLURM
    rank 0 does that and the other ranks wait for the new file."""
    net = built.net
    if cfg.model.get("pretrained") or cfg.model.get("weights_path"):
        return net, {"status": "given", "source": cfg.model.get("weights_path") or "torchvision"}
    path = cached_original_path(cfg.cache_dir, original_key(cfg))
    problem, seen = None, dist_env.file_signature(path)   # the file read below (taken before: rank 0 may replace it)
    if path.is_file():
        problem = read_cached_original(net, path)
        if problem is None:
            return _reused(net, path)
    if not dist_env.is_rank_zero():
        # torchrun / SLURM start every rank at once: rank 0 trains and caches theta0, the others load it
        print(f"original model: rank {dist_env.global_rank()} waits for rank 0 to train {path}")
        dist_env.wait_for_file(path, "the original model (theta0)", replacing=seen if problem else None)
        again = read_cached_original(net, path)
        if again is not None:
            raise BadInput(f"cached original {path} written by rank 0 is {again}; delete it and run again")
        return _reused(net, path)
    if problem is not None:
        print(f"original model: cached {path} is {problem}; training it again, the new one replaces the file "
              f"once written")
    print(f"original model: {'none cached' if problem is None else 'no usable one cached'} for this config; "
          f"training it ({cfg.original.epochs} epochs) -> {path}")
    start = time.time()
    seed = original_seed(cfg)
    seed_all(seed)   # initial weights, flip and dropout draws: a function of theta0's seed and config alone,
    # not of what the build drew before (the same cache key must mean the same weights, whatever the run seed)
    net.load_state_dict(instantiate(cfg.model).state_dict())   # fresh initial weights under theta0's seed
    loader, val = original_loaders(cfg, built, accelerator)
    from interpfool.adversarial import ReplayLoader, from_config   # here: light imports for plain runs
    adversary, pgd = from_config(cfg.original.get("adversarial"), built.data)
    if adversary is not None:
        print(f"original model: free adversarial training (Shafahi et al. 2019), eps={adversary.eps:.4g} "
              f"(pixel units), {adversary.replays} replays per batch")
        loader = ReplayLoader(loader, adversary.replays)
    trainer = L.Trainer(max_epochs=cfg.original.epochs, accelerator=accelerator, devices=1, logger=False,
                        deterministic=cfg.trainer.get("deterministic", False), enable_checkpointing=False,
                        enable_model_summary=False, inference_mode=pgd is None,   # PGD needs input gradients
                        callbacks=[RunProgressBar("theta0"), Theta0Estimate(cfg.original.epochs), *callbacks],
                        check_val_every_n_epoch=cfg.original.epochs)
    trainer.fit(ClassifierModule(net, lr=cfg.original.lr, weight_decay=cfg.original.weight_decay, seed=seed,
                                 adversary=adversary, pgd=pgd), loader, val)
    net.eval()
    atomic_save(net.state_dict(), path)
    seconds = time.time() - start
    print(f"original model: trained in {seconds:.0f} s, cached at {path}")
    info = {"status": "trained", "path": str(path), "seconds": seconds}
    return net, info if problem is None else {**info, "replaced_cache": problem}


def original_cache_size(cfg: DictConfig, built: Built) -> int:
    """Number of training images whose theta0 maps the module caches (0: off). Needs data whose training
    batches carry the image index and serve the same image for it every epoch (no augmentation)."""
    if not cfg.get("cache_original_maps", True) or not getattr(built.data, "indexed_train", False):
        return 0
    if not built.fooling.needs_original or built.fooling.classes:
        return 0
    return len(built.data.dataset("train"))
