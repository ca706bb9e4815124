"""Each LRP rule against its textbook formula, written out with explicit loops / dense matrices."""
import tokenize
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interpfool.lrp import rules
from interpfool.lrp.composites import COMPOSITES, Composite, get_composite

SRC = Path(__file__).resolve().parents[2] / "src" / "interpfool"


@pytest.fixture(autouse=True, scope="module")
def _float64_one_thread():
    """float64 for exact comparisons, one thread (tiny ops; the CPU is shared). Restored afterwards."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


def dense_matrix(fn, in_shape):
    """The matrix of a linear map (rows: outputs, columns: inputs) from unit vectors."""
    n = int(torch.tensor(in_shape[1:]).prod())
    eye = torch.eye(n).reshape(n, *in_shape[1:])
    return fn(eye).reshape(n, -1).T  # [out, in]


def test_stabilize_adds_signed_epsilon_and_keeps_the_dtype():
    z = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.equal(rules.stabilize(z, 0.01), torch.tensor([-2.01, 0.01, 3.01]))
    assert rules.stabilize(z, 0.01).dtype == torch.float64  # eps not rounded through float32


def test_epsilon_rule_on_linear_matches_the_formula():
    a, w, b = torch.randn(3, 6), torch.randn(4, 6), torch.randn(4)
    rel = torch.randn(3, 4)
    got = rules.epsilon_rule(a, rel, w, b, 0.01, rules.linear_apply, rules.linear_transpose)
    z = a @ w.T + b
    want = torch.einsum("bi,ji,bj->bi", a, w, rel / (z + 0.01 * torch.where(z >= 0, 1.0, -1.0)))
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("nonneg", [True, False])
def test_zplus_rule_on_conv_matches_dense_alpha1_beta0(nonneg):
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    a = torch.randn(1, 2, 5, 5)
    a = a.relu() if nonneg else a
    geo = rules.ConvGeometry.of(conv)
    rel = torch.randn(1, 3, 3, 3)
    got = rules.zplus_rule(a, rel, conv.weight, conv.bias, 1e-6, geo.apply, geo.transpose, nonneg)
    # dense: z_ij = a_i w_ij, keep positive parts and b_j^+ (Bach et al. 2015 alpha1-beta0)
    mat = dense_matrix(lambda u: F.conv2d(u, conv.weight, None, 2, 1), a.shape)       # [out, in]
    zij = mat * a.reshape(1, -1)
    bias = conv.bias.clamp(min=0).repeat_interleave(9)
    zj = zij.clamp(min=0).sum(1) + bias
    want = (zij.clamp(min=0) * (rel.reshape(-1) / (zj + 1e-6))[:, None]).sum(0).reshape(a.shape)
    torch.testing.assert_close(got, want)


def test_conv_transpose_restores_odd_input_sizes():
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1)
    geo = rules.ConvGeometry.of(conv)
    a = torch.randn(2, 2, 8, 7)
    s = torch.randn(2, 4, 4, 4)
    (want,) = torch.autograd.grad(F.conv2d(a.requires_grad_(), conv.weight, None, 2, 1), a, s)
    torch.testing.assert_close(geo.transpose(s, conv.weight, a.shape), want)


def test_fold_batchnorm_equals_conv_then_bn_and_keeps_the_graph():
    conv, bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        bn.weight.uniform_(-1.5, 1.5), bn.bias.normal_(), bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 2)
    w, b = rules.fold_batchnorm(conv.weight, conv.bias, bn)
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(F.conv2d(x, w, b, padding=1), bn(conv(x)))
    grads = torch.autograd.grad((w.sum() + b.sum()), [conv.weight, conv.bias, bn.weight, bn.bias])
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_maxpool_winner_take_all_is_the_gradient():
    pool = nn.MaxPool2d(3, 2, 1)
    a = torch.randn(2, 3, 9, 9, requires_grad=True)
    rel = torch.randn(2, 3, 5, 5)
    (want,) = torch.autograd.grad(pool(a), a, rel)
    torch.testing.assert_close(rules.maxpool_winner_take_all(a, rel, pool), want)


def test_maxpool_proportional_splits_each_window_by_positive_inputs():
    pool = nn.MaxPool2d(2)
    a = torch.rand(1, 1, 4, 4)
    rel = torch.randn(1, 1, 2, 2)
    got = rules.maxpool_proportional(a, rel, pool, 1e-12)
    windows = a.reshape(1, 1, 2, 2, 2, 2).permute(0, 1, 2, 4, 3, 5)       # [.., oh, ow, kh, kw]
    share = windows / windows.sum((-1, -2), keepdim=True)
    want = (share * rel[..., None, None]).permute(0, 1, 2, 4, 3, 5).reshape(1, 1, 4, 4)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("positive", [True, False])
def test_pool_rule_matches_dense_formula(positive):
    pool = nn.AdaptiveAvgPool2d(2)
    a = torch.randn(1, 2, 5, 5)
    rel = torch.randn(1, 2, 2, 2)
    got = rules.pool_rule(a, rel, pool, 1e-6, positive=positive)
    mat = dense_matrix(pool, a.shape)
    a_in = a.clamp(min=0) if positive else a
    zij = mat * a_in.reshape(1, -1)
    zj = rules.stabilize(zij.sum(1), 1e-6)
    want = (zij * (rel.reshape(-1) / zj)[:, None]).sum(0).reshape(a.shape)
    torch.testing.assert_close(got, want)


def test_sum_rule_positive_and_proportional():
    x1, x2 = torch.tensor([2.0, -1.0, 3.0]), torch.tensor([2.0, 3.0, -1.0])
    rel = torch.tensor([1.0, 1.0, 1.0])
    r1, r2 = rules.sum_rule([x1, x2], rel, 1e-12, positive=True)
    torch.testing.assert_close(r1, torch.tensor([0.5, 0.0, 1.0]))
    torch.testing.assert_close(r2, torch.tensor([0.5, 1.0, 0.0]))
    r1, r2 = rules.sum_rule([x1, x2], rel, 1e-12, positive=False)
    torch.testing.assert_close(r1, torch.tensor([0.5, -0.5, 1.5]))
    torch.testing.assert_close(r2, torch.tensor([0.5, 1.5, -0.5]))


def test_batchnorm_zplus_rule():
    bn = nn.BatchNorm2d(2).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, -1.0])), bn.bias.copy_(torch.tensor([1.0, -0.5]))
    a = torch.tensor([1.0, -3.0]).reshape(1, 2, 1, 1)
    rel = torch.ones(1, 2, 1, 1)
    got = rules.batchnorm_zplus(a, rel, bn, 1e-12)
    s = 1 / (1 + bn.eps) ** 0.5
    want = torch.tensor([2 * s / (2 * s + 1), 1.0]).reshape(1, 2, 1, 1)   # 3s (> 0) over 3s + 0
    torch.testing.assert_close(got, want)


def test_batchnorm_in_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval"):
        rules.batchnorm_affine(nn.BatchNorm2d(3).train())


def test_composites_by_name_and_overrides():
    assert set(COMPOSITES) >= {"epsilon_plus", "epsilon_plus_maxprop", "epsilon_plus_addprop", "zennit_epsilon_plus"}
    default = get_composite()
    assert (default.linear, default.conv, default.maxpool, default.avgpool, default.add, default.bn_first,
            default.epsilon) == ("epsilon", "zplus", "wta", "zplus", "positive", "pass", 0.01)
    assert get_composite("epsilon_plus", maxpool="proportional", add=None).maxpool == "proportional"
    with pytest.raises(ValueError, match="allowed"):
        get_composite("nope")
    with pytest.raises(ValueError, match="maxpool"):
        Composite(maxpool="average")
    with pytest.raises(ValueError, match="unknown composite option"):
        get_composite("epsilon_plus", alpha=2)


FORBIDDEN = {"data", "detach", "register_hook", "register_full_backward_hook", "register_backward_hook",
             "add_", "mul_", "copy_", "zero_", "clamp_", "relu_"}


@pytest.mark.parametrize("path", ["lrp/rules.py", "lrp/ops.py", "lrp/plans.py", "lrp/walker.py", "lrp/adapters.py",
                                  "lrp/composites.py", "interpreters/lrp.py"])
def test_lrp_code_has_no_hooks_data_detach_or_inplace(path):
    """DESIGN.md 4: stock LRP loses second-order gradients through .data, .detach() and hooks."""
    with open(SRC / path, "rb") as fh:
        toks = [t for t in tokenize.tokenize(fh.readline) if t.type in (tokenize.NAME, tokenize.OP)]
    attrs = {b.string for a, b in zip(toks, toks[1:]) if a.string == "." and b.type == tokenize.NAME}
    assert not attrs & FORBIDDEN, f"{path} uses {attrs & FORBIDDEN}"
