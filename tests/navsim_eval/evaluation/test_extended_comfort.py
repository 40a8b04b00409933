"""Two-frame extended comfort between consecutive scenes and the final EPDMS (pdm_score.md §7.10, §8.4)."""

from __future__ import annotations

import math

import numpy as np

from navsim_eval.evaluation.extended_comfort import apply_extended_comfort, previous_tokens
from navsim_eval.evaluation.metrics import EC as EC_COLUMN
from navsim_eval.pdm.epdms import epdms_of_row
from navsim_eval.evaluation.results import Variant, make_row
from navsim_eval.pdm.scene_pairs import ComfortPairs, PreviousScene

V = Variant("m", 1.0)
FULL = {"no_at_fault_collisions": 1.0, "drivable_area_compliance": 1.0, "driving_direction_compliance": 1.0,
        "traffic_light_compliance": 1.0, "ego_progress": 0.5, "time_to_collision_within_bound": 1.0,
        "lane_keeping": 1.0, "history_comfort": 1.0, "score": 0.0}


def _row(token):
    return make_row(token, V, "v2", metrics=FULL, poses=np.zeros((8, 3)))


def test_previous_tokens_pair_frames_of_one_log_at_most_055_s_apart():
    logs = {"a": "L1", "b": "L1", "c": "L1", "d": "L2", "e": "L1"}
    times = {"a": 0, "b": 500_000, "c": 1_000_000, "d": 500_000, "e": 2_000_000}
    pairs = previous_tokens(list(logs), logs.get, times.get)
    assert {token: (p.token, p.gap_s) for token, p in pairs.previous.items()} == {"b": ("a", 0.5), "c": ("b", 0.5)}


def test_final_score_denominator_14_without_ec_and_16_with():
    row = dict(FULL)
    assert math.isclose(epdms_of_row(row, math.nan), (5 * 0.5 + 5 + 2 + 2) / 14)
    assert math.isclose(epdms_of_row(row, 0.0), (5 * 0.5 + 5 + 2 + 2) / 16)
    row["traffic_light_compliance"] = 0.0
    assert epdms_of_row(row, 1.0) == 0.0


def test_ec_from_this_run_and_from_resimulated_previous_frames():
    calm = np.zeros((41, 11))
    t = np.arange(41) * 0.1
    swerving = np.zeros((41, 11))
    swerving[:, 2] = 0.5 * np.sin(2 * np.pi * t / 1.5)  # heading oscillation: yaw rate far above 0.1 rad/s
    rows = [_row("a"), _row("b"), _row("c")]
    previous = ComfortPairs(previous={"b": PreviousScene("a", 0.5), "c": PreviousScene("b", 0.5)})
    states = {("a", V): calm, ("b", V): calm, ("c", V): swerving}
    apply_extended_comfort(rows, previous, states)
    ec = {r["token"]: r["two_frame_extended_comfort"] for r in rows}
    assert math.isnan(ec["a"]) and ec["b"] == 1.0 and ec["c"] == 0.0
    assert math.isclose(rows[0]["score"], 11.5 / 14) and math.isclose(rows[1]["score"], 13.5 / 16)
    # after a resume the previous frame's states come from its stored poses
    calls = []
    row = _row("b")
    apply_extended_comfort([row], previous, {("b", V): calm},
                           resimulate=lambda token, poses: calls.append(token) or calm,
                           poses_of={("a", V): np.zeros((8, 3))})
    assert calls == ["a"] and row["two_frame_extended_comfort"] == 1.0


def _swerving():
    t = np.arange(41) * 0.1
    states = np.zeros((41, 11))
    states[:, 2] = 0.5 * np.sin(2 * np.pi * t / 1.5)
    return states


def test_both_scenes_of_a_two_stage_pair_get_its_ec_once_both_are_simulated():
    from navsim_eval.pdm.comfort import extended_comfort

    pairs = ComfortPairs(previous={"now": PreviousScene("prev", 0.5)}, followers={"prev": "now"})
    calm, swerving = np.zeros((41, 11)), _swerving()
    prev_row = _row("prev")
    held = apply_extended_comfort([prev_row], pairs, {("prev", V): calm}, pending={"now"})
    assert held == [prev_row] and math.isnan(prev_row[EC_COLUMN])  # waits for its partner, scored later
    now_row = _row("now")
    states = {("prev", V): calm, ("now", V): swerving}
    assert apply_extended_comfort([prev_row, now_row], pairs, states) == []
    expected = float(extended_comfort(swerving[None], calm[None], 5)[0])
    assert now_row[EC_COLUMN] == prev_row[EC_COLUMN] == expected == 0.0
    assert math.isclose(now_row["score"], (5 * 0.5 + 5 + 2 + 2 + 2 * expected) / 16)


def test_a_pair_whose_partner_has_no_simulation_or_an_invalid_gap_is_an_error():
    pairs = ComfortPairs(previous={"now": PreviousScene("prev", 0.5)}, followers={"prev": "now"},
                         invalid={"x": "pair (x, y): start times 0.600 s apart"})
    now_row, bad_row = _row("now"), _row("x")
    assert apply_extended_comfort([now_row, bad_row], pairs, {("now", V): np.zeros((41, 11))}) == []
    assert "paired scene prev has no simulation" in now_row["error"] and math.isnan(now_row["score"])
    assert bad_row["error"].startswith("pair (x, y)") and math.isnan(bad_row[EC_COLUMN])
