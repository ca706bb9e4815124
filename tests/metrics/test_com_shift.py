"""Centre-of-mass shift in input pixels against hand-computed centres."""
import math

import pytest
import torch

from interpfool.metrics import CentreOfMassShift, com_shift


def one_hot(rows, cols, cells):
    h = torch.zeros(len(cells), rows, cols)
    for i, (r, c) in enumerate(cells):
        h[i, r, c] = 1.0
    return h


def test_shift_of_single_cells_in_cells_and_pixels():
    h, h0 = one_hot(7, 7, [(6, 6), (2, 3)]), one_hot(7, 7, [(0, 0), (2, 3)])
    shift, defined = com_shift(h, h0)
    assert torch.allclose(shift, torch.tensor([math.hypot(6, 6), 0.0], dtype=torch.float64))
    assert defined.all()
    shift, _ = com_shift(h, h0, pixels_per_cell=(4.0, 2.0))             # 28 x 14 input over 7 x 7 cells
    assert shift[0].item() == pytest.approx(math.hypot(24, 12))


def test_shift_uses_the_positive_part_and_intensity_weights():
    h0 = torch.zeros(1, 5, 5)
    h0[0, 0, 0], h0[0, 0, 4] = 1.0, 3.0                      # centre (0, 3)
    h = torch.zeros(1, 5, 5)
    h[0, 4, 0], h[0, 2, 2] = 2.0, -5.0                       # negative cell ignored: centre (4, 0)
    shift, defined = com_shift(h, h0)
    assert shift.item() == pytest.approx(5.0) and defined.item()


def test_maps_without_positive_mass_are_left_out_of_the_mean():
    h = torch.stack([one_hot(4, 4, [(3, 3)])[0], -torch.ones(4, 4)])
    h0 = one_hot(4, 4, [(0, 3), (1, 1)])
    shift, defined = com_shift(h, h0)
    assert defined.tolist() == [True, False]
    m = CentreOfMassShift(pixels_per_cell=(2, 2))
    m.update(h, h0)
    assert m.compute().item() == pytest.approx(6.0) and m.undefined_share == 0.5
    empty = CentreOfMassShift()
    empty.update(h[1:], h0[1:])
    assert math.isnan(empty.compute().item())                  # nothing defined: no number
