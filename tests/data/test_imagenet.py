"""data=imagenet on a generated ImageFolder tree with real synset names: class order, transforms, per_class,
batches, and one line for every malformed root (DESIGN.md 2.5)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from interpfool.data import ImageNetDataModule
from interpfool.data.imagenet import LAYOUT, BadDataset
from interpfool.data.testing import FAKE_WNIDS, make_fake_imagenet
from interpfool.experiment.cli import BadInput
from interpfool.experiment.build import checked_build


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return make_fake_imagenet(tmp_path_factory.mktemp("imagenet"))


def _copy(fake_root, tmp_path) -> Path:
    return Path(shutil.copytree(fake_root, tmp_path / "imagenet"))


def test_sorted_wnid_order_transforms_and_batches(fake_root):
    dm = ImageNetDataModule(root=str(fake_root), image_size=32, num_classes=4, batch_size=2, eval_batch_size=3,
                            num_workers=0)
    assert dm.classes == sorted(FAKE_WNIDS) and dm.class_to_idx["n02504458"] == 1 and dm.class_to_idx["n03345487"] == 2
    assert len(dm.dataset("train")) == 16 and len(dm.dataset("val")) == 8
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, 32, 32) and y.dtype == torch.long
    xv, yv = next(iter(dm.val_dataloader()))
    assert xv.shape == (3, 3, 32, 32) and yv.tolist() == [0, 0, 1]
    assert dm.resize_size == round(32 * 256 / 224)
    # val = Resize(shorter side -> resize_size) + CenterCrop: deterministic, and normalised with ImageNet stats
    assert torch.equal(dm.dataset("val")[0][0], dm.dataset("val")[0][0])
    assert 0 <= float(dm.denormalize(xv).min()) and float(dm.denormalize(xv).max()) <= 1
    with pytest.raises(ValueError, match="allowed: train, val"):
        dm.dataset("test")


def test_per_class_keeps_the_first_n_of_every_class(fake_root):
    dm = ImageNetDataModule(root=str(fake_root), image_size=32, num_classes=4, per_class=1, num_workers=0)
    train = dm.samples["train"]
    assert [label for _, label in train] == [0, 1, 2, 3]
    assert all(Path(p).name.endswith("_train0.JPEG") for p, _ in train)
    assert len(dm.samples["val"]) == 4


def test_1000_class_root_must_put_the_paper_classes_at_their_standard_index(tmp_path):
    # 1000 synset-style folders (empty placeholder files; check_images=none): sorted order decides the index
    names = [f"n{i:08d}" for i in range(998)] + ["n02504458", "n03345487"]
    names.sort()
    assert names.index("n02504458") != 386
    for split in ("train", "val"):
        for wnid in names:
            (tmp_path / split / wnid).mkdir(parents=True)
            (tmp_path / split / wnid / "a.JPEG").touch()
    with pytest.raises(BadDataset, match="does not hold the 1000 ILSVRC2012 synsets: n02504458 is at index"):
        ImageNetDataModule(root=str(tmp_path), check_images="none")
    # the standard order (elephant 386, fire engine 555) passes
    others = [f"n01{i:06d}" for i in range(386)] + [f"n030{i:05d}" for i in range(168)] + \
             [f"n04{i:06d}" for i in range(444)]
    std = sorted(others + ["n02504458", "n03345487"])
    assert std.index("n02504458") == 386 and std.index("n03345487") == 555 and len(std) == 1000
    root2 = tmp_path / "std"
    for split in ("train", "val"):
        for wnid in std:
            (root2 / split / wnid).mkdir(parents=True)
            (root2 / split / wnid / "a.JPEG").touch()
    dm = ImageNetDataModule(root=str(root2), check_images="none")
    assert dm.class_to_idx["n02504458"] == 386 and dm.class_to_idx["n03345487"] == 555


def _break(kind: str, root: Path) -> list[str]:
    """Damage the fake tree; returns extra overrides."""
    if kind == "missing root":
        shutil.rmtree(root)
    elif kind == "no train":
        shutil.rmtree(root / "train")
    elif kind == "no val":
        shutil.rmtree(root / "val")
    elif kind == "no class folders":
        for d in (root / "train").iterdir():
            shutil.rmtree(d)
    elif kind == "no images":
        for f in (root / "val" / "n03345487").iterdir():
            f.unlink()
    elif kind == "val classes differ":
        (root / "val" / "n09472597").rename(root / "val" / "n09999999")
    elif kind == "corrupt first image":
        (root / "train" / "n02504458" / "n02504458_train0.JPEG").write_bytes(b"\xff\xd8not a jpeg")
    elif kind == "truncated image":
        f = root / "val" / "n02504458" / "n02504458_val0.JPEG"
        f.write_bytes(f.read_bytes()[:400])
    elif kind == "corrupt later image":
        (root / "val" / "n01440764" / "n01440764_val1.JPEG").write_bytes(b"garbage")
        return ["data.check_images=all"]
    elif kind == "num_classes":
        return ["data.num_classes=5"]
    return []


@pytest.mark.parametrize("kind, expected", [
    ("missing root", "does not exist; " + LAYOUT),
    ("no train", "has no train/ folder; " + LAYOUT),
    ("no val", "has no val/ folder; " + LAYOUT),
    ("no class folders", "train has no class folders; " + LAYOUT),
    ("no images", "val/n03345487 has no images (jpeg, jpg, png ...); " + LAYOUT),
    ("val classes differ", "has other class folders than"),
    ("corrupt first image", "n02504458_train0.JPEG is not a readable image (UnidentifiedImageError)"),
    ("truncated image", "n02504458_val0.JPEG is not a readable image (OSError)"),
    ("corrupt later image", "n01440764_val1.JPEG is not a readable image"),
    ("num_classes", "data.num_classes=5 but"),
])
def test_malformed_root_stops_the_build_with_one_line(compose_cfg, fake_root, tmp_path, kind, expected):
    root = _copy(fake_root, tmp_path)
    extra = _break(kind, root)
    cfg = compose_cfg(["data=imagenet", f"data.root={root}", "data.num_classes=4", "data.image_size=32",
                       "model.width=4", *extra])
    with pytest.raises(BadInput) as err:
        checked_build(cfg)
    message = str(err.value)
    assert expected in message and "\n" not in message, message
    if kind in ("val classes differ", "num_classes", "corrupt first image"):
        assert "expected ImageFolder layout" in message


def test_a_corrupt_image_found_while_loading_is_one_line(fake_root, tmp_path):
    root = _copy(fake_root, tmp_path)
    (root / "val" / "n01440764" / "n01440764_val1.JPEG").write_bytes(b"garbage")
    dm = ImageNetDataModule(root=str(root), image_size=32, num_classes=4, num_workers=0)   # first images are fine
    with pytest.raises(BadDataset) as err:
        dm.dataset("val")[1]
    assert "n01440764_val1.JPEG is not a readable image" in str(err.value) and "\n" not in str(err.value)


def test_imagenet_test_split_is_refused_before_training(compose_cfg, fake_root):
    cfg = compose_cfg(["data=imagenet", f"data.root={fake_root}", "data.num_classes=4", "model.width=4",
                       "eval.split=test"])
    with pytest.raises(BadInput, match="eval.split='test' with this data; allowed: train, val"):
        checked_build(cfg)


@pytest.mark.parametrize("override, expected", [
    ("data.per_class=0", "data.per_class=0; allowed: an integer >= 1 or null"),
    ("data.check_images=maybe", "data.check_images='maybe'; allowed: first, all, none"),
    ("data.image_size=4", "data.image_size=4; allowed: an integer >= 8"),
    ("data.resize_size=16", "data.resize_size=16; allowed: an integer >= 32"),
    ("data.num_workers=-1", "data.num_workers=-1; allowed: an integer >= 0"),
])
def test_bad_imagenet_values_give_one_line(compose_cfg, fake_root, override, expected):
    cfg = compose_cfg(["data=imagenet", f"data.root={fake_root}", "data.num_classes=4", "data.image_size=32",
                       "model.width=4", override])
    with pytest.raises(BadInput) as err:
        checked_build(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value)
