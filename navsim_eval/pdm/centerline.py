"""Starting lane, Dijkstra lane search and the centerline (spec pdm_score.md §3.3, §3.4)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import shapely

from data_pipelines.geometry import wrap_angle
from data_pipelines.maps import LaneGraphEdge, NuPlanMap
from navsim_eval.pdm.drivable_map import DrivableMap
from navsim_eval.pdm.path import PDMPath
from navsim_eval.pdm.route import Route

# Number of route elements the centerline search looks ahead (spec §3.4).
CENTERLINE_SEARCH_DEPTH = 30
# Cost of the starting edge in the Dijkstra search (spec §3.4).
DIJKSTRA_START_COST = 1.0


class CenterlineError(ValueError):
    """No on-route lane can start the centerline (empty route)."""


def starting_lane(
    route: Route,
    drivable_map: DrivableMap,
    rear_axle_pose: np.ndarray,
    center_xy: np.ndarray,
    footprint: shapely.Geometry,
) -> LaneGraphEdge:
    """The on-route lane the ego starts on (spec §3.3)."""
    lanes = route.lane_by_id()
    if not lanes:
        raise CenterlineError("the route has no lanes")
    pose = np.asarray(rear_axle_pose, dtype=np.float64)
    candidates: list[LaneGraphEdge] = []
    heading_errors: list[float] = []
    for token in drivable_map.intersecting(shapely.Point(pose[0], pose[1])):
        lane = lanes.get(token)
        if lane is None:
            continue
        vertices = lane.baseline_path.discrete_path
        distances = (((pose[None, :2] - vertices[:, :2]) ** 2).sum(axis=-1)) ** 0.5
        heading_errors.append(abs(float(wrap_angle(vertices[int(np.argmin(distances)), 2] - pose[2]))))
        candidates.append(lane)
    if candidates:
        return candidates[int(np.argmin(heading_errors))]
    centre = shapely.Point(float(center_xy[0]), float(center_xy[1]))
    best, best_distance = None, np.inf
    for lane in lanes.values():
        if lane.polygon.contains(centre):
            return lane
        distance = lane.polygon.distance(footprint)
        if distance < best_distance:
            best, best_distance = lane, distance
    assert best is not None
    return best


def dijkstra_lane_path(
    map_api: NuPlanMap, start: LaneGraphEdge, allowed_ids: Sequence[str], target_roadblock_id: str
) -> tuple[list[LaneGraphEdge], bool]:
    """Lowest-cost lane path from `start` to an edge of the target roadblock (spec §3.4).

    Edge cost = baseline length of the entered edge, start cost 1; the frontier entry with the smallest cost
    (first inserted on ties) is expanded; queued entries are updated only on a strictly smaller cost. Without
    success: the cheapest expanded edge among those of maximal depth.
    """
    allowed = set(allowed_ids)
    parent: dict[str, LaneGraphEdge | None] = {start.id: None}
    frontier: list[LaneGraphEdge] = [start]
    frontier_cost: list[float] = [DIJKSTRA_START_COST]
    frontier_depth: list[int] = [1]
    expanded: list[LaneGraphEdge] = []
    expanded_ids: set[str] = set()
    expanded_cost: list[float] = []
    expanded_depth: list[int] = []
    end, found = start, False
    while frontier:
        index = int(np.argmin(frontier_cost))  # first minimum = first inserted among equal costs
        current, cost, depth = frontier.pop(index), frontier_cost.pop(index), frontier_depth.pop(index)
        if current.roadblock_id == target_roadblock_id:
            end, found = current, True
            break
        expanded.append(current)
        expanded_ids.add(current.id)
        expanded_cost.append(cost)
        expanded_depth.append(depth)
        for next_id in current.outgoing_edge_ids:
            if next_id not in allowed:
                continue
            edge = map_api.get_map_object(next_id, current.neighbour_layer)
            alternative = cost + edge.baseline_path.length  # type: ignore[attr-defined]
            queued = next((i for i, e in enumerate(frontier) if e.id == next_id), None)
            if next_id not in expanded_ids and queued is None:
                parent[next_id] = current
                frontier.append(edge)  # type: ignore[arg-type]
                frontier_cost.append(alternative)
                frontier_depth.append(depth + 1)
            elif queued is not None and alternative < frontier_cost[queued]:
                parent[next_id] = current
                frontier_cost[queued] = alternative
                frontier_depth[queued] = depth + 1
    if not found:
        deepest = max(expanded_depth)
        at_depth = [i for i, d in enumerate(expanded_depth) if d == deepest]
        end = expanded[min(at_depth, key=lambda i: (expanded_cost[i], at_depth.index(i)))]
    path = [end]
    while parent[path[-1].id] is not None:
        path.append(parent[path[-1].id])  # type: ignore[arg-type]
    path.reverse()
    return path, found


def centerline_poses(
    map_api: NuPlanMap, route: Route, start: LaneGraphEdge, search_depth: int = CENTERLINE_SEARCH_DEPTH
) -> np.ndarray:
    """(N, 3) concatenated discrete baseline paths of the Dijkstra lane path (joint vertices twice)."""
    block_ids = route.roadblock_ids
    start_index = block_ids.index(start.roadblock_id) if start.roadblock_id in block_ids else 0
    window = block_ids[start_index:start_index + search_depth]
    path, _ = dijkstra_lane_path(map_api, start, route.lane_ids, window[-1])
    return np.concatenate([edge.baseline_path.discrete_path for edge in path], axis=0)


def build_centerline(map_api: NuPlanMap, route: Route, start: LaneGraphEdge) -> PDMPath:
    return PDMPath(centerline_poses(map_api, route, start))
