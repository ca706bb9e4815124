"""The two-class collage set of the active fooling (Heo et al. 2019, Sec. 3.2.2; DESIGN.md 2.2, 2.5).

Each collage is a 2x2 grid of tiles (``tile_size`` = image_size // 2, 112 px at 224) cut from ImageNet
images of classes c1 and c2 (default n02504458 African elephant = 386, n03345487 fire engine = 555):
two tiles are one of each class, the other two are drawn at random from {c1, c2}, the four are placed in
a random order; every tile is a random image of its class, resized (shorter side) and centre-cropped to
the tile. Train collages come from the train folders, held-out ones from the val folders.
``collage_train_size`` = 1,100 and ``collage_val_size`` = 200 by default. Everything is seeded.

The per-tile class masks ([2, S, S] bool: the tiles of c1, the tiles of c2) are kept for localisation.
The built set (uint8 images, tile layout, source files) is cached in
``<cache_dir>/collages/<hash>.pt``, keyed by everything that determines it (root, split, classes, sizes,
seed, source file names), written atomically and reused; a corrupt cache entry is rebuilt.

``CollageDataModule`` is an ``ImageNetDataModule`` (normal ImageNet train / val loaders for the CE term)
plus ``collage_dataloader(split)`` yielding ``(x, masks)`` for the penalty, as ``SyntheticDataModule`` does.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from interpfool.data.imagenet import ImageNetDataModule, load_rgb
from interpfool.experiment.original import atomic_save, config_hash

COLLAGE_SPLITS = {"train": "train", "val": "val"}   # collage split -> ImageNet folder it draws from


def tile_masks(layout: torch.Tensor, size: int) -> torch.Tensor:
    """[4] tile classes (0 = c1, 1 = c2; slot = row * 2 + col) -> [2, size, size] bool masks."""
    half = size // 2
    masks = torch.zeros(2, size, size, dtype=torch.bool)
    for slot, which in enumerate(layout.tolist()):
        r, c = divmod(slot, 2)
        masks[which, r * half:(r + 1) * half, c * half:(c + 1) * half] = True
    return masks


def _tile(path: str, tile: int) -> torch.Tensor:
    from torchvision import transforms as T

    img = T.CenterCrop(tile)(T.Resize(tile)(load_rgb(path)))
    return T.PILToTensor()(img)                        # uint8 [3, tile, tile]


def build_collages(files_c1: list[str], files_c2: list[str], n: int, size: int, seed: int) -> dict:
    """``n`` collages of side ``size`` (tiles size // 2) from the two file lists, seeded.

    Returns {"images": uint8 [n, 3, size, size], "layout": int8 [n, 4] (0 = c1, 1 = c2 per slot),
    "files": [n][4] source file per slot}.
    """
    half = size // 2
    gen = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 3, size, size, dtype=torch.uint8)
    layout = torch.zeros(n, 4, dtype=torch.int8)
    files: list[list[str]] = []
    cache: dict[str, torch.Tensor] = {}
    pools = (files_c1, files_c2)
    for i in range(n):
        kinds = [0, 1] + torch.randint(0, 2, (2,), generator=gen).tolist()   # both classes present
        order = torch.randperm(4, generator=gen).tolist()
        row = []
        for slot, k in enumerate(order):
            which = kinds[k]
            pool = pools[which]
            path = pool[int(torch.randint(0, len(pool), (1,), generator=gen))]
            if path not in cache:
                cache[path] = _tile(path, half)
            r, c = divmod(slot, 2)
            images[i, :, r * half:(r + 1) * half, c * half:(c + 1) * half] = cache[path]
            layout[i, slot] = which
            row.append(path)
        files.append(row)
    return {"images": images, "layout": layout, "files": files}


class CollageSet(Dataset):
    """Cached collages -> (normalised image [3, S, S], masks [2, S, S] bool)."""

    def __init__(self, images: torch.Tensor, layout: torch.Tensor, normalize):
        self.images, self.layout, self.normalize = images, layout, normalize

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        x = self.normalize(self.images[i].float() / 255)
        return x, tile_masks(self.layout[i], self.images.shape[-1])


class CollageDataModule(ImageNetDataModule):
    """ImageNet loaders plus the c1/c2 collage set (module docstring). ``c1`` / ``c2``: a wnid (class folder
    name) or a class index; ``self.c1`` / ``self.c2`` are the class indices the model uses."""

    def __init__(self, c1: str | int = "n02504458", c2: str | int = "n03345487", collage_train_size: int = 1100,
                 collage_val_size: int = 200, cache_dir: str = ".cache/interpfool", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("collage_train_size", collage_train_size), ("collage_val_size", collage_val_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"data.{name}={value!r}; allowed: an integer >= 0")
        self.c1, self.c1_wnid = self._resolve("c1", c1)
        self.c2, self.c2_wnid = self._resolve("c2", c2)
        if self.c1 == self.c2:
            raise ValueError(f"data.c1 == data.c2 == {self.c1_wnid}; allowed: two different classes")
        self.collage_sizes = {"train": collage_train_size, "val": collage_val_size}
        self.cache_dir = Path(str(cache_dir)).expanduser()
        self._collages: dict[str, CollageSet] = {}

    def _resolve(self, name: str, value: str | int) -> tuple[int, str]:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(self.classes):
                raise ValueError(f"data.{name}={value}; allowed: a class index in 0..{len(self.classes) - 1} "
                                 f"or a class folder name (wnid)")
            return value, self.classes[value]
        if value not in self.class_to_idx:
            close = ", ".join(self.classes[:4])
            raise ValueError(f"data.{name}={value!r} is not a class folder of {self.root / 'train'} "
                             f"(found e.g. {close}); allowed: a wnid folder name or a class index")
        return self.class_to_idx[value], str(value)

    def _files(self, split: str, index: int) -> list[str]:
        return [path for path, label in self.samples[COLLAGE_SPLITS[split]] if label == index]

    def collage_key(self, split: str) -> dict:
        """Everything that determines the collages of ``split`` (the cache key)."""
        files = [Path(f).name for f in self._files(split, self.c1) + self._files(split, self.c2)]
        return {"kind": "imagenet-collage-v1", "root": str(self.root.resolve()), "split": split,
                "c1": self.c1_wnid, "c2": self.c2_wnid, "n": self.collage_sizes[split], "size": self.image_size,
                "seed": self.seed, "files": config_hash({"files": files})}

    def collage_cache_path(self, split: str) -> Path:
        return self.cache_dir / "collages" / f"{config_hash(self.collage_key(split))}.pt"

    def collage_dataset(self, split: str) -> CollageSet:
        if split not in COLLAGE_SPLITS:
            raise ValueError(f"unknown collage split {split!r}; allowed: {', '.join(COLLAGE_SPLITS)}")
        if not self.collage_sizes[split]:
            raise ValueError(f"data.collage_{split}_size is 0; set it > 0 to use collages")
        if split not in self._collages:
            path = self.collage_cache_path(split)
            built = None
            if path.is_file():
                try:
                    built = torch.load(path, map_location="cpu", weights_only=True)
                    print(f"collages: reusing cached {path}")
                except Exception as err:  # noqa: BLE001 - a damaged cache entry is rebuilt
                    print(f"collages: cached {path} unreadable ({type(err).__name__}); rebuilding")
            if built is None:
                seed = int(config_hash({"seed": self.seed, "split": split}), 16) % (2 ** 62)
                built = build_collages(self._files(split, self.c1), self._files(split, self.c2),
                                       self.collage_sizes[split], self.image_size, seed)
                built["key"] = self.collage_key(split)
                atomic_save(built, path)
                print(f"collages: built {self.collage_sizes[split]} {split} collages, cached at {path}")
            self._collages[split] = CollageSet(built["images"], built["layout"], self.normalize)
        return self._collages[split]

    def collage_dataloader(self, split: str = "train", shuffle: bool | None = None) -> DataLoader:
        shuffle = split == "train" if shuffle is None else shuffle
        return self._loader(self.collage_dataset(split), shuffle,
                            self.batch_size if split == "train" else self.eval_batch_size)
