"""Driving command (OpenScene producer rule), signal cycles and paths of the synthetic world."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.synthetic.expert import EGO_WHEEL_BASE, MAX_STEER_RAD
from data_pipelines.synthetic.layouts import IdAllocator, build_instance
from data_pipelines.synthetic.world import (
    COMMAND_FORWARD, COMMAND_LEFT, COMMAND_RIGHT, COMMAND_UNKNOWN, GREEN, RED, YELLOW, Path, SignalCycle,
    driving_command, path_of,
)


def _instance(kind: str, seed: int = 3):
    return build_instance(kind, "us-ma-boston", 0, np.array([330000.0, 4690000.0]), IdAllocator(10**7),
                          np.random.default_rng(seed))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_junction_turns_are_within_the_ego_turning_circle(seed):
    """Every turning connector bends no tighter than the ego can steer (rear-axle radius wheel base /
    tan(max steer) = 4.5 m); right turns used to be 3.2-3.5 m (curvature 0.31 1/m)."""
    turns = [Path(c.centerline, extend=0.0) for c in _instance("junction", seed).connectors.values()
             if c.turn != "straight"]
    sharpest = max(float(np.max(np.abs(path.curvature(path.s)))) for path in turns)
    assert sharpest <= np.tan(MAX_STEER_RAD) / EGO_WHEEL_BASE, f"turn curvature {sharpest:.3f} 1/m"


def _pose_before_lane_end(inst, lane_id: int, distance: float) -> tuple[np.ndarray, float]:
    path = Path(inst.lanes[lane_id].centerline, extend=0.0)
    s = path.length - distance
    return path.position(s), float(path.heading(s))


@pytest.mark.parametrize("turn, expected", [("left", COMMAND_LEFT), ("right", COMMAND_RIGHT),
                                            ("straight", COMMAND_FORWARD)])
def test_command_at_a_junction(turn, expected):
    inst = _instance("junction")
    connector = next(c for c in sorted(inst.connectors.values(), key=lambda c: c.id) if c.turn == turn)
    route = next(r for r in inst.routes if r.lane_ids[1] == connector.id)
    near_xy, near_h = _pose_before_lane_end(inst, route.lane_ids[0], 8.0)
    assert driving_command(inst, route.roadblock_ids, near_xy, near_h).argmax() == expected
    far_xy, far_h = _pose_before_lane_end(inst, route.lane_ids[0], 80.0)
    assert driving_command(inst, route.roadblock_ids, far_xy, far_h).argmax() == COMMAND_FORWARD


def test_command_on_a_curve_follows_the_bend():
    # A curve tight enough that the centerline 20 m ahead is more than 2 m to the side inside the first arc.
    inst = next(i for i in (_instance("curve", seed) for seed in range(50)) if i.params["radius_1"] < 90.0)
    route = next(r for r in inst.routes if inst.lanes[r.lane_ids[0]].index == 0
                 and inst.lanes[r.lane_ids[0]].roadblock_id == min(inst.roadblocks))
    path = path_of(inst, route.lane_ids, extend=0.0)
    first = COMMAND_LEFT if inst.params["first_turn"] == "left" else COMMAND_RIGHT
    lead_in = inst.params["lead_in"]
    mid_arc = lead_in + 0.5 * inst.params["radius_1"] * inst.params["angle_1"]
    commands = [int(driving_command(inst, route.roadblock_ids, path.position(s), float(path.heading(s))).argmax())
                for s in (lead_in - 60.0, mid_arc)]
    assert commands == [COMMAND_FORWARD, first]
    # The command matches the sign of the centerline's lateral offset 20 m ahead everywhere.
    for s in np.arange(5.0, path.length - 25.0, 7.0):
        xy, h = path.position(s), float(path.heading(s))
        d = path.position(s + 20.0) - xy
        lateral = -np.sin(h) * d[0] + np.cos(h) * d[1]
        cmd = int(driving_command(inst, route.roadblock_ids, xy, h).argmax())
        if lateral > 2.2:
            assert cmd == COMMAND_LEFT
        elif lateral < -2.2:
            assert cmd == COMMAND_RIGHT
        elif abs(lateral) < 1.8:
            assert cmd == COMMAND_FORWARD


def test_command_without_route_is_unknown():
    inst = _instance("straight")
    xy, h = _pose_before_lane_end(inst, next(iter(inst.lanes)), 50.0)
    assert driving_command(inst, [], xy, h).argmax() == COMMAND_UNKNOWN


def test_logged_commands_agree_with_the_rule(tiny_dataset, tiny_instances):
    import pickle

    from data_pipelines.geometry import quaternion_to_yaw

    for path in sorted(tiny_dataset.root.glob("navsim_logs/*/*.pkl")):
        with open(path, "rb") as f:
            frames = pickle.load(f)
        route = {str(r) for r in frames[0]["roadblock_ids"]}
        inst = next(i for i in tiny_instances.values() if i.location == frames[0]["map_location"]
                    and route <= {str(r) for r in list(i.roadblocks) + list(i.roadblock_connectors)})
        for frame in frames:
            expected = driving_command(inst, [int(r) for r in frame["roadblock_ids"]],
                                       frame["ego2global_translation"][:2], quaternion_to_yaw(frame["ego2global_rotation"]))
            assert np.array_equal(frame["driving_command"], expected)


def test_signal_cycle_phases():
    cycle = SignalCycle(num_groups=4, green_s=8.0, yellow_s=3.0, all_red_s=1.0, offset_s=0.0)
    assert [cycle.state(0, t) for t in (0.0, 7.9, 8.5, 11.5)] == [GREEN, GREEN, YELLOW, RED]
    assert cycle.state(1, 12.5) == GREEN and cycle.state(0, 12.5) == RED
    for t in np.arange(0.0, 96.0, 0.7):
        assert sum(cycle.state(g, t) == GREEN for g in range(4)) <= 1  # split phasing: no conflicting greens
    assert cycle.time_to_green(1, 0.0) == pytest.approx(12.0)


def test_path_projection_round_trip():
    t = np.linspace(0, np.pi, 200)
    path = Path(np.stack([50 * np.cos(t), 50 * np.sin(t)], axis=1), extend=0.0)
    s = np.array([10.0, 60.0, 120.0])
    xy = path.position(s)
    h = path.heading(s)
    shifted = xy + 1.5 * np.stack([-np.sin(h), np.cos(h)], axis=1)
    s_back, lateral = path.project(shifted)
    assert np.allclose(s_back, s, atol=0.1) and np.allclose(lateral, 1.5, atol=0.05)
    assert np.allclose(path.curvature(60.0), 1 / 50.0, rtol=0.05)
