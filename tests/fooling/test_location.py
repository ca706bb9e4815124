import pytest
import torch

from interpfool.fooling import LocationFooling
from interpfool.fooling.penalties import corner_mask, frame_mask


def test_frame_mask_width_is_side_over_seven():
    mask = frame_mask(14)                       # width 2 (authors' code: side // 7)
    assert int(mask.sum()) == 14 * 14 - 10 * 10
    assert mask[0].eq(1).all() and mask[1].eq(1).all() and mask[2, 2:12].eq(0).all()
    assert int(frame_mask(7).sum()) == 49 - 25  # width 1
    assert int(corner_mask(9).sum()) == 9 and corner_mask(9)[0, 0] == 1


def test_location_penalty_on_hand_made_maps():
    fool = LocationFooling()
    m = frame_mask(14)
    maps = torch.stack([m, torch.zeros(14, 14), torch.ones(14, 14), torch.full((14, 14), 0.5)])
    got = fool.penalty(maps)
    expected = torch.tensor([0.0, 96 / 196, 100 / 196, 0.25])
    assert torch.allclose(got, expected)
    assert fool.success(got).tolist() == [True, False, False, False]


def test_user_mask_file_and_bad_masks(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(torch.eye(4), path)
    fool = LocationFooling(mask=str(path))
    assert fool.penalty(torch.eye(8)[None]).item() == pytest.approx(float(((torch.eye(4).repeat_interleave(2, 0).repeat_interleave(2, 1) - torch.eye(8)) ** 2).mean()))
    with pytest.raises(ValueError, match="fooling.mask='diagonal'"):
        LocationFooling(mask="diagonal")
    with pytest.raises(ValueError, match=r"interval=\[0.5, 0.1\]"):
        LocationFooling(interval=(0.5, 0.1))
    with pytest.raises(ValueError, match="width=9"):
        LocationFooling(width=9).penalty(torch.zeros(1, 14, 14))
