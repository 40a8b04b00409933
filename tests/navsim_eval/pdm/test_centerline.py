"""Starting lane and Dijkstra centerline (spec §3.3, §3.4)."""

from __future__ import annotations

import numpy as np

from data_pipelines.maps import load_map
from navsim_eval.pdm.centerline import centerline_poses, dijkstra_lane_path, starting_lane
from navsim_eval.pdm.drivable_map import build_drivable_map
from navsim_eval.pdm.footprint import ego_centers, ego_corners, polygons_from_corners
from navsim_eval.pdm.metric_cache import ego_state_of_frame
from navsim_eval.pdm.route import build_route, load_route
from tests.navsim_eval.pdm.golden_cache import golden_scene, golden_tokens, intermediates


def test_centerline_matches_golden_for_all_scenes(golden_dir):
    mismatches = []
    for token in golden_tokens(golden_dir):
        scene, map_api = golden_scene(golden_dir, token)
        pose = ego_state_of_frame(scene.current_frame)[:3]
        _, route = build_route(map_api, scene.current_frame.roadblock_ids, pose)
        center = ego_centers(pose)
        drivable = build_drivable_map(map_api, center)
        lane = starting_lane(route, drivable, pose, center, polygons_from_corners(ego_corners(pose))[()])
        poses = centerline_poses(map_api, route, lane)
        poses[:, 2] = np.unwrap(poses[:, 2])
        golden = intermediates(golden_dir, token)
        for version in ("v1", "v2"):
            reference = golden[f"{version}_centerline"]
            if poses.shape != reference.shape or np.abs(poses - reference).max() > 1e-9:
                mismatches.append((token, version))
    assert mismatches == []


def test_dijkstra_reaches_target_through_connector(golden_dir):
    boston = load_map(golden_dir / "maps", "us-ma-boston")
    route = load_route(boston, ["1001", "1026", "1016"])
    path, found = dijkstra_lane_path(boston, boston.get_lane("1002"), route.lane_ids, "1016")
    assert found
    assert [e.roadblock_id for e in path] == ["1001", "1026", "1016"]
    for previous, current in zip(path, path[1:]):
        assert current.id in previous.outgoing_edge_ids


def test_dijkstra_fallback_returns_deepest_cheapest_path(golden_dir):
    boston = load_map(golden_dir / "maps", "us-ma-boston")
    route = load_route(boston, ["1001", "1026"])  # target roadblock 1016 is not reachable inside the route
    path, found = dijkstra_lane_path(boston, boston.get_lane("1002"), route.lane_ids, "1016")
    assert not found
    assert [e.roadblock_id for e in path] == ["1001", "1026"]
    assert path[0].id == "1002"
