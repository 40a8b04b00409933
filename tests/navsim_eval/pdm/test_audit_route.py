"""Audit: route-correction and starting-lane branches the public scenes reach rarely (spec §3.1, §3.3, §3.4).

Junction map of the golden set (`us-ma-boston`): inbound roadblocks 1001, 1007, 1013, 1019 have no incoming
edges; roadblock connector 1026 links 1001 -> 1016.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from data_pipelines.maps import MapLayer, load_map
from navsim_eval.pdm.centerline import dijkstra_lane_path, starting_lane
from navsim_eval.pdm.drivable_map import build_drivable_map
from navsim_eval.pdm.footprint import ego_centers, ego_corners, polygons_from_corners
from navsim_eval.pdm.route import correct_route, load_route, nearest_vertex_errors, starting_roadblock_candidates


@pytest.fixture(scope="module")
def boston(golden_dir):
    return load_map(golden_dir / "maps", "us-ma-boston")


def _pose_on_lane(map_api, lane_id: str, index: int = 5) -> np.ndarray:
    return map_api.get_lane(lane_id).baseline_path.discrete_path[index].copy()


def test_forward_search_when_backward_search_fails(boston):
    """Route starts on an inbound block unreachable backwards from the ego's block: the forward BFS from the
    starting block reaches the second route id; the route is cut after it and the path prepended."""
    pose = _pose_on_lane(boston, "1002")
    assert boston.get_roadblock("1007").incoming_edge_ids == ()
    corrected = correct_route(boston, pose, load_route(boston, ["1007", "1016"]))
    assert corrected == ["1001", "1026", "1016"]


def test_repeated_route_ids_are_deduplicated_before_correction(boston):
    pose = _pose_on_lane(boston, "1002")
    route = load_route(boston, ["1001", "1026", "1001", "1016", "1026"])
    assert route.roadblock_ids == ["1001", "1026", "1016"]
    assert correct_route(boston, pose, route) == ["1001", "1026", "1016"]


def test_far_from_the_map_falls_back_to_nearest_blocks(boston):
    """No block within the 1 m square: candidates are the nearest roadblock and the nearest connector; without
    a lane match the candidate with the smallest per-block vertex distance wins."""
    lane_pose = _pose_on_lane(boston, "1002", index=0)
    far = lane_pose + np.array([0.0, 0.0, 0.0])
    far[:2] -= 400.0 * np.array([np.cos(lane_pose[2]), np.sin(lane_pose[2])])  # 400 m behind the arm's start
    block, candidates = starting_roadblock_candidates(boston, far, ["1016"])
    point = shapely.Point(far[0], far[1])

    def nearest(layer):
        objects = boston.get_all_map_objects(layer)
        distances = [o.polygon.distance(point) for o in objects]
        return objects[int(np.argmin(distances))]

    expected = [nearest(MapLayer.ROADBLOCK), nearest(MapLayer.ROADBLOCK_CONNECTOR)]
    assert [c.id for c in candidates] == [e.id for e in expected]
    per_block = [min(nearest_vertex_errors(lane.baseline_path.discrete_path, far)[0]
                     for lane in boston.get_interior_edges(c)) for c in expected]
    assert block.id == expected[int(np.argmin(per_block))].id
    # The whole correction still yields a connected route ending at the route's block.
    corrected = correct_route(boston, far, load_route(boston, ["1016"]))
    assert corrected[-1] == "1016"


def test_starting_lane_fallbacks(boston):
    """Rear axle outside every on-route lane: the first on-route lane containing the box centre; otherwise the
    on-route lane closest to the footprint."""
    route = load_route(boston, ["1001", "1026", "1016"])
    lane = boston.get_lane("1003")
    # Rear axle just outside the arm's start (behind the lane polygon), centre inside lane 1003.
    start = lane.baseline_path.discrete_path[0]
    pose = start.copy()
    pose[:2] -= 1.0 * np.array([np.cos(start[2]), np.sin(start[2])])
    center = ego_centers(pose)
    footprint = polygons_from_corners(ego_corners(pose))[()]
    drivable = build_drivable_map(boston, center)
    on_route_at_axle = [t for t in drivable.intersecting(shapely.Point(pose[0], pose[1])) if t in route.lane_ids]
    assert on_route_at_axle == []
    contains = [e for e in route.lanes if e.polygon.contains(shapely.Point(*center))]
    assert contains and starting_lane(route, drivable, pose, center, footprint).id == contains[0].id
    # Far away: closest on-route lane polygon to the footprint (first on ties).
    far = pose.copy()
    far[:2] -= 30.0 * np.array([np.cos(start[2]), np.sin(start[2])])
    far_center = ego_centers(far)
    far_footprint = polygons_from_corners(ego_corners(far))[()]
    distances = [e.polygon.distance(far_footprint) for e in route.lanes]
    chosen = starting_lane(route, build_drivable_map(boston, far_center), far, far_center, far_footprint)
    assert chosen.id == route.lanes[int(np.argmin(distances))].id


def test_dijkstra_without_reachable_goal_returns_deepest_cheapest(boston):
    """Target block not reachable from the start lane within the allowed lanes: the cheapest edge among the
    deepest expanded ones ends the path (spec §3.4)."""
    route = load_route(boston, ["1001", "1026", "1016"])
    allowed = [i for i in route.lane_ids if boston.get_lane_graph_edge(i).roadblock_id != "1016"]
    path, found = dijkstra_lane_path(boston, boston.get_lane("1002"), allowed, "1016")
    assert not found
    assert [e.roadblock_id for e in path] == ["1001", "1026"]
    assert path[0].id == "1002" and path[1].id in boston.get_lane("1002").outgoing_edge_ids
