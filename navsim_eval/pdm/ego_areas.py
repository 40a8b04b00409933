"""Where the ego is at each simulated step, against the drivable-area map (spec pdm_score.md §6).

Point tests use strict containment (a point on a polygon boundary is outside), as the devkit does.
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


def points_in_map(points: np.ndarray, drivable_map) -> np.ndarray:
    """(N, K) bool: point n strictly inside drivable-map polygon k.

    Each polygon is prepared once and tested only against the points strictly inside its bounding box
    (map polygons have many vertices; unprepared point-in-polygon tests dominate otherwise).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    polygons = np.asarray(drivable_map.polygons, dtype=object).reshape(-1)
    result = np.zeros((len(points), len(polygons)), dtype=bool)
    if len(points) == 0 or len(polygons) == 0:
        return result
    x, y = points[:, 0], points[:, 1]
    bounds = shapely.bounds(polygons)
    for index, polygon in enumerate(polygons):
        x_min, y_min, x_max, y_max = bounds[index]
        candidates = np.flatnonzero((x > x_min) & (x < x_max) & (y > y_min) & (y < y_max))
        if len(candidates):
            if not shapely.is_prepared(polygon):
                shapely.prepare(polygon)
            result[candidates, index] = shapely.contains_xy(polygon, x[candidates], y[candidates])
    return result


def compute_ego_areas(geometry: EgoGeometry, drivable_map, route_lane_ids: Collection[str]) -> EgoAreas:
    """Multiple lanes, non-drivable, oncoming (§6) and intersection membership for every (row, step)."""
    batch, steps = geometry.centers.shape[:2]
    points = np.concatenate(
        [geometry.corners, geometry.centers[:, :, None], geometry.rear_axles[:, :, None]], axis=2
    )  # (B, T, 6, 2)
    inside = points_in_map(points, drivable_map).reshape(batch, steps, NUM_CORNERS + 2, -1)
    types = np.asarray(drivable_map.types)
    lane_mask = np.isin(types, LANE_TYPES)
    drivable_mask = np.isin(types, DRIVABLE_AREA_TYPES)
    intersection_mask = types == INTERSECTION_TYPE
    route = {str(t) for t in route_lane_ids}
    on_route_mask = lane_mask & np.array([str(t) in route for t in drivable_map.tokens], dtype=bool)

    corners_in_lanes = inside[:, :, :NUM_CORNERS][..., lane_mask].sum(axis=2)  # (B, T, lanes): corners inside
    multiple_lanes = ((corners_in_lanes > 0).sum(axis=-1) > 1) & np.all(corners_in_lanes != NUM_CORNERS, axis=-1)
    corner_drivable = inside[:, :, :NUM_CORNERS][..., drivable_mask].any(axis=-1)  # (B, T, 4)
    non_drivable = corner_drivable.sum(axis=-1) < NUM_CORNERS
    center = inside[:, :, NUM_CORNERS]
    rear = inside[:, :, NUM_CORNERS + 1]
    oncoming = ~center[..., on_route_mask].any(axis=-1)
    return EgoAreas(
        multiple_lanes=multiple_lanes,
        non_drivable=non_drivable,
        oncoming=oncoming,
        center_in_intersection=center[..., intersection_mask].any(axis=-1),
        rear_axle_in_intersection=rear[..., intersection_mask].any(axis=-1),
    )
