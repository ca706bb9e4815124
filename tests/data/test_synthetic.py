import pytest
import torch
import torch.nn.functional as F

from interpfool.data import SHAPES, SyntheticDataModule, SyntheticSpec, render_collage, render_index
from interpfool.data.synthetic import shape_mask


def test_same_seed_and_index_give_identical_images():
    spec = SyntheticSpec()
    for index in (0, 7, 123):
        a, b = render_index(spec, 3, index), render_index(spec, 3, index)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    assert not torch.equal(render_index(spec, 3, 0)[0], render_index(spec, 4, 0)[0])
    assert not torch.equal(render_index(spec, 3, 0)[0], render_index(spec, 3, 8)[0])


def test_labels_are_balanced_and_classes_are_the_first_shapes():
    spec = SyntheticSpec(num_classes=8)
    labels = [render_index(spec, 0, i)[2] for i in range(32)]
    assert labels == [i % 8 for i in range(32)]
    assert len(SHAPES) >= 8


def test_mask_covers_exactly_the_object():
    """Inside the mask the object is one colour plus a little texture (std <= 0.04); the ring just
    outside the mask is background whose colour differs clearly from the object's."""
    spec = SyntheticSpec()
    for i in range(40):
        img, mask, _ = render_index(spec, 1, i)
        assert mask.dtype == torch.bool and mask.any()
        assert 20 <= int(mask.sum()) <= 0.25 * spec.size ** 2
        inside = img[:, mask]
        assert float(inside.std(1).max()) < 0.04
        dilated = F.max_pool2d(mask[None, None].float(), 5, 1, 2)[0, 0].bool()
        ring = dilated & ~mask
        gap = (inside.mean(1) - img[:, ring].mean(1)).abs().max()
        assert float(gap) > 0.1


def test_every_shape_is_drawn():
    coords = torch.arange(32, dtype=torch.float32) - 16
    v, u = torch.meshgrid(coords, coords, indexing="ij")
    areas = {s: int(shape_mask(s, u, v, 12.0).sum()) for s in SHAPES}
    assert all(a > 30 for a in areas.values()), areas
    assert areas["circle"] == pytest.approx(3.1416 * 144, rel=0.05)


def test_collage_has_both_classes_in_tiles_and_is_deterministic():
    spec = SyntheticSpec()
    half = spec.size // 2
    for i in range(10):
        img, masks = render_collage(spec, 0, i, 2, 5)
        again = render_collage(spec, 0, i, 2, 5)
        assert torch.equal(img, again[0]) and torch.equal(masks, again[1])
        assert masks[0].any() and masks[1].any() and not (masks[0] & masks[1]).any()
        # every tile's mask lies inside its own quadrant and covers one object
        tiles = masks.reshape(2, 2, half, 2, half).permute(0, 1, 3, 2, 4)  # class, row, col, h, w
        per_tile = tiles.flatten(3).any(-1)                                # class, row, col
        assert int(per_tile.sum()) == 4 and not (per_tile[0] & per_tile[1]).any()
    with pytest.raises(ValueError, match="c1 == c2"):
        render_collage(spec, 0, 0, 3, 3)


def test_datamodule_splits_differ_and_are_normalised():
    dm = SyntheticDataModule(train_size=16, val_size=8, test_size=8, batch_size=4, collage_train_size=4, c1=0, c2=1)
    x, y, m, index = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 64, 64) and y.shape == (4,) and m.shape == (4, 64, 64)
    train = dm.dataset("train").tensors            # the index names the image it came with (theta0 map cache)
    assert torch.equal(x, train[0][index]) and torch.equal(y, train[1][index])
    assert not torch.equal(dm.dataset("train").tensors[0][:8], dm.dataset("val").tensors[0])
    assert torch.allclose(dm.denormalize(dm.normalize(torch.full((3,), 0.3))), torch.full((3,), 0.3))
    cx, cm = next(iter(dm.collage_dataloader("train")))
    assert cx.shape == (4, 3, 64, 64) and cm.shape == (4, 2, 64, 64)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": 1}, "num_classes=1"), ({"batch_size": 0}, "batch_size=0"), ({"std": 0}, "std=0"),
    ({"c1": 9}, "c1=9"), ({"collage_train_size": 4, "c1": 2, "c2": 2}, "c1 == data.c2"),
])
def test_datamodule_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticDataModule(**kwargs)
