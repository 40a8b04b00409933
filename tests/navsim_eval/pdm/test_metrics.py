"""Sub-metrics on a hand-made map (spec §6, §7, edge cases of §9)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from navsim_eval.pdm.constants import StateIndex
from navsim_eval.pdm.drivable_map import DrivableMap
from navsim_eval.pdm.ego_areas import EgoGeometry, compute_ego_areas
from navsim_eval.pdm.observation import Observation, UniqueObject, red_light_token
from navsim_eval.pdm.scorer import score_simulated_states

LANE_WIDTH = 3.6
# Two eastbound lanes (on route), one westbound lane, a carpark south of the road, an intersection at x>=150.
MAP = DrivableMap(
    tokens=["R", "RO", "L1", "L2", "L3", "I", "C"],
    types=["ROADBLOCK", "ROADBLOCK", "LANE", "LANE", "LANE", "INTERSECTION", "CARPARK_AREA"],
    polygons=np.array([
        shapely.box(-50, -LANE_WIDTH, 150, LANE_WIDTH),
        shapely.box(-50, LANE_WIDTH, 150, 2 * LANE_WIDTH),
        shapely.box(-50, -LANE_WIDTH, 150, 0),
        shapely.box(-50, 0, 150, LANE_WIDTH),
        shapely.box(-50, LANE_WIDTH, 150, 2 * LANE_WIDTH),
        shapely.box(150, -LANE_WIDTH, 250, 2 * LANE_WIDTH),
        shapely.box(0, -20, 100, -LANE_WIDTH),
    ], dtype=object),
)
ROUTE = ["L1", "L2"]
CENTERLINE = np.stack([np.linspace(-50, 250, 301), np.full(301, -LANE_WIDTH / 2), np.zeros(301)], axis=1)


def _states(x0=0.0, y=-LANE_WIDTH / 2, speed=10.0, y_end=None, heading=0.0) -> np.ndarray:
    """(1, 41, 11) constant-speed states along x (optionally drifting linearly to y_end)."""
    t = np.arange(41) * 0.1
    states = np.zeros((1, 41, 11))
    states[0, :, StateIndex.X] = x0 + speed * t * np.cos(heading)
    states[0, :, StateIndex.Y] = (y if y_end is None else np.linspace(y, y_end, 41)) + speed * t * np.sin(heading)
    states[0, :, StateIndex.HEADING] = heading
    states[0, :, StateIndex.VELOCITY_X] = speed
    return states


def _observation(objects, steps=51, red_lights=()) -> Observation:
    """objects: (token, type, center (2,), velocity (2,), length, width) moving at constant velocity."""
    tokens, polygons = [[] for _ in range(steps)], [[] for _ in range(steps)]
    unique = {}
    for token, kind, center, velocity, length, width in objects:
        unique[token] = UniqueObject(token, kind, kind in ("vehicle", "pedestrian", "bicycle"),
                                     float(np.arctan2(velocity[1], velocity[0])) if np.any(velocity) else 0.0,
                                     np.asarray(velocity, dtype=float))
        for k in range(steps):
            c = np.asarray(center) + np.asarray(velocity) * 0.1 * k
            tokens[k].append(token)
            polygons[k].append(shapely.box(c[0] - length / 2, c[1] - width / 2, c[0] + length / 2, c[1] + width / 2))
    for connector, polygon in red_lights:
        for k in range(steps):
            tokens[k].append(red_light_token(connector))
            polygons[k].append(polygon)
    return Observation(tokens, polygons, unique)


def _score(states, observation, version="v1"):
    return score_simulated_states(states, observation, CENTERLINE, ROUTE, MAP, version)


def test_free_driving_in_lane_is_perfect():
    scores = _score(_states(), _observation([]))
    for name in ("no_at_fault_collisions", "drivable_area_compliance", "driving_direction_compliance",
                 "time_to_collision_within_bound", "comfort", "ego_progress"):
        assert scores[name][0] == 1.0, name
    assert scores.score[0] == pytest.approx(1.0)


def test_static_object_hit_gives_half_and_stopped_ego_is_not_at_fault():
    cone = ("cone", "traffic_cone", (25.0, -LANE_WIDTH / 2), (0.0, 0.0), 0.5, 0.5)
    assert _score(_states(), _observation([cone]))["no_at_fault_collisions"][0] == 0.5
    parked = ("car", "vehicle", (25.0, -LANE_WIDTH / 2), (0.0, 0.0), 4.5, 2.0)
    assert _score(_states(), _observation([parked]))["no_at_fault_collisions"][0] == 0.0
    # A vehicle driving into a standing ego from behind: not at fault.
    rear = ("rear", "vehicle", (-10.0, -LANE_WIDTH / 2), (5.0, 0.0), 4.5, 2.0)
    standing = _states(speed=0.0)
    assert _score(standing, _observation([rear]))["no_at_fault_collisions"][0] == 1.0


def test_lateral_contact_is_at_fault_only_when_straddling_lanes():
    # A faster car overtaking on the left and cutting into the ego's left side around t = 2 s.
    def side_car(ego_y):
        return ("side", "vehicle", (0.0 + 1.5, ego_y + 2.2), (10.0, -0.4), 3.0, 2.0)

    in_lane = _score(_states(), _observation([side_car(-LANE_WIDTH / 2)]))
    straddling = _score(_states(y=0.0), _observation([side_car(0.0)]))
    assert in_lane["no_at_fault_collisions"][0] == 1.0
    assert straddling["no_at_fault_collisions"][0] == 0.0


def test_drivable_area_carpark_is_drivable_outside_is_not():
    into_carpark = _score(_states(y=-LANE_WIDTH / 2, y_end=-10.0), _observation([]))
    off_road = _score(_states(x0=110.0, y=-LANE_WIDTH / 2, y_end=-10.0, speed=5.0), _observation([]))
    assert into_carpark["drivable_area_compliance"][0] == 1.0
    assert off_road["drivable_area_compliance"][0] == 0.0


def test_oncoming_lane_and_intersection_rules_for_ddc():
    oncoming = _states(y=1.5 * LANE_WIDTH)
    assert _score(oncoming, _observation([]))["driving_direction_compliance"][0] == 0.0
    assert _score(oncoming, _observation([]), "v2")["driving_direction_compliance"][0] == 0.0
    # Inside the intersection polygon (no route lane there): v1 counts it, v2 ignores it.
    crossing = _states(x0=160.0, y=1.5 * LANE_WIDTH, speed=10.0)
    assert _score(crossing, _observation([]))["driving_direction_compliance"][0] == 0.0
    assert _score(crossing, _observation([], steps=41), "v2")["driving_direction_compliance"][0] == 1.0


def test_time_to_collision_sees_an_object_ahead_before_contact():
    # Stopped car 5.5 m ahead of the final front bumper: never touched, but within the 0.9 s look-ahead.
    front_at_end = 40.0 + 4.049
    parked = ("car", "vehicle", (front_at_end + 5.5 + 2.25, -LANE_WIDTH / 2), (0.0, 0.0), 4.5, 2.0)
    scores = _score(_states(), _observation([parked]))
    assert scores["no_at_fault_collisions"][0] == 1.0
    assert scores["time_to_collision_within_bound"][0] == 0.0


def test_red_light_is_not_a_collision_but_fails_tlc():
    light = shapely.box(30, -LANE_WIDTH, 31, 0)
    scores = _score(_states(), _observation([], steps=41, red_lights=[("9", light)]), "v2")
    assert scores["traffic_light_compliance"][0] == 0.0
    assert scores["no_at_fault_collisions"][0] == 1.0
    assert scores["time_to_collision_within_bound"][0] == 1.0


def test_lane_keeping_counts_only_outside_intersections():
    offset = _score(_states(y=-LANE_WIDTH / 2 + 1.0), _observation([], steps=41), "v2")
    assert offset["lane_keeping"][0] == 0.0
    centred = _score(_states(), _observation([], steps=41), "v2")
    assert centred["lane_keeping"][0] == 1.0
    in_intersection = _score(_states(x0=160.0, y=2.0, speed=1.0), _observation([], steps=41), "v2")
    assert in_intersection["lane_keeping"][0] == 1.0


def test_v1_progress_is_masked_v2_is_not():
    """Row 0 hits a parked car (NC = 0), row 1 drives the same distance in the other lane."""
    parked = ("car", "vehicle", (25.0, -LANE_WIDTH / 2), (0.0, 0.0), 4.5, 2.0)
    states = np.concatenate([_states(), _states(y=LANE_WIDTH / 2)])
    v1 = _score(states, _observation([parked]))
    assert v1["no_at_fault_collisions"].tolist() == [0.0, 1.0]
    assert v1["ego_progress"].tolist() == [0.0, 1.0]
    v2 = _score(states, _observation([parked], steps=41), "v2")
    assert v2["ego_progress"][0] == pytest.approx(1.0)


def test_ego_areas_multiple_lanes_and_oncoming():
    states = np.concatenate([_states(), _states(y=0.0), _states(y=1.5 * LANE_WIDTH)])
    areas = compute_ego_areas(EgoGeometry.from_states(states), MAP, ROUTE)
    assert not areas.multiple_lanes[0].any() and areas.multiple_lanes[1].all()
    assert not areas.oncoming[0].any() and areas.oncoming[2].all()
    assert not areas.non_drivable[:2].any()
