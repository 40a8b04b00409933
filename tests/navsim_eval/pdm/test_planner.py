"""PDM-Closed reference planner (spec §3.8): forecasts, leading-agent quirk, proposals and selection."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from navsim_eval.pdm.centerline import build_centerline, starting_lane
from navsim_eval.pdm.constants import EGO_LENGTH
from navsim_eval.pdm.drivable_map import build_drivable_map
from navsim_eval.pdm.footprint import ego_centers, ego_corners, polygons_from_corners
from navsim_eval.pdm.metric_cache import ego_state_of_frame, red_light_connectors
from navsim_eval.pdm.objects import red_lane_connector_ids
from navsim_eval.pdm.path import PDMPath
from navsim_eval.pdm.planner import PDMClosedConfig, SceneObjects, build_forecast_observation, frame_objects
from navsim_eval.pdm.planner.generator import LEAD_PROGRESS, LEAD_REAR_LENGTH, LEAD_VELOCITY, ProposalGenerator
from navsim_eval.pdm.planner.pdm_closed import proposal_paths, target_velocities
from navsim_eval.pdm.route import build_route
from tests.navsim_eval.pdm.golden_cache import golden_scene, intermediates, representative_tokens

CONFIG = PDMClosedConfig()


def _objects(rows):
    """SceneObjects from rows (token, type, x, y, heading, length, width, vx, vy)."""
    columns = list(zip(*rows)) if rows else [[]] * 9
    return SceneObjects(list(columns[0]), list(columns[1]), *(np.array(c, dtype=float) for c in columns[2:]))


def _golden_generators(golden_dir, token):
    scene, map_api = golden_scene(golden_dir, token)
    frame = scene.current_frame
    ego = ego_state_of_frame(frame)
    pose = ego[:3]
    _, route = build_route(map_api, frame.roadblock_ids, pose)
    center = ego_centers(pose)
    lane = starting_lane(route, build_drivable_map(map_api, center), pose, center,
                         polygons_from_corners(ego_corners(pose))[()])
    centerline = build_centerline(map_api, route, lane)
    ids, polygons = red_light_connectors(red_lane_connector_ids(frame.traffic_lights), route)
    forecast = build_forecast_observation(frame_objects(frame), pose, ids, polygons, CONFIG)
    targets = target_velocities(lane.speed_limit_mps, CONFIG)
    return ProposalGenerator(proposal_paths(centerline, CONFIG), targets, forecast, pose, float(ego[3]), CONFIG)


def test_golden_reference_is_one_of_the_proposals_and_extends_exactly(golden_dir):
    """The official reference equals one of our 15 roll-outs (first 41 states) and its extension to 51 states
    (representative scenes; test_metric_cache checks the selection on every scene)."""
    failures = []
    for token in representative_tokens(golden_dir):
        generator = _golden_generators(golden_dir, token)
        generator.rollout(1, CONFIG.proposal_steps)
        proposals = generator.state.poses[:, :CONFIG.proposal_steps + 1].copy()
        golden = intermediates(golden_dir, token)
        for version in ("v1", "v2"):
            reference = golden[f"{version}_pdm_trajectory_states"][:, :3]
            errors = np.abs(proposals - reference[None, :CONFIG.proposal_steps + 1]).max(axis=(1, 2))
            best = int(np.argmin(errors))
            if errors[best] > 1e-6:
                failures.append((token, version, "proposals", float(errors[best])))
                continue
            extended = copy.deepcopy(generator)
            extended.rollout(CONFIG.proposal_steps + 1, CONFIG.trajectory_steps, [best])
            error = np.abs(extended.state.poses[best] - reference).max()
            if error > 1e-6:
                failures.append((token, version, "extension", float(error)))
    assert failures == []


def test_forecast_limits_order_and_constant_velocity():
    rows = [("far", "vehicle", 150.0, 0.0, 0.0, 4.0, 2.0, 1.0, 0.0),
            ("cone", "traffic_cone", 20.0, 5.0, 0.0, 0.5, 0.5, 0.0, 0.0),
            ("back", "vehicle", 30.0, 0.0, 0.0, 4.0, 2.0, -2.0, 0.0),  # velocity opposite to its heading
            ("ped", "pedestrian", 10.0, 5.0, np.pi / 2, 0.5, 0.5, 0.0, 1.0)]
    rows += [(f"v{i}", "vehicle", 40.0 + i, 10.0, 0.0, 4.0, 2.0, 0.0, 0.0) for i in range(60)]
    forecast = build_forecast_observation(_objects(rows), np.zeros(3), ["77"], [polygons_from_corners(
        ego_corners(np.array([50.0, 0.0, 0.0])))[()]], CONFIG)
    tokens = forecast.maps[0].tokens
    assert "far" not in tokens  # beyond 100 m of the ego centre
    assert tokens[0] == "cone" and tokens[-1] == "red_light_77"
    vehicles = [t for t in tokens if t == "back" or t.startswith("v")]
    assert len(vehicles) == CONFIG.max_vehicles and vehicles[0] == "back"
    assert tokens.index("ped") > tokens.index(vehicles[-1])  # vehicles, then pedestrians
    assert len(forecast.maps) == CONFIG.trajectory_steps // CONFIG.observation_sample_interval + 1
    index = tokens.index("back")
    shift = forecast.at_step(10).polygons[index].centroid.x - forecast.at_step(0).polygons[index].centroid.x
    assert shift == pytest.approx(-2.0 * 1.0)  # drives backwards along its box heading
    assert forecast.at_step(11) is forecast.at_step(10)
    cone = tokens.index("cone")
    assert forecast.at_step(50).polygons[cone].equals(forecast.at_step(0).polygons[cone])


def test_collided_objects_at_start():
    rows = [("touching", "vehicle", 3.0, 0.0, 0.0, 4.0, 2.0, 0.0, 0.0),
            ("clear", "vehicle", 30.0, 0.0, 0.0, 4.0, 2.0, 0.0, 0.0)]
    inside_light = polygons_from_corners(ego_corners(np.array([-5.0, 0.0, 0.0])))[()]  # overlaps only partly
    forecast = build_forecast_observation(_objects(rows), np.zeros(3), ["1"], [inside_light], CONFIG)
    assert forecast.collided_tokens == {"touching"}


def test_leading_agent_vector_is_shared_between_policies():
    """Policy 1 has no leader and inherits the speed written for policy 0; policy 2 inherits the rear length."""
    path = PDMPath(np.stack([np.linspace(0, 200, 201), np.zeros(201), np.zeros(201)], axis=1))
    rows = [("lead", "vehicle", 30.0, 0.0, 0.0, 4.0, 2.0, 5.0, 0.0)]
    forecast = build_forecast_observation(_objects(rows), np.zeros(3), [], [], CONFIG)
    generator = ProposalGenerator([path], np.array([10.0, 10.0, 10.0]), forecast, np.zeros(3), 0.0, CONFIG)
    state = generator.state
    state.progress[:, 1] = [0.0, 60.0, 0.0]
    state.poses[:, 1] = path.interpolate(state.progress[:, 1])
    generator._update_leading(2, np.arange(3), 0)
    leading = state.leading[:, 2]
    ego_front = 0.0 + EGO_LENGTH / 2 + 1.461  # rear axle at 0: front bumper at 4.049 m
    assert leading[0, LEAD_PROGRESS] == pytest.approx(0.0 + (30.0 - 2.0 + 5.0 * 0.2) - ego_front)
    assert leading[0, LEAD_VELOCITY] == pytest.approx(5.0) and leading[0, LEAD_REAR_LENGTH] == 0.0
    assert leading[1, LEAD_PROGRESS] == pytest.approx(path.length)
    assert leading[1, LEAD_VELOCITY] == pytest.approx(5.0)  # inherited
    assert leading[1, LEAD_REAR_LENGTH] == pytest.approx(EGO_LENGTH / 2)
    assert leading[2, LEAD_PROGRESS] == pytest.approx(leading[0, LEAD_PROGRESS])
    assert leading[2, LEAD_REAR_LENGTH] == pytest.approx(EGO_LENGTH / 2)  # inherited
    generator._update_leading(3, np.arange(3), 0)  # odd steps hold the previous vector
    np.testing.assert_array_equal(state.leading[:, 3], state.leading[:, 2])
