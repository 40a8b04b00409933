"""Red-light connector ids matched against a route's lane ids (navsim_eval/pdm/objects.py)."""

import numpy as np

from navsim_eval.pdm.objects import integer_lane_ids, red_ids_among, red_lane_connector_ids


def test_route_lane_ids_match_connector_ids_only_as_written():
    ids = ["12", "007", "-3", "lane_4", " 5", str(2**70), "9"]
    assert integer_lane_ids(ids).tolist() == [12, -3, 9]


def test_red_ids_among_keeps_the_frame_order_and_equals_matching_by_string():
    lights = [(7, True), (12, False), (3, True), (9, True), (3, True), (40, True)]
    red = red_lane_connector_ids(lights)
    assert red.tolist() == [7, 3, 9, 3, 40]
    lanes = ["9", "3", "12", "0040", "lane"]
    by_string = [str(i) for i in red.tolist() if str(i) in set(lanes)]
    assert red_ids_among(red, integer_lane_ids(lanes)) == by_string == ["3", "9", "3"]
    assert red_ids_among(np.zeros(0, dtype=np.int64), integer_lane_ids(lanes)) == []


def test_red_ids_among_equals_set_membership_on_a_city_sized_frame():
    rng = np.random.default_rng(2)
    red = rng.integers(-10**9, 10**9, 1600)
    lanes = np.concatenate([red[rng.choice(1600, 30, replace=False)], rng.integers(-10**9, 10**9, 30),
                            [red.min() - 1, red.max() + 1]])
    expected = [str(i) for i in red.tolist() if i in set(lanes.tolist())]
    assert red_ids_among(red, lanes) == expected and len(expected) >= 30
    assert red_ids_among(red, np.zeros(0, dtype=np.int64)) == []
