"""data=fashion_mnist: the idx reader (gzip / raw, checked headers, one-line errors), the seeded splits, the
silhouette masks, the collages, theta0's cache key, and the real Debian files when they are installed."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from interpfool.data import FashionMNISTDataModule
from interpfool.data import fashion_mnist as fm
from interpfool.experiment.cli import BadInput
from interpfool.experiment.build import checked_build
from interpfool.experiment.original import original_key

N_TRAIN, N_TEST = 60, 30


def _write_idx(path: Path, array: np.ndarray, magic: int, compress: bool, count: int | None = None,
               extra: bytes = b"") -> None:
    header = magic.to_bytes(4, "big") + int(count if count is not None else array.shape[0]).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape[1:])
    data = header + array.astype(np.uint8).tobytes() + extra
    if compress:
        data = gzip.compress(data, compresslevel=1)
    path.write_bytes(data)


def _images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Garment-like images: a bright blob on an exactly-zero background, plus one faint speck; balanced labels."""
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r, c = rng.integers(3, 10, 2)
        images[i, r:r + 12, c:c + 10] = rng.integers(60, 256, (12, 10))
        images[i, 0, 27] = 3                                      # a speck below the mask threshold
    return images, np.arange(n) % 10


def make_files(root: Path, compress: bool = True, layout: str = "flat", seed: int = 0, suffix: bool = True) -> dict:
    folder = root / "FashionMNIST" / "raw" if layout == "torchvision" else root
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for part, n in (("train", N_TRAIN), ("test", N_TEST)):
        images, labels = _images(n, rng)
        ext = ".gz" if compress and suffix else ""
        _write_idx(folder / f"{fm.FILES[part][0]}{ext}", images, fm.IMAGE_MAGIC, compress)
        _write_idx(folder / f"{fm.FILES[part][1]}{ext}", labels, fm.LABEL_MAGIC, compress)
        out[part] = (images, labels)
    return out


@pytest.fixture
def small(monkeypatch):
    """Small files pass the count check; every test reads its own files."""
    monkeypatch.setattr(fm, "OFFICIAL_COUNTS", {"train": N_TRAIN, "test": N_TEST})
    monkeypatch.setattr(fm, "_LOADED", {})


def dm(root, **kw) -> FashionMNISTDataModule:
    return FashionMNISTDataModule(root=str(root), download=False, **{"val_size": 10, "batch_size": 8, **kw})


@pytest.mark.parametrize("compress, layout, suffix", [(True, "flat", True), (False, "flat", True),
                                                      (True, "torchvision", True), (True, "flat", False)])
def test_gzip_or_raw_flat_or_torchvision_layout_load_the_same_arrays(small, tmp_path, compress, layout, suffix):
    arrays = make_files(tmp_path, compress, layout, suffix=suffix)
    data = dm(tmp_path)
    images, labels = data._official("test")
    assert images.dtype == torch.uint8 and images.shape == (N_TEST, 28, 28)
    assert np.array_equal(images.numpy(), arrays["test"][0]) and np.array_equal(labels.numpy(), arrays["test"][1])
    assert len(data.dataset("train")) == N_TRAIN - 10 and len(data.dataset("val")) == 10
    assert len(data.dataset("test")) == N_TEST


def _one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_bad_magic_names_root_found_and_expected(small, tmp_path):
    make_files(tmp_path)
    rng = np.random.default_rng(1)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, N_TEST), fm.IMAGE_MAGIC, True)
    with pytest.raises(fm.FashionMNISTError) as err:
        dm(tmp_path).dataset("test")
    message = _one_line(err)
    assert f"data.root='{tmp_path}'" in message and "magic number 2051, expected 2049" in message


def test_wrong_count_and_truncated_payload_are_one_line_errors(small, tmp_path):
    make_files(tmp_path)
    images, _ = _images(N_TEST, np.random.default_rng(2))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:-1], fm.IMAGE_MAGIC, True)
    with pytest.raises(fm.FashionMNISTError) as err:
        dm(tmp_path).dataset("test")
    assert f"header says {N_TEST - 1} images, expected {N_TEST}" in _one_line(err)
    fm._LOADED.clear()
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:-1], fm.IMAGE_MAGIC, True, count=N_TEST)
    with pytest.raises(fm.FashionMNISTError) as err:
        dm(tmp_path).dataset("test")
    assert f"expected {N_TEST * 784}" in _one_line(err) and "truncated" in str(err.value)


def test_bad_label_and_not_gzip_are_one_line_errors(small, tmp_path):
    make_files(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(N_TEST, 12), fm.LABEL_MAGIC, True)
    with pytest.raises(fm.FashionMNISTError) as err:
        dm(tmp_path).dataset("test")
    assert "label 12, expected 0..9" in _one_line(err)
    fm._LOADED.clear()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b" + b"junk" * 10)
    with pytest.raises(fm.FashionMNISTError) as err:
        dm(tmp_path).dataset("test")
    assert "not a readable gzip file" in _one_line(err)


def test_missing_files_say_apt_get_and_where(small, tmp_path):
    make_files(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(fm.FashionMNISTError) as err:
        dm(tmp_path)                                   # at build time, before any training
    message = _one_line(err)
    assert "t10k-images-idx3-ubyte" in message and f"data.root='{tmp_path}'" in message
    assert "apt-get install dataset-fashion-mnist" in message and "FashionMNIST/raw/" in message
    assert "data.download=false" in message


def test_download_fills_torchvision_layout_or_fails_in_one_line(small, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(fm, "_download", lambda root: calls.append(root) or make_files(root, layout="torchvision"))
    data = FashionMNISTDataModule(root=str(tmp_path), download=True, val_size=10)
    assert calls == [tmp_path] and len(data.dataset("test")) == N_TEST

    def offline(_root):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: [Errno -3] name resolution")
    monkeypatch.setattr(fm, "_download", offline)
    with pytest.raises(fm.FashionMNISTError) as err:
        FashionMNISTDataModule(root=str(tmp_path / "empty"), download=True, val_size=10)
    assert "download" in _one_line(err) and "failed" in str(err.value) and "apt-get install" in str(err.value)


def test_bad_values_are_one_line_errors(small, tmp_path):
    make_files(tmp_path)
    for kw, match in (({"val_size": 0}, "data.val_size=0"), ({"val_size": N_TRAIN}, "data.val_size"),
                      ({"c1": 10}, "data.c1=10"), ({"num_classes": 8}, "allowed: 10"),
                      ({"c1": 3, "c2": 3, "collage_train_size": 4}, "two different classes"),
                      ({"mask_threshold": 300}, "mask_threshold"), ({"image_size": 4}, "image_size")):
        with pytest.raises(ValueError, match=match):
            dm(tmp_path, **kw)


def test_splits_are_disjoint_deterministic_and_independent_of_the_run_seed(small, tmp_path):
    make_files(tmp_path)
    a = dm(tmp_path, seed=0).split_indices()
    b = dm(tmp_path, seed=7).split_indices()
    assert all(torch.equal(a[s], b[s]) for s in a)           # run seed: same split
    assert len(a["val"]) == 10 and len(a["train"]) == N_TRAIN - 10
    assert not set(a["val"].tolist()) & set(a["train"].tolist())
    assert sorted(a["val"].tolist() + a["train"].tolist()) == list(range(N_TRAIN))
    c = dm(tmp_path, split_seed=1).split_indices()
    assert not torch.equal(a["val"], c["val"])
    capped = dm(tmp_path, train_size=12, test_size=5)
    assert torch.equal(capped.split_indices()["val"], a["val"])   # the val set does not move with train_size
    assert torch.equal(capped.split_indices()["train"], a["train"][:12])
    assert len(capped.dataset("train")) == 12 and len(capped.dataset("test")) == 5


def test_items_are_three_equal_normalised_channels_with_silhouette_masks(small, tmp_path):
    arrays = make_files(tmp_path)
    data = dm(tmp_path, test_size=None)
    x, y, mask = data.dataset("test")[3]
    raw = torch.from_numpy(arrays["test"][0][3])
    assert x.shape == (3, 28, 28) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert torch.allclose(data.denormalize(x)[0], raw.float() / 255, atol=1e-6)
    assert torch.allclose(data.normalize(raw.float() / 255), x[0], atol=1e-6)
    assert mask.dtype == torch.bool and torch.equal(mask, raw > 8) and not mask[0, 27]   # speck of 3 left out
    assert int(y) == int(arrays["test"][1][3])
    assert torch.equal(dm(tmp_path, mask_threshold=0).dataset("test")[3][2], raw > 0)
    big = dm(tmp_path, image_size=56)
    xb, _, mb = big.dataset("test")[3]
    assert xb.shape == (3, 56, 56) and mb.shape == (56, 56)
    assert abs(mb.float().mean() - mask.float().mean()) < 0.05


def test_loaders_give_masks_and_indexed_train_batches(small, tmp_path):
    make_files(tmp_path)
    data = dm(tmp_path, eval_batch_size=7)
    x, y, mask, index = next(iter(data.train_dataloader()))
    assert x.shape == (8, 3, 28, 28) and mask.shape == (8, 28, 28) and index.dtype == torch.int64
    train = data.dataset("train")
    for k in range(3):                                       # the index names the image it came with
        assert torch.equal(train[int(index[k])][0], x[k]) and torch.equal(train[int(index[k])][2], mask[k])
    again = next(iter(dm(tmp_path, eval_batch_size=7).train_dataloader()))
    assert torch.equal(again[3], index)                      # seeded order
    vx, vy, vm = next(iter(data.val_dataloader()))
    assert vx.shape == (7, 3, 28, 28) and vm.dtype == torch.bool
    assert sum(b[0].shape[0] for b in data.test_dataloader()) == N_TEST
    assert data.splits == ("train", "val", "test") and data.indexed_train and data.resumable_train


def test_collages_have_both_classes_silhouette_masks_and_held_out_sources(small, tmp_path):
    make_files(tmp_path)
    data = dm(tmp_path, c1=2, c2=5, collage_train_size=6, collage_val_size=4, eval_batch_size=4)
    assert data.collage_sizes == {"train": 6, "val": 4} and (data.c1, data.c2) == (2, 5)
    x, masks = next(iter(data.collage_dataloader("val")))
    assert x.shape == (4, 3, 28, 28) and masks.shape == (4, 2, 28, 28) and masks.dtype == torch.bool
    tiles = masks.reshape(4, 2, 2, 14, 2, 14).permute(0, 1, 2, 4, 3, 5).flatten(4).any(-1)   # n, class, row, col
    assert tiles[:, 0].flatten(1).any(1).all() and tiles[:, 1].flatten(1).any(1).all()    # both present
    assert not (masks[:, 0] & masks[:, 1]).any() and int(tiles.sum()) == 4 * 4
    assert torch.equal(masks.any(1), data.collage_dataset("val").images[:4] > 8 / 255)   # silhouettes, not squares
    # held-out collage tiles are shrunk test images of c1 / c2; train collage tiles shrunk train-split images
    for split, source in (("val", "test"), ("train", "train")):
        ds = data.dataset(source)
        pool = fm._resize(ds.images[(ds.labels == 2) | (ds.labels == 5)].float() / 255, 14)
        images = data.collage_dataset(split).images
        for i in range(2):
            tile = images[i, :14, :14]
            assert (pool - tile).abs().flatten(1).amax(1).min() < 1e-6
    same = dm(tmp_path, c1=2, c2=5, collage_train_size=6, collage_val_size=4, seed=3)
    assert torch.equal(same.collage_dataset("val").images, data.collage_dataset("val").images)   # split_seed only
    with pytest.raises(ValueError, match="collage_train_size is 0"):
        dm(tmp_path).collage_dataloader("train")


def test_config_builds_and_theta0_key_ignores_where_the_files_come_from(small, tmp_path, compose_cfg):
    make_files(tmp_path)
    base = ["data=fashion_mnist", f"data.root={tmp_path}", "data.val_size=10", "model.width=4"]
    cfg = compose_cfg(base)
    built = checked_build(cfg)
    assert isinstance(built.data, FashionMNISTDataModule) and built.net.classifier[-1].out_features == 10
    key = original_key(cfg)
    assert original_key(compose_cfg(base + ["data.root=/elsewhere", "data.download=false"])) == key
    assert original_key(compose_cfg(base + ["data.val_size=20"])) != key
    assert original_key(compose_cfg(base + ["data.train_size=30"])) != key
    assert original_key(compose_cfg(base + ["data.split_seed=1"])) != key
    assert "root" in original_key(compose_cfg(["data=imagenet"]))["data"]   # an ImageNet root may hold a subset
    with pytest.raises(BadInput, match="apt-get install dataset-fashion-mnist"):
        checked_build(compose_cfg(base + [f"data.root={tmp_path / 'none'}", "data.download=false"]))


def test_null_root_means_the_debian_folder_when_it_exists(monkeypatch, tmp_path):
    monkeypatch.setattr(fm, "DEBIAN_ROOT", str(tmp_path))
    assert fm.default_root() == str(tmp_path)
    monkeypatch.setattr(fm, "DEBIAN_ROOT", str(tmp_path / "absent"))
    assert fm.default_root() == fm.LOCAL_ROOT


DEBIAN = Path(fm.DEBIAN_ROOT)
HAVE_DEBIAN = all(fm.find_file(DEBIAN, stem) for stems in fm.FILES.values() for stem in stems)


@pytest.mark.skipif(not HAVE_DEBIAN, reason=f"Debian's dataset-fashion-mnist is not installed ({fm.DEBIAN_ROOT} lacks "
                                            f"the idx files): apt-get install dataset-fashion-mnist")
def test_real_debian_files():
    data = FashionMNISTDataModule(root=None, download=False, c1=5, c2=7, collage_train_size=8, collage_val_size=8)
    assert data.root == DEBIAN
    sizes = {s: len(data.dataset(s)) for s in fm.SPLITS}
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    assert torch.bincount(data.dataset("test").labels, minlength=10).tolist() == [1000] * 10
    train_all = data._official("train")[0].float() / 255
    assert abs(float(train_all.mean()) - fm.MEAN) < 5e-4 and abs(float(train_all.std()) - fm.STD) < 5e-4
    share = float((data.dataset("test").images > 8).float().mean())
    assert 0.44 < share < 0.50                               # measured: 0.469 on the training images
    x, y, mask, index = next(iter(data.train_dataloader()))
    assert x.shape == (64, 3, 28, 28) and mask.shape == (64, 28, 28) and len(index) == 64
    assert abs(float(x.mean())) < 0.3 and 0.7 < float(x.std()) < 1.3
    vx, vy, vm = next(iter(data.val_dataloader()))
    assert vx.shape == (256, 3, 28, 28) and vm.any(-1).any(-1).all()    # every garment has a silhouette
    cx, cm = next(iter(data.collage_dataloader("val")))
    assert cx.shape == (8, 3, 28, 28) and cm[:, 0].flatten(1).any(1).all() and cm[:, 1].flatten(1).any(1).all()
