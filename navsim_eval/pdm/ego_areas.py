"""Where the ego is at each simulated step, against the drivable-area map (spec pdm_score.md §6).

Point tests use strict containment (a point on a polygon boundary is outside), as the devkit does
(`DrivableMap.containing_pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

import numpy as np
import shapely

from navsim_eval.pdm.footprint import ego_centers, ego_corners

LANE_TYPES = ("LANE", "LANE_CONNECTOR")
DRIVABLE_AREA_TYPES = ("ROADBLOCK", "INTERSECTION", "CARPARK_AREA")
INTERSECTION_TYPE = "INTERSECTION"
NUM_CORNERS = 4


@dataclass
class EgoGeometry:
    """Ego footprint per simulated state: corners (B, T, 4, 2) FL, RL, RR, FR; centres and rear axles (B, T, 2)."""

    corners: np.ndarray
    centers: np.ndarray
    rear_axles: np.ndarray
    headings: np.ndarray

    @classmethod
    def from_states(cls, states: np.ndarray) -> "EgoGeometry":
        xyh = states[..., :3]
        return cls(corners=ego_corners(xyh), centers=ego_centers(xyh), rear_axles=xyh[..., :2].copy(),
                   headings=xyh[..., 2].copy())


@dataclass
class EgoAreas:
    """(B, T) bool masks of §6 plus the intersection tests used by DDC (v2), LK and TTC."""

    multiple_lanes: np.ndarray
    non_drivable: np.ndarray
    oncoming: np.ndarray
    center_in_intersection: np.ndarray
    rear_axle_in_intersection: np.ndarray


def compute_ego_areas(geometry: EgoGeometry, drivable_map, route_lane_ids: Collection[str]) -> EgoAreas:
    """Multiple lanes, non-drivable, oncoming (§6) and intersection membership for every (row, step).

    Each point kind is tested only against the entry types it is judged by: corners against lanes, lane
    connectors and drivable areas; centres against on-route lanes and intersections; rear axles against
    intersections. The work is on (point, entry) containment pairs, never on a dense point x entry matrix.
    """
    batch, steps = geometry.centers.shape[:2]
    num_states = batch * steps
    types = np.asarray(drivable_map.types)
    is_lane = np.isin(types, LANE_TYPES)
    is_drivable = np.isin(types, DRIVABLE_AREA_TYPES)
    is_intersection = types == INTERSECTION_TYPE
    route = {str(t) for t in route_lane_ids}
    on_route = is_lane & np.array([t in route for t in drivable_map.tokens], dtype=bool)

    point, entry = drivable_map.containing_pairs(geometry.corners.reshape(-1, 2), np.flatnonzero(is_lane | is_drivable))
    state = point // NUM_CORNERS
    # Multiple lanes: corners in more than one lane and no lane holding all four corners.
    lane_pairs = is_lane[entry]
    lane_keys, corner_counts = np.unique(state[lane_pairs] * len(types) + entry[lane_pairs], return_counts=True)
    lane_states = lane_keys // len(types)
    lanes_touched = np.bincount(lane_states, minlength=num_states)
    full_lane = np.zeros(num_states, dtype=bool)
    full_lane[lane_states[corner_counts == NUM_CORNERS]] = True
    multiple_lanes = (lanes_touched > 1) & ~full_lane
    # Non-drivable: some corner in no drivable-area polygon.
    corner_drivable = np.zeros(num_states * NUM_CORNERS, dtype=bool)
    corner_drivable[point[is_drivable[entry]]] = True
    non_drivable = corner_drivable.reshape(num_states, NUM_CORNERS).sum(axis=-1) < NUM_CORNERS

    center_point, center_entry = drivable_map.containing_pairs(geometry.centers.reshape(-1, 2),
                                                               np.flatnonzero(on_route | is_intersection))
    center_on_route = np.zeros(num_states, dtype=bool)
    center_on_route[center_point[on_route[center_entry]]] = True
    center_in_intersection = np.zeros(num_states, dtype=bool)
    center_in_intersection[center_point[is_intersection[center_entry]]] = True
    rear_point, _ = drivable_map.containing_pairs(geometry.rear_axles.reshape(-1, 2), np.flatnonzero(is_intersection))
    rear_in_intersection = np.zeros(num_states, dtype=bool)
    rear_in_intersection[rear_point] = True
    shape = (batch, steps)
    return EgoAreas(
        multiple_lanes=multiple_lanes.reshape(shape),
        non_drivable=non_drivable.reshape(shape),
        oncoming=~center_on_route.reshape(shape),
        center_in_intersection=center_in_intersection.reshape(shape),
        rear_axle_in_intersection=rear_in_intersection.reshape(shape),
    )
