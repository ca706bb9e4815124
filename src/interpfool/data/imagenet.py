"""ImageNet (ILSVRC2012) in ImageFolder layout, DESIGN.md 2.5.

Layout under ``data.root``::

    root/train/<wnid>/*.JPEG      (e.g. root/train/n02504458/n02504458_10.JPEG)
    root/val/<wnid>/*.JPEG        (the 50,000 validation images sorted into their class folders)

Class index = position of the wnid in the sorted list of class folders, which on the full 1,000-class
set is the standard ILSVRC2012 / torchvision order (386 = n02504458 African elephant, 555 = n03345487
fire engine; checked when ``num_classes=1000``). Transforms (torchvision's ImageNet recipe): train
RandomResizedCrop(image_size) + horizontal flip; val Resize(resize_size) + CenterCrop(image_size) with
resize_size = round(image_size * 256 / 224); ImageNet mean / std. Batches are ``(x, y)`` (no masks).

Everything that can be wrong with the folder (missing root / split / class folders, empty class folders,
train and val classes that differ, an unreadable image) is found when the module is built — before any
training — and raised as one ``ValueError`` line that names the layout expected.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import lightning as L
import torch
from PIL import Image
from torch.utils.data import Dataset

from interpfool.data.split_loaders import SplitLoaders

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMG_EXTENSIONS = (".jpeg", ".jpg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LAYOUT = "expected ImageFolder layout <root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG (e.g. train/n02504458/)"
# Standard ILSVRC2012 indices (sorted wnids) of the classes the paper uses: checked on a 1000-class root.
STANDARD_INDEX = {"n02504458": 386, "n03345487": 555}
CHECK_IMAGES = ("first", "all", "none")
SPLITS = ("train", "val")


class BadDataset(ValueError):
    """A one-line error about the dataset on disk."""


def load_rgb(path: str | Path) -> Image.Image:
    """The image as RGB, or a one-line ``BadDataset`` naming the file."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Exception as err:  # noqa: BLE001 - any decoder failure: the file is not a usable image
        raise BadDataset(f"{path} is not a readable image ({type(err).__name__}); replace or delete it "
                         f"({LAYOUT})") from None


def check_image(path: str | Path) -> None:
    """Decode ``path`` cheaply (JPEG draft mode at reduced scale); ``BadDataset`` if it cannot be read."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (32, 32))
            img.load()
    except Exception as err:  # noqa: BLE001
        raise BadDataset(f"{path} is not a readable image ({type(err).__name__}); replace or delete it "
                         f"({LAYOUT})") from None


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def _images(folder: Path) -> list[str]:
    return sorted(e.path for e in os.scandir(folder)
                  if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS) and not e.name.startswith("."))


def scan_split(root: Path, split: str, per_class: int | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """(sorted class folders, [(file, class index)]) of ``root/split``; one-line ``BadDataset`` when malformed.
    ``per_class``: the first n files (sorted by name) of every class."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise BadDataset(f"data.root={str(root)!r} has no {split}/ folder; {LAYOUT}")
    classes = _class_folders(split_dir)
    if not classes:
        raise BadDataset(f"{split_dir} has no class folders; {LAYOUT}")
    samples: list[tuple[str, int]] = []
    for index, wnid in enumerate(classes):
        files = _images(split_dir / wnid)
        if not files:
            raise BadDataset(f"{split_dir / wnid} has no images ({', '.join(e[1:] for e in IMG_EXTENSIONS[:3])} "
                             f"...); {LAYOUT}")
        samples += [(f, index) for f in (files[:per_class] if per_class else files)]
    return classes, samples


class ImageList(Dataset):
    """(path, label) pairs -> (transformed image, label)."""

    def __init__(self, samples: Sequence[tuple[str, int]], transform):
        self.samples, self.transform = list(samples), transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return self.transform(load_rgb(path)), label


def _check_int(name: str, value, low: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"data.{name}={value!r}; allowed: an integer >= {low}" + (" or null" if allow_none else ""))


class ImageNetDataModule(SplitLoaders, L.LightningDataModule):
    """ILSVRC2012 train / val from ``root`` (module docstring). ``per_class: n`` keeps the first n images of
    every class in both splits; ``check_images``: decode the first image of every class folder (``first``,
    default), every kept image (``all``) or none, when the module is built."""

    splits = SPLITS

    def __init__(self, root: str = "data/imagenet", image_size: int = 224, resize_size: int | None = None,
                 num_classes: int = 1000, per_class: int | None = None, batch_size: int = 32,
                 eval_batch_size: int = 64, num_workers: int = 4, seed: int = 0, check_images: str = "first",
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, **_unused):
        super().__init__()
        _check_int("image_size", image_size, 8)
        _check_int("resize_size", resize_size, image_size, allow_none=True)
        _check_int("num_classes", num_classes, 2)
        _check_int("per_class", per_class, 1, allow_none=True)
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            _check_int(name, value, 1)
        _check_int("num_workers", num_workers, 0)
        if check_images not in CHECK_IMAGES:
            raise ValueError(f"data.check_images={check_images!r}; allowed: {', '.join(CHECK_IMAGES)}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"data.mean/std=({list(mean)}, {list(std)}); allowed: three values each, std > 0")
        self.root = Path(str(root)).expanduser()
        if not self.root.is_dir():
            raise BadDataset(f"data.root={str(root)!r} does not exist; {LAYOUT}")
        self.image_size = image_size
        self.resize_size = resize_size or round(image_size * 256 / 224)
        self.per_class, self.batch_size, self.eval_batch_size = per_class, batch_size, eval_batch_size
        self.num_workers, self.seed = num_workers, seed
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.samples: dict[str, list[tuple[str, int]]] = {}
        classes = None
        for split in SPLITS:
            found, self.samples[split] = scan_split(self.root, split, per_class)
            if classes is not None and found != classes:
                missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
                raise BadDataset(f"{self.root / split} has other class folders than {self.root / 'train'} "
                                 f"(missing: {', '.join(missing[:3]) or '-'}; extra: {', '.join(extra[:3]) or '-'}); "
                                 f"sort the validation images into the same <wnid> folders; {LAYOUT}")
            classes = found
        self.classes = classes
        self.class_to_idx = {wnid: i for i, wnid in enumerate(classes)}
        if len(classes) != num_classes:
            raise BadDataset(f"data.num_classes={num_classes} but {self.root / 'train'} has {len(classes)} class "
                             f"folders; set data.num_classes={len(classes)} or complete the folder ({LAYOUT})")
        self.num_classes = num_classes
        if num_classes == 1000:
            for wnid, index in STANDARD_INDEX.items():
                if self.class_to_idx.get(wnid) != index:
                    raise BadDataset(f"{self.root / 'train'} does not hold the 1000 ILSVRC2012 synsets: {wnid} is at "
                                     f"index {self.class_to_idx.get(wnid)}, expected {index}; {LAYOUT}")
        if check_images != "none":
            for split in SPLITS:
                seen: set[int] = set()
                for path, label in self.samples[split]:
                    if check_images == "all" or label not in seen:
                        check_image(path)
                        seen.add(label)

    # -- transforms -------------------------------------------------------------------------------------
    def transform(self, split: str):
        from torchvision import transforms as T

        tail = [T.ToTensor(), T.Normalize(self.mean, self.std)]
        if split == "train":
            return T.Compose([T.RandomResizedCrop(self.image_size), T.RandomHorizontalFlip(), *tail])
        return T.Compose([T.Resize(self.resize_size), T.CenterCrop(self.image_size), *tail])

    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=img.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=img.device).view(-1, 1, 1)
        return (img - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(-1, 1, 1)
        return (x * std + mean).clamp(0, 1)

    # -- datasets and loaders ---------------------------------------------------------------------------
    def dataset(self, split: str) -> ImageList:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} for ImageNet; allowed: {', '.join(SPLITS)} "
                             f"(the ILSVRC2012 test labels are not public)")
        return ImageList(self.samples[split], self.transform(split))
