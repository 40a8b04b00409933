"""Unit tests of DIPOLE's weights and guided combination (specs/dipole.md §9.3)."""

import math

import pytest
import torch

from vla.errors import VLAInputError
from vla.guidance import (
    branches_for_omega,
    cfg_to_omega,
    dichotomous_weights,
    dipole_branch_losses,
    ewr_weights,
    guided_combination,
    omega_to_cfg,
    weighted_mean,
)


def test_weights_are_bounded_and_sum_to_one():
    g = torch.linspace(-50, 50, 101)
    for beta in (0.1, 1.0, 20.0):
        w_pos, w_neg = dichotomous_weights(g, beta)
        assert torch.all((w_pos >= 0) & (w_pos <= 1)) and torch.all((w_neg >= 0) & (w_neg <= 1))
        assert torch.allclose(w_pos + w_neg, torch.ones_like(g), atol=1e-6)
        inner = (beta * g).abs() < 10  # float32 sigmoid saturates beyond
        assert torch.all((w_pos[inner] > 0) & (w_pos[inner] < 1))


def test_infinite_goodness_gives_no_nan():
    w_pos, w_neg = dichotomous_weights(torch.tensor([math.inf, -math.inf, 0.0]), beta=1.0)
    assert not torch.isnan(w_pos).any() and not torch.isnan(w_neg).any()
    assert w_pos.tolist() == [1.0, 0.0, 0.5] and w_neg.tolist() == [0.0, 1.0, 0.5]


def test_nan_goodness_and_bad_beta_raise():
    with pytest.raises(VLAInputError, match="'g'"):
        dichotomous_weights(torch.tensor([0.0, math.nan]), 1.0)
    with pytest.raises(VLAInputError, match="beta"):
        dichotomous_weights(torch.tensor([0.0]), 0.0)


def test_weights_carry_no_gradient():
    g = torch.tensor([0.3, -1.0], requires_grad=True)
    w_pos, _ = dichotomous_weights(g, 1.0)
    assert not w_pos.requires_grad


def test_combination_endpoints_are_exact():
    pos, neg = torch.randn(5, 8, 4), torch.randn(5, 8, 4)
    assert guided_combination(pos, neg, 0.0) is pos
    assert guided_combination(pos, None, 0.0) is pos  # omega = 0 never needs the negative branch
    assert guided_combination(pos, neg, -1.0) is neg
    out = guided_combination(pos, neg, 0.5)
    assert torch.allclose(out, 1.5 * pos - 0.5 * neg)
    assert torch.allclose(out, neg + omega_to_cfg(0.5) * (pos - neg), atol=1e-6)
    with pytest.raises(VLAInputError):
        guided_combination(pos, None, 0.5)


def test_branches_needed_and_cfg_conversion():
    assert branches_for_omega(0.0) == ("positive",)
    assert branches_for_omega(-1.0) == ("negative",)
    assert branches_for_omega(2.0) == ("positive", "negative")
    for omega in (-1.0, 0.0, 0.5, 4.0):
        assert cfg_to_omega(omega_to_cfg(omega)) == omega
    assert omega_to_cfg(0.5) == 1.5  # CFGRL convention: cfg 1.5 is omega 0.5 (specs/dipole.md §4)


def test_branch_losses_weight_each_branch():
    err_pos, err_neg = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])
    g = torch.tensor([0.0, math.inf, -math.inf])
    loss_pos, loss_neg, w_pos = dipole_branch_losses(err_pos, err_neg, g, beta=1.0)
    assert torch.isclose(loss_pos, torch.tensor((0.5 * 1 + 1 * 2 + 0 * 3) / 3))
    assert torch.isclose(loss_neg, torch.tensor((0.5 * 4 + 0 * 5 + 1 * 6) / 3))
    mask = torch.tensor([True, True, False])
    loss_pos, _, _ = dipole_branch_losses(err_pos, err_neg, g, beta=1.0, mask=mask)
    assert torch.isclose(loss_pos, torch.tensor((0.5 * 1 + 2) / 2))
    normalized = weighted_mean(err_pos, torch.tensor([0.5, 1.0, 0.0]), normalize=True)
    assert torch.isclose(normalized, torch.tensor(2.5 / 1.5))


def test_ewr_weights_clipped():
    w = ewr_weights(torch.tensor([-1.0, 0.0, 10.0]), beta=1.0, max_weight=5.0)
    assert w[0] == pytest.approx(math.exp(-1)) and w[1] == 1.0 and w[2] == pytest.approx(5.0)
