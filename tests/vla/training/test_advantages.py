"""G options (specs/dipole.md §5.2), bounded weights (§2.4) and group statistics."""

from __future__ import annotations

import math

import pytest
import torch

from vla.guidance import dichotomous_weights
from vla.training.advantages import (
    compute_advantage, zero_variance_fraction,
)


def test_g1_normalises_groups_and_constant_group_is_zero():
    r = torch.tensor([[0.0, 0.5, 1.0, 0.5], [0.7, 0.7, 0.7, 0.7]])
    valid = torch.ones_like(r, dtype=torch.bool)
    g, usable = compute_advantage("G1", r, valid)
    assert torch.isfinite(g).all()
    assert g[0].mean().abs() < 1e-6 and abs(float(g[0].std(unbiased=False)) - 1.0) < 1e-4
    assert torch.equal(g[1], torch.zeros(4))
    assert usable.all()


def test_masked_candidates_are_excluded_from_statistics_and_get_no_signal():
    r = torch.tensor([[0.0, 1.0, 123.0, float("nan")]])
    valid = torch.tensor([[True, True, False, False]])
    g, usable = compute_advantage("G1", torch.nan_to_num(r), valid)
    assert usable.tolist() == [[True, True, False, False]]
    assert g[0, 2] == 0 and g[0, 3] == 0
    assert g[0, 0] == pytest.approx(-1.0, abs=1e-4) and g[0, 1] == pytest.approx(1.0, abs=1e-4)


def test_single_valid_candidate_group_is_unusable():
    g, usable = compute_advantage("G1", torch.tensor([[0.3, 0.0]]), torch.tensor([[True, False]]))
    assert not usable.any() and torch.equal(g, torch.zeros(1, 2))


def test_g2_g3_g4():
    r = torch.tensor([[0.2, 0.8, 0.5, 0.5]])
    valid = torch.ones_like(r, dtype=torch.bool)
    g2, _ = compute_advantage("G2", r, valid)
    assert torch.allclose(g2, r - 0.5)
    g3, _ = compute_advantage("G3", r, valid)
    assert torch.allclose(g3, torch.tensor([[-1.0, 1.0, 0.0, 0.0]]))  # ties share their mean rank
    g4, usable = compute_advantage("G4", r, valid, baseline=torch.tensor([0.6]), baseline_valid=torch.tensor([True]))
    assert torch.allclose(g4, r - 0.6) and usable.all()
    _, usable = compute_advantage("G4", r, valid, baseline=torch.tensor([0.6]), baseline_valid=torch.tensor([False]))
    assert not usable.any()
    with pytest.raises(ValueError, match="baseline"):
        compute_advantage("G4", r, valid)
    with pytest.raises(ValueError, match="unknown advantage"):
        compute_advantage("G9", r, valid)


def test_dipole_weights_bounded_and_complementary():
    g = torch.tensor([-math.inf, -3.0, 0.0, 2.0, math.inf])
    w_pos, w_neg = dichotomous_weights(g, beta=2.0)
    assert torch.isfinite(w_pos).all() and torch.isfinite(w_neg).all()
    assert ((w_pos >= 0) & (w_pos <= 1)).all()
    assert torch.allclose(w_pos + w_neg, torch.ones(5))
    assert w_pos[2] == 0.5 and w_pos[3] > w_pos[1]


def test_zero_variance_fraction():
    r = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.5, 9.0]])
    valid = torch.tensor([[True, True], [True, True], [True, False]])
    assert zero_variance_fraction(r, valid) == pytest.approx(0.5)  # third group has < 2 valid entries
