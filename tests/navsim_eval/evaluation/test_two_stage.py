"""Two-stage weighting and aggregation (navsim@main SceneAggregator / calculate_individual_mapping_scores)."""

from __future__ import annotations

import math

import numpy as np

from navsim_eval.evaluation.results import Variant, make_row
from navsim_eval.evaluation.two_stage import (
    SIGMA_SQUARED_M2, TwoStageGroup, aggregate_two_stage, pseudo_closed_loop_weights,
)


def test_gaussian_weights_by_squared_distance():
    starts = np.array([[10.0, 0.0], [10.3, 0.0], [10.0, -0.5]])
    weights = pseudo_closed_loop_weights((10.0, 0.0), starts)
    raw = np.exp(-np.array([0.0, 0.09, 0.25]) / (2 * SIGMA_SQUARED_M2))
    np.testing.assert_allclose(weights, raw / raw.sum())
    assert weights[0] > weights[1] > weights[2] and math.isclose(weights.sum(), 1.0)


def test_far_endpoint_falls_back_to_uniform_weights():
    starts = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    np.testing.assert_allclose(pseudo_closed_loop_weights((50.0, 50.0), starts), np.full(3, 1 / 3))


def _stage_one(token, endpoint, score, variant=Variant("m", 1.0)):
    return make_row(token, variant, "v2", stage=1, metrics={"score": score, "ego_progress": score},
                    endpoint=endpoint, start=(0.0, 0.0))


def _stage_two(token, start, score, variant=Variant("m", 1.0), error=""):
    return make_row(token, variant, "v2", stage=2, metrics=None if error else {"score": score, "ego_progress": 1.0},
                    start=start, error=error)


def test_combined_score_is_stage_one_times_weighted_stage_two():
    rows = [
        _stage_one("a", (10.0, 0.0), 0.8),
        _stage_two("a1", (10.0, 0.1), 1.0),
        _stage_two("a2", (11.0, 0.0), 0.0),
        _stage_two("a3", (30.0, 0.0), 0.5, error="scoring failed"),
        _stage_one("b", (0.0, 0.0), 0.5),
        _stage_two("b1", (0.0, 0.0), 0.6),
    ]
    groups = [TwoStageGroup("a", ("a1", "a2", "a3")), TwoStageGroup("b", ("b1",))]
    (summary,) = aggregate_two_stage(rows, groups)
    w = pseudo_closed_loop_weights((10.0, 0.0), np.array([[10.0, 0.1], [11.0, 0.0]]))
    expected_a = 0.8 * (w[0] * 1.0 + w[1] * 0.0)
    by_token = {g.first_stage_token: g for g in summary.groups}
    assert math.isclose(by_token["a"].combined["score"], expected_a)
    assert "1 stage-2 scene(s) failed" in by_token["a"].note
    assert math.isclose(by_token["b"].combined["score"], 0.3)
    assert math.isclose(summary.combined["score"], (expected_a + 0.3) / 2)
    assert math.isclose(summary.stage_one["score"], 0.65)
    assert math.isclose(by_token["a"].combined["ego_progress"], 0.8)  # every column multiplies
    assert summary.num_valid_groups == 2


def test_previous_frame_pairs_are_averaged_and_missing_stage_two_is_nan():
    rows = [
        _stage_one("now", (0.0, 0.0), 1.0), _stage_two("now2", (0.0, 0.0), 0.4),
        _stage_one("prev", (0.0, 0.0), 0.5), _stage_two("prev2", (0.0, 0.0), 1.0),
        _stage_one("lonely", (0.0, 0.0), 0.9),
    ]
    groups = [TwoStageGroup("now", ("now2",), "prev", ("prev2",)), TwoStageGroup("lonely", ("missing",))]
    (summary,) = aggregate_two_stage(rows, groups)
    pair, lonely = summary.groups
    assert math.isclose(pair.combined["score"], (0.4 + 0.5) / 2)
    assert math.isnan(lonely.combined["score"]) and "no scored stage-2 scene" in lonely.note
    assert math.isclose(summary.combined["score"], 0.45) and summary.num_valid_groups == 1


def test_each_variant_uses_its_own_endpoint():
    near, far = Variant("m", 0.0), Variant("m", 2.0)
    rows = [
        _stage_one("a", (0.0, 0.0), 1.0, near), _stage_one("a", (5.0, 0.0), 1.0, far),
        _stage_two("a1", (0.0, 0.0), 0.2, near), _stage_two("a2", (5.0, 0.0), 0.9, near),
        _stage_two("a1", (0.0, 0.0), 0.2, far), _stage_two("a2", (5.0, 0.0), 0.9, far),
    ]
    summaries = {s.variant: s for s in aggregate_two_stage(rows, [TwoStageGroup("a", ("a1", "a2"))])}
    assert math.isclose(summaries[near].combined["score"], 0.2, rel_tol=1e-9)
    assert math.isclose(summaries[far].combined["score"], 0.9, rel_tol=1e-9)
