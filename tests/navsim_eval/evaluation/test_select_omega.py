"""Choosing omega on a validation split is an evaluation: the best mean score of the model planner."""

from __future__ import annotations

import json

import pytest

from navsim_eval.evaluation.errors import EvaluationError
from navsim_eval.evaluation.pipeline import select_omega, table_results, write_selected_omega
from navsim_eval.evaluation.results import Variant, make_row


def _rows():
    scores = {0.0: (0.6, 0.7), 1.0: (0.9, 0.8), 2.0: (0.9, 0.8), 4.0: (0.2, 0.1)}
    rows = [make_row(token, Variant("dipole", omega, 0), "v1", metrics={"score": s})
            for omega, pair in scores.items() for token, s in zip("ab", pair)]
    rows.append(make_row("a", Variant("human"), "v1", metrics={"score": 1.0}))
    return rows


def test_best_omega_wins_and_ties_go_to_the_smaller_omega(tmp_path):
    assert select_omega(_rows(), "v1") == ("dipole", 1.0, pytest.approx(0.85))
    line = write_selected_omega(tmp_path / "selected_omega.json", _rows(), "v1")
    assert "1" in line and "85.0" in line
    written = json.loads((tmp_path / "selected_omega.json").read_text())
    assert written["omega"] == 1.0 and written["planner"] == "dipole" and written["PDMS"] == pytest.approx(0.85)
    with pytest.raises(EvaluationError, match="no scored omega"):
        select_omega(_rows(), "v1", planners=("other",))


def test_table_results_use_the_table_headers():
    results = table_results(_rows(), "v1")
    assert results["dipole (w=1)"]["PDMS"] == pytest.approx(0.85)
    assert results["human"]["PDMS"] == 1.0 and results["human"]["scenes_failed"] == 0.0
