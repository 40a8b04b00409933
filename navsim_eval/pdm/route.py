"""Route dictionaries and route correction (spec pdm_score.md §3.1)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import shapely

from data_pipelines.geometry import wrap_angle
from data_pipelines.maps import LaneGraphEdge, MapLayer, NuPlanMap, RoadBlockBase, RoadBlockConnector
from data_pipelines.errors import MapError
from data_pipelines.maps.errors import UnknownMapObjectError

# Route-correction parameters (spec §3.1).
CANDIDATE_SEARCH_RADIUS = 1.0  # half-size of the square around the rear axle [m]
HEADING_ERROR_THRESHOLD = np.pi / 4.0  # [rad]
DISPLACEMENT_ERROR_THRESHOLD = 3.0  # [m]
BACKWARD_SEARCH_DEPTH = 15
FORWARD_SEARCH_DEPTH = 30
FORWARD_SEARCH_TARGETS = 3  # forward BFS aims at the first three route ids
MIN_GAP_PATH_LENGTH = 3  # a gap-filling path must have at least 3 elements
LOOP_OVERLAP_AREA = 1.0  # roadblock-connector overlap that marks a loop [m^2]


@dataclass
class Route:
    """On-route roadblocks (or roadblock connectors) and their interior lanes / lane connectors, in order."""

    roadblocks: list[RoadBlockBase]
    lanes: list[LaneGraphEdge]

    @property
    def roadblock_ids(self) -> list[str]:
        return [b.id for b in self.roadblocks]

    @property
    def lane_ids(self) -> list[str]:
        return [lane.id for lane in self.lanes]

    def lane_by_id(self) -> dict[str, LaneGraphEdge]:
        return {lane.id: lane for lane in self.lanes}


def _block(map_api: NuPlanMap, block_id: str) -> RoadBlockBase:
    """The roadblock with that id, else the roadblock connector (error naming the id and location)."""
    try:
        return map_api.get_roadblock_or_connector(str(block_id))
    except UnknownMapObjectError:
        raise UnknownMapObjectError(str(block_id), "ROADBLOCK/ROADBLOCK_CONNECTOR", map_api.location) from None


def load_route(map_api: NuPlanMap, roadblock_ids: Sequence[str]) -> Route:
    """Route dictionaries from route ids: duplicates dropped keeping order (spec §3.1 step 1)."""
    blocks: list[RoadBlockBase] = []
    seen: set[str] = set()
    for block_id in dict.fromkeys(str(i) for i in roadblock_ids):
        block = _block(map_api, block_id)
        if block.id in seen:
            continue
        seen.add(block.id)
        blocks.append(block)
    lanes: dict[str, LaneGraphEdge] = {}
    for block in blocks:
        for lane in map_api.get_interior_edges(block):
            lanes.setdefault(lane.id, lane)
    return Route(roadblocks=blocks, lanes=list(lanes.values()))


def nearest_vertex_errors(poses: np.ndarray, pose: np.ndarray) -> tuple[float, float]:
    """(displacement, |heading error|) of the baseline vertex nearest to the pose's position."""
    distances = (((poses[:, :2] - pose[None, :2]) ** 2.0).sum(axis=-1)) ** 0.5
    nearest = int(np.argmin(distances))
    return float(distances[nearest]), float(abs(wrap_angle(poses[nearest, 2] - pose[2])))


def starting_roadblock_candidates(
    map_api: NuPlanMap, rear_axle_pose: np.ndarray, route_ids: Sequence[str]
) -> tuple[RoadBlockBase, list[RoadBlockBase]]:
    """The most promising block under the ego and the candidate list that comes with it (spec §3.1 step 2)."""
    point = rear_axle_pose[:2]
    candidates = list(map_api.get_proximal(MapLayer.ROADBLOCK, point, CANDIDATE_SEARCH_RADIUS)) + list(
        map_api.get_proximal(MapLayer.ROADBLOCK_CONNECTOR, point, CANDIDATE_SEARCH_RADIUS))
    if not candidates:
        for layer in (MapLayer.ROADBLOCK, MapLayer.ROADBLOCK_CONNECTOR):
            nearest, _ = map_api.get_nearest(layer, point)
            if nearest is not None:
                candidates.append(nearest)  # type: ignore[arg-type]
    on_route = set(route_ids)
    on_route_matches: list[tuple[RoadBlockBase, float]] = []
    off_route_matches: list[tuple[RoadBlockBase, float]] = []
    block_errors: list[float] = []
    for block in candidates:
        best_displacement = np.inf
        for lane in map_api.get_interior_edges(block):
            displacement, heading_error = nearest_vertex_errors(lane.baseline_path.discrete_path, rear_axle_pose)
            best_displacement = min(best_displacement, displacement)
            if heading_error < HEADING_ERROR_THRESHOLD and displacement < DISPLACEMENT_ERROR_THRESHOLD:
                (on_route_matches if block.id in on_route else off_route_matches).append((block, displacement))
        block_errors.append(best_displacement)
    for matches in (on_route_matches, off_route_matches):
        if matches:
            best = int(np.argmin([d for _, d in matches]))
            return matches[best][0], [b for b, _ in matches]
    if not candidates:
        raise MapError("the map has no roadblock or roadblock connector to start the route from",
                       location=map_api.location, layer="lane_groups_polygons")
    return candidates[int(np.argmin(block_errors))], candidates


def roadblock_bfs(
    map_api: NuPlanMap, start_id: str, targets: Sequence[str], max_depth: int, forward: bool = True
) -> tuple[list[RoadBlockBase], bool]:
    """Level-by-level breadth-first search on the roadblock graph (spec §3.1 "BFS details").

    Neighbours are queued in edge order; a node is tested against the targets when it is dequeued; parents
    are remembered per (id, depth). Returns the path in driving order (forward: start ... goal; backward:
    goal ... start) and whether a target was reached. Without success the path ends at the last queued node.
    """
    target_set = set(str(t) for t in targets)
    start = _block(map_api, start_id)
    queue: deque[Optional[RoadBlockBase]] = deque([start, None])
    parent: dict[tuple[str, int], Optional[RoadBlockBase]] = {(start.id, 1): None}
    end, end_depth, depth, found = start, 1, 1, False
    while queue:
        current = queue.popleft()
        if depth > max_depth:
            break
        if current is None:
            depth += 1
            queue.append(None)
            if queue[0] is None:
                break
            continue
        if current.id in target_set and depth <= max_depth:
            end, end_depth, found = current, depth, True
            break
        neighbour_ids = current.outgoing_edge_ids if forward else current.incoming_edge_ids
        for neighbour_id in neighbour_ids:
            neighbour = map_api.get_map_object(neighbour_id, current.neighbour_layer)
            queue.append(neighbour)  # type: ignore[arg-type]
            parent[(neighbour.id, depth + 1)] = current
            end, end_depth = neighbour, depth + 1  # type: ignore[assignment]
    path = [end]
    node, node_depth = end, end_depth
    while parent.get((node.id, node_depth)) is not None:
        node = parent[(node.id, node_depth)]  # type: ignore[assignment]
        node_depth -= 1
        path.append(node)
    if forward:
        path.reverse()
    return path, found


def remove_route_loops(blocks: list[RoadBlockBase]) -> list[RoadBlockBase]:
    """Truncate the route at the first roadblock connector overlapping an earlier one by more than 1 m²."""
    seen_polygons: list[shapely.Geometry] = []
    for index, block in enumerate(blocks):
        if not isinstance(block, RoadBlockConnector):
            continue
        if seen_polygons and index > 0:
            for polygon in seen_polygons:
                if polygon.intersects(block.polygon) and polygon.intersection(block.polygon).area > LOOP_OVERLAP_AREA:
                    return blocks[:index]
        seen_polygons.append(block.polygon)
    return blocks


def correct_route(map_api: NuPlanMap, rear_axle_pose: np.ndarray, route: Route) -> list[str]:
    """Corrected route ids (spec §3.1 step 2): start-block fix, gap filling, loop removal."""
    pose = np.asarray(rear_axle_pose, dtype=np.float64)[:3]
    blocks = list(route.roadblocks)
    ids = [b.id for b in blocks]
    starting_block, candidates = starting_roadblock_candidates(map_api, pose, ids)
    candidate_ids = [c.id for c in candidates]

    if starting_block.id not in ids and ids:
        path, found = roadblock_bfs(map_api, ids[0], candidate_ids, BACKWARD_SEARCH_DEPTH, forward=False)
        if found:
            blocks = path[:-1] + blocks
        else:
            path, found = roadblock_bfs(
                map_api, starting_block.id, ids[:FORWARD_SEARCH_TARGETS], FORWARD_SEARCH_DEPTH, forward=True)
            if found:
                reached = ids.index(path[-1].id)
                blocks = path + blocks[reached + 1:]
        ids = [b.id for b in blocks]

    insertions: dict[int, list[RoadBlockBase]] = {}
    for i in range(len(blocks) - 1):
        if ids[i] in blocks[i + 1].incoming_edge_ids:
            continue
        path, found = roadblock_bfs(map_api, ids[i], [ids[i + 1]], FORWARD_SEARCH_DEPTH, forward=True)
        if found and len(path) >= MIN_GAP_PATH_LENGTH:
            insertions[i] = path[1:-1]
    if insertions:
        filled: list[RoadBlockBase] = []
        for i, block in enumerate(blocks):
            filled.append(block)
            filled.extend(insertions.get(i, ()))
        blocks = filled

    return [b.id for b in remove_route_loops(blocks)]


def build_route(map_api: NuPlanMap, route_ids: Sequence[str], rear_axle_pose: np.ndarray) -> tuple[Route, Route]:
    """(uncorrected route, corrected route) for the current frame's route ids and ego rear-axle pose."""
    original = load_route(map_api, route_ids)
    corrected = load_route(map_api, correct_route(map_api, rear_axle_pose, original))
    return original, corrected
