"""The typed schema of every setting: dataclasses registered with Hydra's ConfigStore (structured configs).

Each YAML option of a group starts from its schema (``defaults: [schema_<option>, _self_]``) and ``config.yaml`` /
``eval.yaml`` from ``schema/train`` / ``schema/eval``, so Hydra refuses a wrong type or an unknown key while it
composes, before anything runs. Value ranges and choices that hold whatever the other settings are live here too,
as field metadata (``num``, ``integer``, ``choice``, ...), and ``experiment.validate`` checks them all in one walk;
only checks that need the data or the model (a class index below the data's class count, a mask width that fits the
map) stay with the objects that know them.

A new key is a new field here: the schema test (tests/experiment/test_schema.py) walks every leaf of every option and
tries a value of the wrong type and, where the metadata gives a range, one outside it.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

# -- field helpers: a default plus what is allowed (read by experiment.validate and the schema test) -----------------


def integer(default: Any, *, ge: int | None = None, le: int | None = None, nullable: bool = False, **extra) -> Any:
    """An integer setting, optionally bounded (inclusive) or null."""
    return field(default=default, metadata={"kind": "int", "ge": ge, "le": le, "nullable": nullable, **extra})


def num(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
        lt: float | None = None, nullable: bool = False, **extra) -> Any:
    """A finite real setting (inf and NaN are refused), optionally bounded or null."""
    return field(default=default, metadata={"kind": "float", "ge": ge, "gt": gt, "le": le, "lt": lt,
                                            "nullable": nullable, **extra})


def choice(default: Any, options: tuple, *, nullable: bool = False, **extra) -> Any:
    """One of ``options`` (strings), or null where ``nullable``."""
    return field(default=default, metadata={"kind": "choice", "options": tuple(options), "nullable": nullable,
                                            **extra})


def numbers(default: list, *, ge: float | None = None, gt: float | None = None, length: int | None = None,
            nullable: bool = False) -> Any:
    """A list of finite reals."""
    return field(default_factory=lambda: list(default) if default is not None else None,
                 metadata={"kind": "floats", "ge": ge, "gt": gt, "length": length, "nullable": nullable})


def integers(default: list, *, ge: int | None = None, length: int | None = None, min_length: int | None = None) -> Any:
    """A list of integers."""
    return field(default_factory=lambda: list(default),
                 metadata={"kind": "ints", "ge": ge, "length": length, "min_length": min_length})


def interpreter_names(default: list | None, *, nullable: bool = False) -> Any:
    """A list of registered interpreter names (``interpreters.names()``)."""
    return field(default_factory=lambda: list(default) if default is not None else None,
                 metadata={"kind": "interpreters", "nullable": nullable})


def defense_specs(default: list) -> Any:
    """A list of explanation-time defense specs ``name[:value]`` (``interpfool.defenses.parse``)."""
    return field(default_factory=lambda: list(default), metadata={"kind": "defenses", "nullable": False})


# The choices, spelled where the code that reads them defines them (imported lazily by validate would hide a typo
# until a run: these are checked against the code's own constants in tests/experiment/test_schema.py).
SCORES = ("logit", "prob")
NORMALIZATIONS = ("none", "max", "minmax", "absmax")
IG_METHODS = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre")
BASELINES = ("zeros", "black", "blur")
RNGS = ("portable", "torch")
COMPOSITES = ("epsilon_plus", "epsilon_plus_maxprop", "epsilon_plus_addprop", "zennit_epsilon_plus")
MAXPOOL_RULES = ("wta", "proportional")
AVGPOOL_RULES = ("zplus", "norm")
ADD_RULES = ("positive", "proportional")
BN_FIRST_RULES = ("pass", "zplus")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed")   # the maps stay float32 under autocast; true 16/64 casts break it
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp", "single_device")
LOGGER_KINDS = ("wandb", "csv", "none")
WANDB_MODES = ("offline", "online", "disabled")
CHECK_IMAGES = ("first", "all", "none")
TORCHVISION_SETS = ("cifar10", "fashion_mnist")
MASK_KINDS = ("frame", "corner")
JOBS = ("fool", "lerma", "attacks", "adv_fooling")
ADVERSARIAL_KINDS = ("none", "free")
TARGETS = ("label", "pred")
SPLITS = ("train", "val", "test")
SELECT_WEIGHTS = ("best", "last")
ADAM_IMPLEMENTATIONS = ("auto", "fused", "foreach", "for_loop")
ROBUSTNESS_SCALES = ("relative", "absolute")
LERMA_WEIGHTS = ("original", "random")
LERMA_SHIFT_DTYPES = ("float64", "model")
SANITY_MODES = ("both", "cascading", "independent")
ATTACK_METHODS = ("fgsm", "gradient_step", "bim", "pgd", "noise")
ATTACK_FOOLINGS = ("location", "topk", "center_mass")
ATTACK_KEEPS = ("probs", "logits")


# -- model -------------------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    _target_: str = "interpfool.models.build"
    name: str = "small_vgg"                     # the registered model (conf/model/<name>.yaml sets it)
    num_classes: int = integer("${data.num_classes}", ge=2)
    pretrained: bool = False                    # torchvision's ImageNet weights (ImageNet-sized models only)
    weights_path: Optional[str] = None          # a state dict to start from instead of a cached / trained theta0
    target_layer: Optional[str] = None          # the T layer of layer-level maps; null: the model's own cut


@dataclass
class SmallVGGConfig(ModelConfig):
    name: str = "small_vgg"
    width: int = integer(16, ge=1)


@dataclass
class SmallResNetConfig(ModelConfig):
    name: str = "small_resnet"
    width: int = integer(16, ge=1)
    blocks: List[int] = integers([1, 1, 2], ge=1, min_length=1)


@dataclass
class SmallDenseNetConfig(ModelConfig):
    name: str = "small_densenet"
    width: int = integer(24, ge=1)
    growth: int = integer(12, ge=1)
    layers: int = integer(4, ge=1)
    bn_size: int = integer(4, ge=1)


# -- data --------------------------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    _target_: str = "interpfool.data.SyntheticDataModule"
    num_classes: int = integer(8, ge=2)
    seed: int = integer("${seed}", ge=0)
    batch_size: int = integer(32, ge=1)
    eval_batch_size: int = integer(100, ge=1)
    num_workers: int = integer(0, ge=0)


@dataclass
class SyntheticDataConfig(DataConfig):
    image_size: int = integer(64, ge=16)
    clutter: int = integer(6, ge=0)
    train_size: int = integer(4000, ge=1)
    val_size: int = integer(400, ge=1)
    test_size: int = integer(400, ge=1)
    mean: float = num(0.5)
    std: float = num(0.25, gt=0)
    c1: int = integer(0, ge=0)
    c2: int = integer(1, ge=0)
    collage_train_size: int = integer(0, ge=0)
    collage_val_size: int = integer(0, ge=0)


@dataclass
class FashionMNISTDataConfig(DataConfig):
    _target_: str = "interpfool.data.FashionMNISTDataModule"
    root: Optional[str] = None
    download: bool = True
    image_size: Optional[int] = integer(None, ge=8, nullable=True)
    num_classes: int = integer(10, ge=10, le=10)
    train_size: Optional[int] = integer(None, ge=1, nullable=True)
    val_size: int = integer(5000, ge=1, le=59999)
    test_size: Optional[int] = integer(None, ge=1, le=10000, nullable=True)
    split_seed: int = integer(0, ge=0)
    mask_threshold: int = integer(8, ge=0, le=254)
    batch_size: int = integer(64, ge=1)
    eval_batch_size: int = integer(256, ge=1)
    c1: int = integer(0, ge=0, le=9)
    c2: int = integer(1, ge=0, le=9)
    collage_train_size: int = integer(0, ge=0)
    collage_val_size: int = integer(0, ge=0)


@dataclass
class ImageNetDataConfig(DataConfig):
    _target_: str = "interpfool.data.ImageNetDataModule"
    root: str = "data/imagenet"
    image_size: int = integer(224, ge=8)
    resize_size: Optional[int] = integer(None, ge=8, nullable=True)
    num_classes: int = integer(1000, ge=2)
    per_class: Optional[int] = integer(None, ge=1, nullable=True)
    check_images: str = choice("first", CHECK_IMAGES)
    batch_size: int = integer(32, ge=1)
    eval_batch_size: int = integer(64, ge=1)
    num_workers: int = integer(4, ge=0)


@dataclass
class CollageDataConfig(ImageNetDataConfig):
    _target_: str = "interpfool.data.CollageDataModule"
    c1: Any = 386                               # a class index or a wnid folder name (checked against the data)
    c2: Any = 555
    collage_train_size: int = integer(1100, ge=0)
    collage_val_size: int = integer(200, ge=0)
    cache_dir: str = "${cache_dir}"


@dataclass
class TorchvisionDataConfig(DataConfig):
    _target_: str = "interpfool.data.TorchvisionDataModule"
    name: str = choice("cifar10", TORCHVISION_SETS)
    root: str = "data/torchvision"
    download: bool = True
    image_size: Optional[int] = integer(None, ge=8, nullable=True)
    num_classes: int = integer(10, ge=10, le=10)
    flip: bool = True
    batch_size: int = integer(64, ge=1)
    eval_batch_size: int = integer(256, ge=1)
    num_workers: int = integer(2, ge=0)


# -- fooling (Heo et al. 2019, Sec. 3.2) -------------------------------------------------------------------------


@dataclass
class PenaltyConfig:
    _target_: str = "interpfool.fooling.penalties.LocationFooling"
    interval: List[float] = numbers([0.0, 0.2], length=2)    # test-loss interval that counts as fooled (FSR)


@dataclass
class LocationPenaltyConfig(PenaltyConfig):
    mask: str = "frame"                         # frame | corner | a .pt / .npy mask file (checked when built)
    width: Optional[int] = integer(None, ge=1, nullable=True)


@dataclass
class TopKPenaltyConfig(PenaltyConfig):
    _target_: str = "interpfool.fooling.penalties.TopKFooling"
    k: float = num(10, gt=0, le=100)            # percent of the map's cells
    interval: List[float] = numbers([0.0, 0.3], length=2)


@dataclass
class CenterMassPenaltyConfig(PenaltyConfig):
    _target_: str = "interpfool.fooling.penalties.CenterMassFooling"
    interval: List[float] = numbers([0.1, 1.0], length=2)


@dataclass
class ActivePenaltyConfig(PenaltyConfig):
    _target_: str = "interpfool.fooling.penalties.ActiveFooling"
    c1: int = integer("${data.c1}", ge=0)
    c2: int = integer("${data.c2}", ge=0)
    interval: List[float] = numbers([0.5, 2.0], length=2)


@dataclass
class FoolingConfig:
    name: str = "location"
    penalty: Any = None
    lam: float = num(10.0, ge=0)                # lambda of CE + lambda * penalty
    lr: float = num(1e-3, gt=0)                 # Adam's learning rate
    adam: str = choice("auto", ADAM_IMPLEMENTATIONS)   # torch's Adam: auto = fused on a GPU, default on the CPU


@dataclass
class LocationFoolingConfig(FoolingConfig):
    penalty: LocationPenaltyConfig = field(default_factory=LocationPenaltyConfig)


@dataclass
class TopKFoolingConfig(FoolingConfig):
    name: str = "topk"
    penalty: TopKPenaltyConfig = field(default_factory=TopKPenaltyConfig)


@dataclass
class CenterMassFoolingConfig(FoolingConfig):
    name: str = "center_mass"
    penalty: CenterMassPenaltyConfig = field(default_factory=CenterMassPenaltyConfig)
    lam: float = num(0.25, ge=0)
    lr: float = num(2e-4, gt=0)


@dataclass
class ActiveFoolingConfig(FoolingConfig):
    name: str = "active"
    penalty: ActivePenaltyConfig = field(default_factory=ActivePenaltyConfig)


# -- interpreters (DESIGN.md 2.1) --------------------------------------------------------------------------------


@dataclass
class InterpConfig:
    _target_: str = "interpfool.interpreters.gradient.SimpleGrad"
    _partial_: bool = True
    score: str = choice("logit", SCORES)
    normalize: Optional[str] = choice(None, NORMALIZATIONS, nullable=True)


@dataclass
class LayerInterpConfig(InterpConfig):
    layer: Optional[str] = None                 # null: the model's target layer (a cut, DESIGN.md 2.1)


@dataclass
class GradCAMPlusPlusConfig(LayerInterpConfig):
    eps: float = num(1e-6, gt=0)


@dataclass
class PathConfig(InterpConfig):
    steps: int = integer(50, ge=1)
    mean: List[float] = numbers([0.485, 0.456, 0.406])
    std: List[float] = numbers([0.229, 0.224, 0.225], gt=0)
    blur_sigma: float = num(5.0, gt=0)
    chunk_size: Optional[int] = integer(None, ge=1, nullable=True)


@dataclass
class IGConfig(PathConfig):
    method: str = choice("riemann_right", IG_METHODS)
    baseline: Any = "zeros"                     # zeros | black | blur | a number (checked when built)


@dataclass
class RSIGradCAMConfig(PathConfig):
    layer: Optional[str] = None
    score: str = choice("prob", SCORES)
    baseline: Any = "black"
    positive_grads: bool = False


@dataclass
class SmoothGradConfig(InterpConfig):
    n: int = integer(50, ge=1)
    sigma: float = num(0.15, ge=0)
    seed: Optional[int] = integer(None, nullable=True)
    rng: str = choice("portable", RNGS)
    chunk_size: Optional[int] = integer(None, ge=1, nullable=True)


@dataclass
class LRPConfig(InterpConfig):
    composite: str = choice("epsilon_plus", COMPOSITES)
    maxpool: Optional[str] = choice(None, MAXPOOL_RULES, nullable=True)
    avgpool: Optional[str] = choice(None, AVGPOOL_RULES, nullable=True)
    add: Optional[str] = choice(None, ADD_RULES, nullable=True)
    bn_first: Optional[str] = choice(None, BN_FIRST_RULES, nullable=True)
    epsilon: Optional[float] = num(None, ge=0, nullable=True)
    stabilizer: Optional[float] = num(None, gt=0, nullable=True)


@dataclass
class LRPTConfig(LRPConfig):
    layer: Optional[str] = None


# -- trainer, logger ---------------------------------------------------------------------------------------------


@dataclass
class TrainerConfig:
    """Keyword arguments of Lightning's Trainer for the fooling run."""
    accelerator: str = choice("cpu", ACCELERATORS)
    devices: Any = field(default=1, metadata={"kind": "devices"})   # n >= 1, -1 (all), [indices], or auto
    num_nodes: int = integer(1, ge=1)
    strategy: str = choice("auto", STRATEGIES)
    sync_batchnorm: bool = False
    precision: str = choice("32-true", PRECISIONS)
    deterministic: bool = True
    max_steps: int = integer(800, ge=1)
    val_check_interval: int = integer(100, ge=1)
    log_every_n_steps: int = integer(10, ge=1)

    @staticmethod
    def extra_keys() -> set[str]:
        """Other Trainer arguments a user may add (``+trainer.gradient_clip_val=1``); Lightning checks their values.
        The run sets the rest itself."""
        import inspect

        import lightning as L
        own = {"self", "logger", "callbacks", "inference_mode", "check_val_every_n_epoch", "num_sanity_val_steps",
               "default_root_dir", "enable_model_summary", "use_distributed_sampler", "max_epochs"}
        return set(inspect.signature(L.Trainer.__init__).parameters) - own


@dataclass
class LoggerConfig:
    kind: str = choice("csv", LOGGER_KINDS)


@dataclass
class WandbLoggerConfig(LoggerConfig):
    kind: str = choice("wandb", LOGGER_KINDS)
    project: str = "interpfool"
    mode: str = choice("offline", WANDB_MODES)
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)


# -- adversarial training (Heo et al. 2019 Sec. 5, Figure 4c; Shafahi et al. 2019) ------------------------------


@dataclass
class AdversarialConfig:
    """Free adversarial training (``interpfool.adversarial.free``): ``kind: free`` replays each minibatch ``replays``
    times with a persistent perturbation of L-inf radius ``eps`` (pixel units, [0, 1] images), step ``step`` (null:
    eps, Shafahi Alg. 1). Validation then also logs PGD top-1: ``pgd_steps`` steps of ``pgd_alpha`` (null:
    2.5 eps / steps, Madry) in the ``pgd_eps`` ball (null: eps), on the first ``pgd_batches`` batches (null: all)."""
    kind: str = choice("none", ADVERSARIAL_KINDS)
    replays: int = integer(4, ge=1)
    eps: float = num(0.03137254901960784, ge=0, le=1)     # 8 / 255
    step: Optional[float] = num(None, ge=0, nullable=True)
    pgd_eps: Optional[float] = num(None, ge=0, le=1, nullable=True)
    pgd_steps: int = integer(10, ge=1)
    pgd_alpha: Optional[float] = num(None, gt=0, nullable=True)
    pgd_batches: Optional[int] = integer(None, ge=1, nullable=True)


@dataclass
class FreeAdversarialConfig(AdversarialConfig):
    kind: str = choice("free", ADVERSARIAL_KINDS)


@dataclass
class AdvFoolingConfig:
    """``experiment=adv_fooling`` (``jobs.adv_fooling``): phase 2, free adversarial training from theta0 (AdamW at
    ``lr`` with a one-cycle schedule over ``steps`` optimizer steps = replays, validated every ``val_every``
    steps); phase 3 is the fooling run (``fooling``, ``trainer``) with ``adversarial`` kept on. The test-split
    PGD top-1 of each phase's model is measured on the first ``pgd_images`` test images (null: all), the figure
    shows the maps of ``figure_images`` test images."""
    steps: int = integer(200, ge=1)
    lr: float = num(1e-3, gt=0)
    weight_decay: float = num(1e-4, ge=0)
    val_every: int = integer(50, ge=1)
    pgd_images: Optional[int] = integer(None, ge=1, nullable=True)
    figure_images: int = integer(6, ge=1)


# -- the top level -----------------------------------------------------------------------------------------------


@dataclass
class OriginalConfig:
    """Training of theta0 when no pretrained weights are given."""
    epochs: int = integer(20, ge=1)
    lr: float = num(3e-3, gt=0)
    weight_decay: float = num(1e-4, ge=0)
    batch_size: int = integer(32, ge=1)
    seed: Optional[int] = integer(None, ge=0, nullable=True)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)   # kind: free -> adversarial theta0


@dataclass
class BackendsConfig:
    allow_tf32: bool = False
    cudnn_benchmark: bool = False
    reuse_host_memory: bool = True      # glibc malloc keeps large blocks in its heap (experiment.host_memory)


@dataclass
class SelectConfig:
    weights: str = choice("best", SELECT_WEIGHTS)
    max_top1_drop: float = num(2.0, ge=0)


@dataclass
class AOPCConfig:
    images: int = integer(200, ge=0)
    cell: int = integer(4, ge=1)
    steps: int = integer(100, ge=1)
    noise_std: float = num(0.3, ge=0)
    seed: int = integer(0, ge=0)
    chunk: int = integer(1024, ge=1)
    interpreter: Optional[str] = None


@dataclass
class RobustnessConfig:
    sigmas: List[float] = numbers([0.0, 0.02, 0.05, 0.1, 0.2], ge=0)
    scale: str = choice("relative", ROBUSTNESS_SCALES)
    trials: int = integer(2, ge=1)
    seed: int = integer(0, ge=0)
    interpreters: Optional[List[str]] = interpreter_names(None, nullable=True)


@dataclass
class SanityConfig:
    """``eval.sanity``: the parameter-randomisation sanity checks (Adebayo et al. 2018) of theta0 and theta*."""
    enabled: bool = False
    mode: str = choice("both", SANITY_MODES)
    images: int = integer(32, ge=1)
    interpreters: List[str] = interpreter_names(["gradcam", "gradcampp", "simpleg", "gradinput", "smoothgrad",
                                                 "ig", "lrpT"])
    control: bool = True                        # the edge detector of the input: the check's negative control
    seed: int = integer(0, ge=0)
    figure_images: int = integer(2, ge=0)


@dataclass
class EvalConfig:
    split: str = choice("auto", ("auto", *SPLITS))
    interpreters: List[str] = interpreter_names(["gradcam"])
    figure_images: int = integer(8, ge=0)
    defenses: List[str] = defense_specs([])     # explanation-time defenses of the fooled interpreter
    # noise / path defenses without a value average budget // s maps of a method that draws s samples itself
    # (SmoothGrad's n, IG's steps), so each defended map costs about `budget` gradients; null: 16 maps of any method
    integration_budget: Optional[int] = integer(None, ge=1, nullable=True)
    # name -> keyword arguments: that interpreter is measured as registry-built with them, even when it is the fooled
    # one (e.g. {smoothgrad: {n: 16}}: a run fooled through SmoothGrad with n=8 is measured with n=16 and fresh noise)
    interp_kwargs: Dict[str, Any] = field(default_factory=dict)
    images: Optional[int] = integer(None, ge=1, nullable=True)   # the first n images of the split (null: all)
    similarity: bool = True     # map similarity to theta0 and output fidelity in the report (Kendall's tau: costly)


@dataclass
class EvalSuiteConfig(EvalConfig):
    """``eval.py``'s ``eval``: the training config's plus AOPC, parameter-noise robustness and sanity checks."""
    split: str = choice("val", SPLITS)
    aopc: AOPCConfig = field(default_factory=AOPCConfig)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    sanity: SanityConfig = field(default_factory=SanityConfig)


@dataclass
class LermaConfig:
    """``experiment=lerma_presoftmax`` (Lerma & Lucas 2023)."""
    k: float = num(10.0)
    k_by_model: Dict[str, float] = field(default_factory=dict)
    position: List[int] = integers([0, 0], ge=0, length=2)
    shift_dtype: str = choice("float64", LERMA_SHIFT_DTYPES)
    weights: str = choice("original", LERMA_WEIGHTS)
    split: str = choice("val", SPLITS)
    images: int = integer(64, ge=1)
    figure_images: int = integer(6, ge=0)
    interpreters: List[str] = interpreter_names(["gradcam", "simplegT", "lrp", "lrpT"])
    post_interpreters: Optional[List[str]] = interpreter_names(None, nullable=True)
    interp_kwargs: Dict[str, Any] = field(default_factory=dict)
    corner_threshold: float = num(0.9, gt=0, le=1)
    float64_post: bool = True


@dataclass
class FoolingIntervalsConfig:
    """FSR interval R of each fooling's test (as the synthetic / Fashion-MNIST fooling experiments use)."""
    location: List[float] = numbers([0.0, 0.2], length=2)
    topk: List[float] = numbers([0.0, 0.1], length=2)
    center_mass: List[float] = numbers([0.1, 1.0], length=2)


@dataclass
class ExplanationAttackConfig:
    """``attacks.explanation``: the input-side explanation attacks (Dombrowski et al. 2019; Ghorbani et al. 2019)."""
    foolings: List[str] = field(default_factory=lambda: list(ATTACK_FOOLINGS))
    eps: float = num(8 / 255, gt=0)
    steps: int = integer(20, ge=1)
    alpha_factor: float = num(2.5, gt=0)
    gamma: float = num(1.0, ge=0)
    keep: str = choice("probs", ATTACK_KEEPS)
    softplus_beta: Optional[float] = num(10.0, gt=0, nullable=True)
    select: str = choice("best", ("best", "last"))
    intervals: FoolingIntervalsConfig = field(default_factory=FoolingIntervalsConfig)


@dataclass
class AttacksConfig:
    """``experiment=attacks``: input attacks on theta0 against eps, and input vs model manipulation."""
    images: int = integer(200, ge=1)
    batch_size: int = integer(100, ge=1)
    eps: List[float] = numbers([0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255], ge=0)
    methods: List[str] = field(default_factory=lambda: list(ATTACK_METHODS))
    steps: int = integer(10, ge=1)
    alpha_factor: float = num(2.5, gt=0)
    clamp: List[float] = numbers([0.0, 1.0], length=2)
    figure_eps: float = num(8 / 255, gt=0)
    figure_images: int = integer(4, ge=1)
    explanation: ExplanationAttackConfig = field(default_factory=ExplanationAttackConfig)
    fooled_ckpt: Optional[str] = None
    reference: Optional[str] = "auto"


@dataclass
class RecordMapsConfig:
    """``record_maps``: maps of fixed validation images recorded while theta0 trains and while it is fooled."""
    every: int = integer(0, ge=0)               # optimizer steps between recordings; 0 = off
    images: int = integer(8, ge=1)              # the first N images of the validation split
    interpreter: Optional[str] = None           # a registered interpreter; null = the run's interpreter


@dataclass
class TrainConfig:
    """``config.yaml``: the fooling job (and the lerma job)."""
    model: Any = None
    data: Any = None
    fooling: Any = None
    interp: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = None
    job: str = choice("fool", JOBS)
    seed: int = integer(0, ge=0)
    target: str = choice("label", TARGETS)
    cache_dir: str = ".cache/interpfool"
    original: OriginalConfig = field(default_factory=OriginalConfig)
    checkpoint_every: int = integer(200, ge=1)
    ckpt_path: Optional[str] = None
    cache_original_maps: bool = True
    nan_check_every: int = integer(1, ge=0)
    backends: BackendsConfig = field(default_factory=BackendsConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    record_maps: RecordMapsConfig = field(default_factory=RecordMapsConfig)
    lerma: Optional[LermaConfig] = None
    attacks: Optional[AttacksConfig] = None
    adversarial: Any = None                     # conf/adversarial/: none | free (the fooling run's own training)
    adv_fooling: Optional[AdvFoolingConfig] = None
    cells: Optional[Dict[str, Any]] = None      # per-cell lr / lambda tables of a sweep (sweeps/table4_cells.yaml)


@dataclass
class EvalRunConfig(TrainConfig):
    """``eval.yaml``: the evaluation suite on fooled checkpoints."""
    ckpt: Any = None                            # fooled.pt, its run folder, or a list of them
    original_ckpt: Optional[str] = None
    eval: EvalSuiteConfig = field(default_factory=EvalSuiteConfig)


@dataclass
class AuditThresholds:
    """Flags of the audit (``jobs/audit.py``; conf/audit.yaml says what each means, docs/defenses_audit.md how
    they were set).
    The first three apply without a reference; with one, ``change`` from the reference's own values."""
    uniform_logit_share: float = num(0.5, gt=0, lt=1)
    pre_post_spearman: float = num(0.2, ge=-1, le=1)
    class_spearman: float = num(0.95, ge=-1, le=1)
    change: float = num(0.3, gt=0, le=2)
    fsr_gain: float = num(0.5, ge=0, le=1)               # FSR against the reference minus its own base rate above
    top1_agreement: float = num(0.9, ge=0, le=1)         # outputs agree at least this much ...
    map_spearman: float = num(0.5, ge=-1, le=1)          # ... while the maps agree less than this
    aopc_p: float = num(0.01, gt=0, lt=1)                # one-sided p of MoRF AOPC below random (jobs/audit.aopc_below)


@dataclass
class AuditConfig:
    """``python eval.py audit``: evidence of manipulation on one model, optionally against a reference."""
    reference: Optional[str] = None             # null | original (the cached theta0 of the run's config) | a state dict
    interpreter: str = "gradcam"                # a registered interpreter (checked when the audit builds it)
    images: int = integer(200, ge=1)
    presoftmax_k: Optional[float] = num(None, nullable=True)   # audit the model with a Lerma & Lucas shift applied
    presoftmax_position: List[int] = integers([0, 0], ge=0, length=2)
    aopc: AOPCConfig = field(default_factory=lambda: AOPCConfig(images=100))
    thresholds: AuditThresholds = field(default_factory=AuditThresholds)


@dataclass
class AuditRunConfig(EvalRunConfig):
    """``audit.yaml``: the eval config plus the audit's settings."""
    audit: AuditConfig = field(default_factory=AuditConfig)


GROUP_SCHEMAS = {
    "model": {"small_vgg": SmallVGGConfig, "small_resnet": SmallResNetConfig, "small_densenet": SmallDenseNetConfig,
              "vgg19": ModelConfig, "resnet50": ModelConfig, "densenet121": ModelConfig},
    "data": {"synthetic": SyntheticDataConfig, "fashion_mnist": FashionMNISTDataConfig, "imagenet": ImageNetDataConfig,
             "collage": CollageDataConfig, "cifar10": TorchvisionDataConfig},
    "fooling": {"location": LocationFoolingConfig, "topk": TopKFoolingConfig, "center_mass": CenterMassFoolingConfig,
                "active": ActiveFoolingConfig},
    "interp": {"gradcam": LayerInterpConfig, "gradcam_pos": LayerInterpConfig, "gradcampp": GradCAMPlusPlusConfig,
               "simpleg": InterpConfig, "simplegT": LayerInterpConfig, "gradinput": InterpConfig, "ig": IGConfig,
               "smoothgrad": SmoothGradConfig, "smoothgrad_n8": SmoothGradConfig, "ig_steps8": IGConfig,
               "smoothgrad_n4": SmoothGradConfig, "ig_steps4": IGConfig, "rsigradcam_steps4": RSIGradCAMConfig,
               "rsigradcam": RSIGradCAMConfig, "rsigradcam_steps8": RSIGradCAMConfig, "lrp": LRPConfig, "lrpT": LRPTConfig},
    "trainer": {"cpu": TrainerConfig, "gpu": TrainerConfig, "ddp": TrainerConfig},
    "logger": {"csv": LoggerConfig, "wandb": WandbLoggerConfig},
    "adversarial": {"none": AdversarialConfig, "free": FreeAdversarialConfig},
}


def typed(key: str, node: Any) -> Any:
    """``node`` (a plain section, e.g. from a run's saved config.yaml) over the schema it belongs to at top-level
    ``key``: a group's option is recognised by its ``_target_`` (and ``name``, ``kind``) where several share one.
    Raises ``ValueError`` when no schema takes it."""
    from omegaconf import DictConfig, OmegaConf
    if not isinstance(node, DictConfig):
        return node
    if key in GROUP_SCHEMAS:
        last = None
        conf = Path(__file__).resolve().parents[3] / "conf" / key
        for option, cls in GROUP_SCHEMAS[key].items():
            shipped = OmegaConf.load(conf / f"{option}.yaml")       # the option's own _target_ / name / kind
            if any(k in node and k in shipped and node[k] != shipped[k] for k in ("_target_", "kind", "name")):
                continue
            try:
                return OmegaConf.merge(OmegaConf.structured(cls), node)
            except Exception as err:  # noqa: BLE001 - try the next option of the group
                last = err
        raise ValueError(f"{key}: no option of conf/{key}/ takes these settings ({' '.join(str(last).split()[:12])})")
    cls = typing.get_type_hints(TrainConfig).get(key)
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return OmegaConf.merge(OmegaConf.structured(cls), node)
    return node


def register() -> None:
    """Store every schema with Hydra's ConfigStore (idempotent): ``schema/train``, ``schema/eval`` and, per group,
    ``<group>/schema_<option>`` that the option's YAML file names first in its defaults list."""
    cs = ConfigStore.instance()
    cs.store(group="schema", name="train", node=TrainConfig)
    cs.store(group="schema", name="eval", node=EvalRunConfig)
    cs.store(group="schema", name="audit", node=AuditRunConfig)
    for group, options in GROUP_SCHEMAS.items():
        for option, node in options.items():
            cs.store(group=group, name=f"schema_{option}", node=node)


register()
