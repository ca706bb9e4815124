"""Fashion-MNIST from the original idx files, offline (DESIGN.md 2.5): ``data=fashion_mnist``.

Files: the four idx files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``), gzip-compressed (``.gz``) or raw, in ``data.root`` or in ``data.root/FashionMNIST/raw/``
(torchvision's layout). Debian's package ``dataset-fashion-mnist`` installs them in
``/usr/share/datasets/fashion-mnist`` (recompressed, so torchvision's md5 check rejects them; the idx headers are
read and checked here instead: magic number, image side, counts, payload length, label range).
``data.root=null`` means that folder when it exists, else ``data/fashion_mnist``. With the files missing and
``data.download=true``, torchvision downloads them into ``data.root/FashionMNIST/raw/``.

Splits: ``train`` / ``val`` are a seeded permutation of the official 60,000 training images (55,000 / 5,000 by
default). The permutation uses ``split_seed`` (default 0), a *data* seed independent of the run seed, so every run
(any ``seed=``) validates and selects on the same 5,000 images and trains on the same 55,000; the run seed only
orders the batches. ``test`` is the official 10,000. ``train_size`` / ``test_size`` cap a split (the first n of it;
null = all); the val set does not move when ``train_size`` changes.

Images: 28 x 28 grey repeated to 3 channels, normalised with the training set's mean 0.2860 / std 0.3530;
``image_size`` resizes (bilinear, antialiased when shrinking; null = native 28). The uint8 arrays are read
once per process (about 1 s, the gzip decompression) and converted to float per image.

Masks: the garment silhouette, ``pixel > mask_threshold`` (uint8 units, default 8). Fashion-MNIST's
background is exactly 0, but ``pixel > 0`` also keeps faint specks: on the training set 68% of the images have
an isolated foreground pixel (no foreground neighbour; values 1-4 mostly) and a mean of 4.8 connected parts per
image. ``> 8`` keeps 46.9% of the pixels as object (``> 0``: 49.8%), with isolated pixels in 9.5% of the images
and 1.16 parts per image. After a resize the mask is taken on the resized image (its value > threshold / 255).

Batches: val / test ``(x, y, mask)``; train ``(x, y, mask, index)`` with no augmentation, the same image for an
index every epoch (theta0's map cache; theta0's own training adds a random flip itself), in a seeded, resumable
order (``ResumableLoader``).

Collages (active fooling, Heo et al. Sec. 3.2.2): ``collage_dataloader(split)`` yields ``(x, masks [B, 2, S, S])``.
A collage is S x S (S = image_size): a 2x2 grid of tiles of side S // 2, two of them one of each class c1 / c2,
the other two drawn from {c1, c2}, in a random order; each tile is a random image of its class shrunk to the tile
(at native 28: 14 x 14), the masks are the tiles' silhouettes per class. Train collages use train-split images,
held-out (``val``) collages test-split images, so no image of a held-out collage is in a train collage or in
theta0's training set. Seeded by ``split_seed`` (the same collages for every run).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from interpfool.data.split_loaders import IndexedTrainAndCollageLoaders

DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
LOCAL_ROOT = "data/fashion_mnist"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
OFFICIAL_COUNTS = {"train": 60_000, "test": 10_000}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049          # idx: 0x0000 0803 (ubyte, 3 dims), 0x0000 0801 (ubyte, 1 dim)
SIDE = 28
MEAN, STD = 0.2860, 0.3530                      # of the 60,000 training images, in [0, 1]
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SPLITS = ("train", "val", "test")
_ALL_FILES = ", ".join(name for pair in FILES.values() for name in pair)
HOW_TO_GET = (f"on Debian/Ubuntu run apt-get install dataset-fashion-mnist (installs them in {DEBIAN_ROOT}), "
              f"or set data.download=true where there is internet, or put the four idx files ({_ALL_FILES}; "
              f".gz or raw) in data.root or data.root/FashionMNIST/raw/")


class FashionMNISTError(FileNotFoundError):
    """Missing or malformed idx files; the message is one line naming data.root."""


def default_root() -> str:
    return DEBIAN_ROOT if Path(DEBIAN_ROOT).is_dir() else LOCAL_ROOT


def find_file(root: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` in root, then in root/FashionMNIST/raw (raw before .gz in each folder)."""
    for folder in (root, root / "FashionMNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open      # gzip by magic bytes, whatever the suffix
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as err:
        raise FashionMNISTError(f"{path}: not a readable {'gzip' if opener is gzip.open else 'idx'} file "
                                f"({type(err).__name__}: {' '.join(str(err).split())}); expected an idx file, "
                                f"gzip-compressed or raw") from None


def read_idx(path: Path, magic: int, count: int | None = None) -> np.ndarray:
    """The uint8 array of an idx file (images: magic 2051, [N, 28, 28]; labels: 2049, [N]); checks the header
    against ``magic``, the image side, ``count`` (when given) and the payload length. One-line errors."""
    data = _read_bytes(path)
    ndim = 3 if magic == IMAGE_MAGIC else 1
    kind = "images" if ndim == 3 else "labels"
    if len(data) < 4 + 4 * ndim:
        raise FashionMNISTError(f"{path}: {len(data)} bytes, too short for an idx header; expected {kind} "
                                f"(magic {magic})")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise FashionMNISTError(f"{path}: magic number {found}, expected {magic} ({kind} idx file)")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if ndim == 3 and dims[1:] != [SIDE, SIDE]:
        raise FashionMNISTError(f"{path}: images of {dims[1]}x{dims[2]}, expected {SIDE}x{SIDE}")
    if count is not None and dims[0] != count:
        raise FashionMNISTError(f"{path}: header says {dims[0]} {kind}, expected {count}")
    payload = len(data) - 4 - 4 * ndim
    want = int(np.prod(dims))
    if payload != want:
        raise FashionMNISTError(f"{path}: {payload} data bytes for {dims[0]} {kind}, expected {want} "
                                f"(truncated or padded file)")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


_LOADED: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}   # files' (path, size, mtime) -> arrays, per process


def load_split(root: Path, part: str, shown_root: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of the official ``part`` (train | test) under root."""
    paths = []
    for stem in FILES[part]:
        path = find_file(root, stem)
        if path is None:
            raise FashionMNISTError(f"data=fashion_mnist: {stem}[.gz] not found in data.root={shown_root} "
                                    f"(nor in its FashionMNIST/raw/); {HOW_TO_GET}")
        paths.append(path)
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    if key not in _LOADED:
        count = OFFICIAL_COUNTS[part]
        try:
            images = read_idx(paths[0], IMAGE_MAGIC, count)
            labels = read_idx(paths[1], LABEL_MAGIC, count)
        except FashionMNISTError as err:
            raise FashionMNISTError(f"data=fashion_mnist, data.root={shown_root}: {err}") from None
        if labels.size and labels.max() >= len(CLASSES):
            raise FashionMNISTError(f"data=fashion_mnist, data.root={shown_root}: {paths[1]} has label "
                                    f"{int(labels.max())}, expected 0..{len(CLASSES) - 1}")
        _LOADED[key] = (torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))
    return _LOADED[key]


def _download(root: Path) -> None:
    """torchvision's downloader into root/FashionMNIST/raw/ (network; not exercised by the tests)."""
    import torchvision.datasets as tvd

    for train in (True, False):
        tvd.FashionMNIST(str(root), train=train, download=True)


def _resize(img01: torch.Tensor, size: int) -> torch.Tensor:
    """[..., H, W] float -> [..., size, size], bilinear (antialiased when shrinking)."""
    if img01.shape[-1] == size:
        return img01
    lead = img01.shape[:-2]
    out = F.interpolate(img01.reshape(-1, 1, *img01.shape[-2:]), size=(size, size), mode="bilinear",
                        align_corners=False, antialias=size < img01.shape[-1])
    return out.reshape(*lead, size, size).clamp_(0, 1)


class FashionMNISTSplit(Dataset):
    """uint8 images + labels -> (x [3, S, S] normalised, y, mask [S, S] bool[, index])."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: int, threshold: int,
                 mean: float = MEAN, std: float = STD, indexed: bool = False):
        self.images, self.labels, self.size, self.threshold = images, labels, size, threshold
        self.mean, self.std, self.indexed = mean, std, indexed

    def __len__(self) -> int:
        return self.images.shape[0]

    def with_index(self) -> "FashionMNISTSplit":
        return FashionMNISTSplit(self.images, self.labels, self.size, self.threshold, self.mean, self.std, True)

    def __getitem__(self, i: int):
        raw = self.images[i]
        if self.size == SIDE:
            img, mask = raw.float().div_(255), raw > self.threshold
        else:
            img = _resize(raw.float().div_(255), self.size)
            mask = img > self.threshold / 255
        x = img.sub_(self.mean).div_(self.std).expand(3, self.size, self.size)
        return (x, self.labels[i], mask, i) if self.indexed else (x, self.labels[i], mask)


class CollageSet(Dataset):
    """Built collages: grey [n, S, S] in [0, 1] and masks [n, 2, S, S] -> (x [3, S, S] normalised, masks)."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, mean: float = MEAN, std: float = STD):
        self.images, self.masks, self.mean, self.std = images, masks, mean, std

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        x = ((self.images[i] - self.mean) / self.std).expand(3, *self.images.shape[-2:])
        return x, self.masks[i]


def build_collages(pool_c1: torch.Tensor, pool_c2: torch.Tensor, n: int, size: int, threshold: int,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` collages of side ``size`` from uint8 images [N, 28, 28] of c1 and of c2: (grey [n, S, S] in [0, 1],
    masks [n, 2, S, S] bool: the silhouettes of the c1 tiles and of the c2 tiles). Seeded."""
    half = size // 2
    gen = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, size, size)
    masks = torch.zeros(n, 2, size, size, dtype=torch.bool)
    pools = (pool_c1, pool_c2)
    for i in range(n):
        kinds = [0, 1] + torch.randint(0, 2, (2,), generator=gen).tolist()   # both classes present
        order = torch.randperm(4, generator=gen).tolist()
        for slot, k in enumerate(order):
            which = kinds[k]
            pool = pools[which]
            tile = _resize(pool[int(torch.randint(0, len(pool), (1,), generator=gen))].float() / 255, half)
            r, c = divmod(slot, 2)
            images[i, r * half:(r + 1) * half, c * half:(c + 1) * half] = tile
            masks[i, which, r * half:(r + 1) * half, c * half:(c + 1) * half] = tile > threshold / 255
    return images, masks


def _check_int(name: str, value, low: int, none_ok: bool = False) -> None:
    if none_ok and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"data.{name}={value!r}; allowed: an integer >= {low}{' or null' if none_ok else ''}")


class FashionMNISTDataModule(IndexedTrainAndCollageLoaders, L.LightningDataModule):
    """Fashion-MNIST with train / val / test splits, silhouette masks and c1/c2 collages (module docstring).

    Same interface as ``SyntheticDataModule``: ``dataset(split)``, ``splits``, ``num_classes``, the three
    loaders, ``collage_dataloader(split)``, ``collage_sizes``, ``c1`` / ``c2``, ``normalize`` / ``denormalize``.
    """

    splits = SPLITS
    # config keys that do not change theta0 (left out of its cache key): where the files come from, not which
    # images; ``seed``, which orders the fooling's batches only (theta0's loader is seeded by original.seed); and
    # the test split's size and the mask threshold (theta0 trains on train and validates on val, without masks)
    original_key_ignores = ("root", "download", "seed", "test_size", "mask_threshold")

    def __init__(self, root: str | None = None, download: bool = False, image_size: int | None = None,
                 num_classes: int = 10, train_size: int | None = None, val_size: int = 5000,
                 test_size: int | None = None, split_seed: int = 0, seed: int = 0, batch_size: int = 64,
                 eval_batch_size: int = 256, num_workers: int = 0, mask_threshold: int = 8, c1: int = 0, c2: int = 1,
                 collage_train_size: int = 0, collage_val_size: int = 0, **_unused):
        super().__init__()
        if num_classes != len(CLASSES):
            raise ValueError(f"data.num_classes={num_classes} for Fashion-MNIST; allowed: {len(CLASSES)}")
        _check_int("image_size", image_size, 8, none_ok=True)
        _check_int("val_size", val_size, 1)
        if val_size >= OFFICIAL_COUNTS["train"]:
            raise ValueError(f"data.val_size={val_size}; allowed: 1..{OFFICIAL_COUNTS['train'] - 1} "
                             f"(carved from the {OFFICIAL_COUNTS['train']} official training images)")
        for name, value in (("train_size", train_size), ("test_size", test_size)):
            _check_int(name, value, 1, none_ok=True)
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            _check_int(name, value, 1)
        for name, value in (("num_workers", num_workers), ("collage_train_size", collage_train_size),
                            ("collage_val_size", collage_val_size), ("split_seed", split_seed)):
            _check_int(name, value, 0)
        _check_int("mask_threshold", mask_threshold, 0)
        if mask_threshold > 254:
            raise ValueError(f"data.mask_threshold={mask_threshold}; allowed: 0..254 (uint8 pixel value)")
        for name, c in (("c1", c1), ("c2", c2)):
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < num_classes:
                raise ValueError(f"data.{name}={c!r}; allowed: a class in 0..{num_classes - 1} ({', '.join(CLASSES)})")
        if (collage_train_size or collage_val_size) and c1 == c2:
            raise ValueError(f"data.c1 == data.c2 == {c1}; allowed: two different classes")
        self.shown_root = repr(str(root)) if root not in (None, "") else \
            f"null (= {default_root()}: {DEBIAN_ROOT} {'exists' if default_root() == DEBIAN_ROOT else 'is absent'})"
        self.root = Path(str(root) if root not in (None, "") else default_root()).expanduser()
        self.download = bool(download)
        self.image_size = image_size or SIDE
        self.num_classes, self.mean, self.std = num_classes, MEAN, STD
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.split_seed, self.seed = split_seed, seed
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.mask_threshold, self.c1, self.c2 = mask_threshold, c1, c2
        self.collage_sizes = {"train": collage_train_size, "val": collage_val_size}
        self._sets: dict[str, Dataset] = {}
        self._check_files()            # missing files fail at build time, before any training

    # --- files -------------------------------------------------------------------------------------------------
    def _missing(self) -> list[str]:
        return [stem for stems in FILES.values() for stem in stems if find_file(self.root, stem) is None]

    def _check_files(self) -> None:
        missing = self._missing()
        if missing and self.download:
            try:
                _download(self.root)
            except Exception as err:  # noqa: BLE001 - offline, unwritable root, server error
                raise FashionMNISTError(
                    f"data=fashion_mnist: {len(missing)} idx file(s) missing in data.root={self.shown_root} and "
                    f"the download into {self.root / 'FashionMNIST' / 'raw'} failed ({type(err).__name__}: "
                    f"{' '.join(str(err).split())[:100]}); {HOW_TO_GET}") from None
            missing = self._missing()
        if missing:
            what = "no Fashion-MNIST idx file" if len(missing) == 4 else f"{', '.join(missing)} (.gz or raw) not"
            raise FashionMNISTError(f"data=fashion_mnist: {what} found in data.root={self.shown_root} nor in its "
                                    f"FashionMNIST/raw/ and data.download={str(self.download).lower()}; {HOW_TO_GET}")

    def _official(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        return load_split(self.root, part, self.shown_root)

    def split_indices(self) -> dict[str, torch.Tensor]:
        """Indices into the official training set of train and val: randperm(60,000) seeded by split_seed,
        val = the first val_size, train = the rest (capped at train_size)."""
        n = self._official("train")[0].shape[0]
        if self.sizes["val"] >= n:
            raise ValueError(f"data.val_size={self.sizes['val']}; allowed: < {n} (the training images in "
                             f"data.root={self.shown_root})")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        val, train = perm[:self.sizes["val"]], perm[self.sizes["val"]:]
        return {"train": train[:self.sizes["train"]], "val": val}

    # --- images ------------------------------------------------------------------------------------------------
    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.std + self.mean).clamp(0, 1)

    def _build(self, split: str) -> FashionMNISTSplit:
        if split == "test":
            images, labels = self._official("test")
            cap = self.sizes["test"]
            images, labels = images[:cap], labels[:cap]
        else:
            images, labels = self._official("train")
            index = self.split_indices()[split]
            images, labels = images[index], labels[index]
        return FashionMNISTSplit(images, labels, self.image_size, self.mask_threshold, self.mean, self.std)

    # --- collages ----------------------------------------------------------------------------------------------
    def _build_collage(self, split: str) -> CollageSet:
        source = self.dataset("train" if split == "train" else "test")   # held-out collages: test images
        pools = [source.images[source.labels == c] for c in (self.c1, self.c2)]
        for c, pool in zip((self.c1, self.c2), pools):
            if len(pool) == 0:
                raise ValueError(f"no image of class {c} ({CLASSES[c]}) in the "
                                 f"{'train' if split == 'train' else 'test'} split for the {split} collages; "
                                 f"raise data.{'train' if split == 'train' else 'test'}_size")
        seed = self.split_seed * 10 + (1 if split == "train" else 2)
        images, masks = build_collages(*pools, self.collage_sizes[split], self.image_size, self.mask_threshold, seed)
        return CollageSet(images, masks, self.mean, self.std)

    def indexed_train_set(self) -> Dataset:
        """(x, y, mask, index) of the train split: no augmentation, the same image for an index every epoch."""
        return self.dataset("train").with_index()


__all__ = ["CLASSES", "DEBIAN_ROOT", "FashionMNISTDataModule", "FashionMNISTError", "build_collages", "read_idx"]
