"""data=collage: the two-class 2x2 collage set built from ImageNet class folders (determinism, both classes,
masks on the tiles, the cache), and the loaders active fooling needs."""
from __future__ import annotations

import pytest
import torch

from interpfool.data import CollageDataModule, build_collages, tile_masks
from interpfool.data.collage import _tile
from interpfool.data.testing import make_fake_imagenet
from interpfool.experiment.cli import BadInput
from interpfool.experiment.build import checked_build


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return make_fake_imagenet(tmp_path_factory.mktemp("imagenet"))


def _module(root, cache, **kw):
    args = dict(root=str(root), image_size=32, num_classes=4, batch_size=4, eval_batch_size=5, num_workers=0,
                collage_train_size=12, collage_val_size=5, cache_dir=str(cache))
    return CollageDataModule(**{**args, **kw})


def test_collages_are_seeded_have_both_classes_and_masks_on_their_tiles(fake_root, tmp_path):
    dm = _module(fake_root, tmp_path / "a")
    assert (dm.c1, dm.c1_wnid, dm.c2, dm.c2_wnid) == (1, "n02504458", 2, "n03345487")   # the paper's defaults
    files_c1, files_c2 = dm._files("train", dm.c1), dm._files("train", dm.c2)
    built = build_collages(files_c1, files_c2, 12, 32, seed=3)
    again = build_collages(files_c1, files_c2, 12, 32, seed=3)
    assert torch.equal(built["images"], again["images"]) and torch.equal(built["layout"], again["layout"])
    assert not torch.equal(built["layout"], build_collages(files_c1, files_c2, 12, 32, seed=4)["layout"])
    for i in range(12):
        layout = built["layout"][i]
        assert {0, 1} <= set(layout.tolist())                                    # both classes present
        masks = tile_masks(layout, 32)
        assert masks.shape == (2, 32, 32) and masks.dtype == torch.bool
        assert not (masks[0] & masks[1]).any() and (masks[0] | masks[1]).all()  # the tiles partition the image
        for slot in range(4):
            r, c = divmod(slot, 2)
            region = (slice(r * 16, (r + 1) * 16), slice(c * 16, (c + 1) * 16))
            which = int(layout[slot])
            assert masks[which][region].all()
            source = built["files"][i][slot]
            assert source in (files_c1, files_c2)[which]                         # the tile comes from its class
            assert torch.equal(built["images"][i][(slice(None), *region)], _tile(source, 16))


def test_collage_set_is_cached_by_config_and_reused(fake_root, tmp_path, capsys):
    dm = _module(fake_root, tmp_path / "cache")
    x, masks = next(iter(dm.collage_dataloader("train")))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and masks.shape == (4, 2, 32, 32)
    assert "built 12 train collages" in capsys.readouterr().out
    path = dm.collage_cache_path("train")
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))              # written atomically
    again = _module(fake_root, tmp_path / "cache")
    assert torch.equal(again.collage_dataset("train").images, dm.collage_dataset("train").images)
    assert "reusing cached" in capsys.readouterr().out
    # held-out collages come from the val folders; another seed or size is another cache entry
    xv, mv = next(iter(dm.collage_dataloader("val")))
    assert xv.shape == (5, 3, 32, 32) and all(("/val/" in f) for row in torch.load(
        dm.collage_cache_path("val"), weights_only=True)["files"] for f in row)
    assert _module(fake_root, tmp_path / "cache", seed=1).collage_cache_path("train") != path
    assert _module(fake_root, tmp_path / "cache", collage_train_size=13).collage_cache_path("train") != path
    # a damaged cache entry is rebuilt, not trusted
    path.write_bytes(b"truncated")
    rebuilt = _module(fake_root, tmp_path / "cache")
    assert torch.equal(rebuilt.collage_dataset("train").images, dm.collage_dataset("train").images)
    assert "unreadable" in capsys.readouterr().out
    # normal ImageNet batches for the CE term
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (4, 3, 32, 32) and yb.shape == (4,)


@pytest.mark.parametrize("override, expected", [
    ([], "data.c1=386; allowed: a class index in 0..3 or a class folder name (wnid)"),   # the paper's on 4 classes
    (["data.c1=n99999999", "data.c2=2"], "data.c1='n99999999' is not a class folder of"),
    (["data.c1=1", "data.c2=n02504458"], "data.c1 == data.c2 == n02504458; allowed: two different classes"),
])
def test_bad_collage_classes_give_one_line(compose_cfg, fake_root, tmp_path, override, expected):
    cfg = compose_cfg(["data=collage", f"data.root={fake_root}", "data.num_classes=4", "model.width=4",
                       f"cache_dir={tmp_path}", *override])
    with pytest.raises(BadInput) as err:
        checked_build(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_collage_config_builds_with_class_indices(compose_cfg, fake_root, tmp_path):
    cfg = compose_cfg(["data=collage", f"data.root={fake_root}", "data.num_classes=4", "model.width=4",
                       f"cache_dir={tmp_path}", "data.c1=0", "data.c2=n09472597"])
    data = checked_build(cfg).data
    assert (data.c1, data.c1_wnid, data.c2, data.c2_wnid) == (0, "n01440764", 3, "n09472597")
    assert isinstance(data.c1, int) and isinstance(data.c2, int)       # what fooling=active reads
    assert data.collage_sizes == {"train": 1100, "val": 200}
