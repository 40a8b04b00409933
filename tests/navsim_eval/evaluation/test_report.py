"""Report helpers: which scenes get PNGs, and the omega-sweep plot file."""

from __future__ import annotations

import pytest

from navsim_eval.evaluation.errors import EvaluationError
from navsim_eval.evaluation.pipeline import EvaluationConfig
from navsim_eval.evaluation.report import plot_omega_sweep, select_tokens, token_scores
from navsim_eval.evaluation.results import Variant, make_row


def _rows():
    rows = []
    for i, token in enumerate(["a", "b", "c", "d", "e"]):
        for omega in (0.0, 1.0):
            rows.append(make_row(token, Variant("dipole", omega), "v1", metrics={"score": 0.1 * i + 0.05 * omega,
                                                                                  "ego_progress": 0.5}))
        rows.append(make_row(token, Variant("human"), "v1", metrics={"score": 0.9}))
    rows.append(make_row("f", Variant("dipole", 0.0), "v1", error="planner failed"))
    return rows


def test_worst_tokens_come_first_and_failures_count_as_zero():
    scores = token_scores(_rows(), "v1", planner="dipole")
    assert scores["f"] == 0.0 and scores["a"] == pytest.approx(0.025)
    picked = select_tokens(scores, num_worst=2, num_sample=2, seed=3)
    assert picked[:2] == [("worst", "f"), ("worst", "a")]
    assert len(picked) == 4 and {kind for kind, _ in picked[2:]} == {"sample"}
    assert select_tokens(scores, 2, 2, seed=3) == picked  # deterministic


def test_omega_sweep_plot_is_written(tmp_path):
    path = plot_omega_sweep(_rows(), "v1", tmp_path / "sweep.png")
    assert path is not None and path.stat().st_size > 1000
    assert plot_omega_sweep([r for r in _rows() if r["planner"] == "human"], "v1", tmp_path / "none.png") is None


def test_config_rejects_unknown_names():
    with pytest.raises(EvaluationError, match="baseline"):
        EvaluationConfig(baselines=("oracle",))
    with pytest.raises(EvaluationError, match="metrics"):
        EvaluationConfig(metrics=("v3",))
