"""A small fake ImageNet folder (real ILSVRC2012 layout and synset names, generated JPEGs) for tests and
smoke runs with no download: ``make_fake_imagenet(root)``."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

# real ILSVRC2012 synsets: tench (0), African elephant (386), fire engine (555), volcano (980)
FAKE_WNIDS = ("n01440764", "n02504458", "n03345487", "n09472597")


def make_fake_imagenet(root: str | Path, wnids=FAKE_WNIDS, train_per_class: int = 4, val_per_class: int = 2,
                       size: tuple[int, int] = (40, 48), seed: int = 0) -> Path:
    """Write root/{train,val}/<wnid>/<wnid>_<i>.JPEG: per class a distinct base colour with a random block
    and noise (so a model can tell the classes apart). Returns ``root``."""
    root = Path(root)
    gen = torch.Generator().manual_seed(seed)
    height, width = size
    for c, wnid in enumerate(wnids):
        base = torch.tensor([(c * 67) % 256, (c * 131 + 40) % 256, (c * 29 + 90) % 256], dtype=torch.float32)
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = base.view(3, 1, 1).expand(3, height, width) + 40 * torch.randn(3, height, width, generator=gen)
                r, q = int(torch.randint(0, height // 2, (1,), generator=gen)), int(torch.randint(0, width // 2, (1,),
                                                                                             generator=gen))
                img[:, r:r + height // 3, q:q + width // 3] = 255 - base.view(3, 1, 1)
                array = img.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
                Image.fromarray(array).save(folder / f"{wnid}_{split}{i}.JPEG", quality=90)
    return root
