"""Top-k, Center-mass and Active foolings on hand-made maps with known answers."""
import math

import pytest
import torch

from interpfool.fooling import ActiveFooling, CenterMassFooling, TopKFooling
from interpfool.fooling.penalties import center_of_mass, top_cells


# -- Top-k --------------------------------------------------------------------------------------
def test_top_cells_takes_ceil_of_k_percent():
    h0 = torch.arange(16.0).view(1, 4, 4)
    assert top_cells(h0, 25).sum() == 4 and top_cells(h0, 25).flatten()[12:].all()
    assert top_cells(h0, 10).sum() == 2          # ceil(1.6)
    assert top_cells(h0, 0.1).sum() == 1         # at least one cell
    assert top_cells(h0, 100).all()


def test_topk_penalty_is_mean_square_of_minmax_map_on_theta0_top_cells():
    fool = TopKFooling(k=25)                     # 4 of 16 cells
    h0 = torch.zeros(2, 4, 4)
    h0[:, 0, :] = torch.tensor([5.0, 4.0, 3.0, 2.0])     # top cells: the first row
    h = torch.zeros(2, 4, 4)
    h[0, 0, :] = torch.tensor([0.5, 1.0, 0.0, 0.5])      # min 0, max 1: already min-max normalised
    h[1] = 3.0 + 2.0 * torch.eye(4)                      # min 3 max 5 -> eye; row 0 holds one 1
    got = fool.penalty(h, h0)
    expected = torch.tensor([(0.25 + 1 + 0 + 0.25) / 4, 1 / 4])
    assert torch.allclose(got, expected)
    assert torch.equal(fool.test_loss(h, h0), got)
    assert fool.success(got).tolist() == [False, True]            # R = [0, 0.3]
    # theta0's own (non-zero) map on its top cells: mean of its squared normalised top values
    same = fool.penalty(h0, h0)
    assert torch.allclose(same, torch.full((2,), (1 + 0.64 + 0.36 + 0.16) / 4))


def test_topk_penalty_has_gradients_and_rejects_bad_k():
    h = torch.rand(3, 5, 5, requires_grad=True)
    TopKFooling().penalty(h, torch.rand(3, 5, 5)).sum().backward()
    assert h.grad.abs().sum() > 0 and torch.isfinite(h.grad).all()
    for bad in (0, -5, 100.5, True, "10"):
        with pytest.raises(ValueError, match=r"fooling.k=.*allowed: a percentage in \(0, 100\]"):
            TopKFooling(k=bad)
    with pytest.raises(ValueError, match="needs theta0's maps"):
        TopKFooling().penalty(h)


def test_topk_test_loss_is_undefined_and_no_success_where_theta0_map_is_constant():
    fool = TopKFooling(k=25, interval=(0.0, 0.1))
    h0 = torch.zeros(3, 4, 4)
    h0[0, 0, 0] = 1.0                            # a map with a top cell
    h0[2] = 0.7                                  # constant but not zero: no top cells either
    h = torch.zeros(3, 4, 4)                     # fooled maps all empty
    t = fool.test_loss(h, h0)
    assert t[0] == 0 and t[1:].isnan().all()
    assert fool.success(t).tolist() == [True, False, False]
    # theta0 against itself: a non-constant min-max map puts 1 on its top cell, so t >= 1 / |P_k|
    assert not fool.success(fool.test_loss(h0, h0)).any()
    # the training penalty stays finite (and differentiable) on those images
    assert torch.isfinite(fool.penalty(h, h0)).all()


# -- Center-mass --------------------------------------------------------------------------------
def test_center_of_mass_of_one_hot_uniform_zero_and_signed_maps():
    maps = torch.zeros(4, 5, 7)
    maps[0, 1, 6] = 3.0                          # one-hot: its cell
    maps[1] = 1.0                                # uniform: the grid centre
    maps[3, 4, 0], maps[3, 0, 0] = 1.0, -5.0     # signed: the negative cell carries no mass
    assert torch.allclose(center_of_mass(maps), torch.tensor([[1.0, 6.0], [2.0, 3.0], [2.0, 3.0], [4.0, 0.0]]))
    two = torch.zeros(1, 4, 4)
    two[0, 0, 0], two[0, 3, 3] = 1.0, 3.0        # weighted: (0 * 1 + 3 * 3) / 4
    assert torch.allclose(center_of_mass(two), torch.tensor([[2.25, 2.25]]))


def test_center_mass_penalty_and_normalised_test_loss():
    fool = CenterMassFooling()
    h0 = torch.zeros(3, 8, 8)
    h0[:, 0, 0] = 1
    h = torch.zeros(3, 8, 8)
    h[0, 7, 7] = 1                               # opposite corner: L1 14, distance = the diagonal
    h[1, 0, 3] = 1                               # 3 cells along a side
    h[2, 0, 0] = 1                               # unchanged
    assert torch.allclose(fool.penalty(h, h0), torch.tensor([-14.0, -3.0, 0.0]))
    t = fool.test_loss(h, h0)
    assert torch.allclose(t, torch.tensor([1.0, 3 / (math.sqrt(2) * 7), 0.0]))
    assert fool.success(t).tolist() == [True, True, False]       # R = [0.1, 1]


def test_an_empty_map_has_not_moved_its_centre():
    """A map with no positive mass (all-zero Grad-CAM, all-negative LRP) has no centre: shift 0, not a
    success, whatever theta0's centre; the same when theta0's map is the empty one."""
    fool = CenterMassFooling()
    h0 = torch.zeros(3, 8, 8)
    h0[:2, 0, 0] = 1                             # theta0's centre in a corner: the grid middle is far away
    h = torch.zeros(3, 8, 8)
    h[1] = -1.0                                  # all negative: no positive mass either
    h[2, 7, 7] = 1                               # a real map, but theta0's is empty
    assert torch.equal(fool.penalty(h, h0), torch.zeros(3))
    assert torch.equal(fool.test_loss(h, h0), torch.zeros(3))
    assert not fool.success(fool.test_loss(h, h0)).any()


def test_center_mass_gradient_is_finite_on_all_zero_maps():
    h = torch.zeros(2, 6, 6, requires_grad=True)
    h0 = torch.rand(2, 6, 6)
    CenterMassFooling().penalty(h, h0).sum().backward()
    assert torch.isfinite(h.grad).all()
    g = torch.rand(1, 6, 6, requires_grad=True)
    CenterMassFooling().penalty(g, h0[:1]).sum().backward()
    assert g.grad.abs().sum() > 0


# -- Active -------------------------------------------------------------------------------------
def test_active_penalty_is_the_mse_to_the_swapped_original_maps():
    fool = ActiveFooling(c1=2, c2=5)
    assert fool.classes == (2, 5)
    h0 = torch.rand(3, 2, 4, 4)
    assert torch.allclose(fool.penalty(h0.flip(1), h0), torch.zeros(3))
    h = torch.zeros(3, 2, 4, 4)
    expected = 0.5 * (h0[:, 1].square().mean((1, 2)) + h0[:, 0].square().mean((1, 2)))
    assert torch.allclose(fool.penalty(h, h0), expected)


def test_active_test_loss_with_spearman():
    fool = ActiveFooling()
    a = torch.arange(16.0).view(4, 4)
    h0 = torch.stack([a, -a])[None]               # rho(h0_c1, h0_c2) = -1
    # perfectly swapped maps: t = rho(h_c1, h0_c2) - rho(h_c1, h0_c1) = 1 - (-1) = 2, both classes
    assert torch.allclose(fool.test_loss(h0.flip(1), h0), torch.tensor([[2.0, 2.0]]))
    # unchanged maps: t = -1 - 1 = -2
    assert torch.allclose(fool.test_loss(h0, h0), torch.tensor([[-2.0, -2.0]]))
    t = fool.test_loss(torch.cat([h0.flip(1), h0]), torch.cat([h0, h0]))
    assert fool.success(t).tolist() == [[True, True], [False, False]]


def test_active_rejects_bad_classes_and_shapes():
    with pytest.raises(ValueError, match="c1 == fooling.c2"):
        ActiveFooling(c1=3, c2=3)
    with pytest.raises(ValueError, match="fooling.c2=-1"):
        ActiveFooling(c1=0, c2=-1)
    with pytest.raises(ValueError, match=r"\[B, 2, H, W\]"):
        ActiveFooling().penalty(torch.rand(2, 4, 4), torch.rand(2, 4, 4))
