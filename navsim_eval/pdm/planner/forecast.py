"""Planner observation: constant-velocity forecasts of the current objects plus red lights (spec §3.8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import shapely
from shapely import STRtree

from data_pipelines.geometry import wrap_angle
from navsim_eval.pdm.constants import RED_LIGHT_PREFIX, RED_LIGHT_TYPE
from navsim_eval.pdm.planner.config import PDMClosedConfig
from navsim_eval.pdm.footprint import box_corners, ego_centers, ego_corners, polygons_from_corners
from navsim_eval.pdm.objects import SceneObjects

# Agent types and the per-type limits applied in this order (spec §3.8).
AGENT_ORDER = ("vehicle", "pedestrian", "bicycle")


@dataclass
class OccupancyMap:
    """Obstacles at one forecast time: tokens and polygons with an STRtree in the same order; the first
    `len(box_corners)` polygons are boxes made from those corners (the scorer's view keeps them as corners)."""

    tokens: list[str]
    polygons: np.ndarray
    box_corners: np.ndarray  # (m, 4, 2)
    _tree: Optional[STRtree] = field(default=None, init=False, repr=False)

    @property
    def tree(self) -> STRtree:
        if self._tree is None:
            self._tree = STRtree(self.polygons)
        return self._tree

    def intersecting(self, geometry: shapely.Geometry) -> np.ndarray:
        """Indices of the obstacles intersecting a geometry, in the tree's query order."""
        if len(self.tokens) == 0:
            return np.zeros(0, dtype=np.int64)
        return self.tree.query(geometry, predicate="intersects")


@dataclass
class ForecastObservation:
    """Occupancy maps every `sample_interval` steps, per-token object data and already-collided tokens."""

    maps: list[OccupancyMap]
    sample_interval: int
    headings: dict[str, float]
    velocities: dict[str, np.ndarray]
    object_types: dict[str, str]
    collided_tokens: set[str]
    _observation: Optional[object] = field(default=None, init=False, repr=False, compare=False)

    def at_step(self, step: int) -> OccupancyMap:
        return self.maps[step // self.sample_interval]

    @property
    def num_steps(self) -> int:
        return len(self.maps) * self.sample_interval - (self.sample_interval - 1)

    def is_agent(self, token: str) -> bool:
        return self.object_types.get(token) in AGENT_ORDER

    def to_observation(self):
        """The scorer's `Observation` container with one entry list per 10 Hz step (built once: the proposal
        generator reads its obstacle outlines, the scorer scores the proposals against it)."""
        from navsim_eval.pdm.observation import Observation, UniqueObject

        if self._observation is not None:
            return self._observation
        steps = self.num_steps
        # Boxes by their corners, the other polygons (red lights) as they are; the two steps of a map share
        # its arrays (one array object per map).
        others = {id(m): m.polygons[len(m.box_corners):] for m in self.maps}
        tokens = [self.at_step(k).tokens for k in range(steps)]
        corners = [self.at_step(k).box_corners for k in range(steps)]
        polygons = [others[id(self.at_step(k))] for k in range(steps)]
        unique = {
            token: UniqueObject(
                token=token, object_type=self.object_types[token], is_agent=self.is_agent(token),
                heading=float(self.headings[token]), velocity=np.asarray(self.velocities[token], dtype=np.float64))
            for token in self.object_types
        }
        self._observation = Observation(tokens, polygons, unique, set(self.collided_tokens),
                                        box_corners_per_step=corners)
        return self._observation


def _nearest(indices: np.ndarray, distances: np.ndarray, limit: int) -> np.ndarray:
    return indices[np.argsort(distances[indices])][:limit]


def build_forecast_observation(
    objects: SceneObjects,
    ego_pose: np.ndarray,
    red_light_ids: Sequence[str],
    red_light_polygons: Sequence[shapely.Geometry],
    config: PDMClosedConfig = PDMClosedConfig(),
) -> ForecastObservation:
    """Constant-velocity forecast of the objects within `map_radius` of the ego box centre (spec §3.8).

    Order of the entries: static objects (nearest first), vehicles, pedestrians, bicycles (each nearest
    first, limited per type), red lights. Agents move along their box heading (or its opposite when the
    velocity points backwards) at their speed; static objects and red lights stay.
    """
    center = ego_centers(np.asarray(ego_pose, dtype=np.float64))
    distance = np.sqrt((objects.x - center[0]) ** 2 + (objects.y - center[1]) ** 2)
    in_range = np.flatnonzero(distance <= config.map_radius)
    types = np.array(objects.types, dtype=object)
    is_agent = objects.is_agent
    limits = {"vehicle": config.max_vehicles, "pedestrian": config.max_pedestrians, "bicycle": config.max_bicycles}
    static_index = _nearest(in_range[~is_agent[in_range]], distance, config.max_static_objects)
    agent_index = np.concatenate([
        _nearest(in_range[types[in_range] == kind], distance, limits[kind]) for kind in AGENT_ORDER
    ]).astype(np.int64)

    speed = np.hypot(objects.vx, objects.vy)
    velocity_angle = np.arctan2(objects.vy, objects.vx)
    forward = np.abs(wrap_angle(objects.heading - velocity_angle)) < np.pi / 2.0
    track_heading = np.where(forward, objects.heading, wrap_angle(objects.heading + np.pi))
    dxy = np.stack([np.cos(track_heading) * speed, np.sin(track_heading) * speed], axis=-1)

    def corners(index: np.ndarray) -> np.ndarray:
        centers = np.stack([objects.x[index], objects.y[index]], axis=-1)
        return box_corners(centers, objects.heading[index], objects.length[index] / 2.0, objects.width[index] / 2.0)

    static_corners = corners(static_index)
    static_polygons = polygons_from_corners(static_corners)
    agent_corners = corners(agent_index)
    agent_dxy = dxy[agent_index]
    light_tokens = [f"{RED_LIGHT_PREFIX}{i}" for i in red_light_ids]
    light_polygons = np.array(list(red_light_polygons), dtype=object)
    tokens = ([objects.tokens[i] for i in static_index] + [objects.tokens[i] for i in agent_index] + light_tokens)

    samples = range(0, config.trajectory_steps + config.observation_sample_interval, config.observation_sample_interval)
    delta_t = np.array([float(sample) * config.dt for sample in samples])
    # Agents move at constant velocity: every map's agent boxes, built in one call.
    agent_sample_corners = agent_corners[None] + delta_t[:, None, None, None] * agent_dxy[None, :, None, :]
    agent_polygons = polygons_from_corners(agent_sample_corners)
    maps: list[OccupancyMap] = []
    for sample_corners, sample_polygons in zip(agent_sample_corners, agent_polygons):  # one (read-only) token list
        polygons = np.concatenate([static_polygons, sample_polygons, light_polygons]).astype(object)
        maps.append(OccupancyMap(tokens, polygons, np.concatenate([static_corners, sample_corners])))

    footprint = polygons_from_corners(ego_corners(np.asarray(ego_pose, dtype=np.float64)))[()]
    collided: set[str] = set()
    first = maps[0]
    for i in first.intersecting(footprint):
        token = first.tokens[i]
        if token.startswith(RED_LIGHT_PREFIX) and not footprint.within(first.polygons[i]):
            continue
        collided.add(token)

    kept = np.concatenate([static_index, agent_index]).astype(np.int64)
    headings = {objects.tokens[i]: float(objects.heading[i]) for i in kept}
    velocities = {objects.tokens[i]: np.array([objects.vx[i], objects.vy[i]]) for i in kept}
    object_types = {objects.tokens[i]: objects.types[i] for i in kept}
    for token in light_tokens:
        headings[token] = 0.0
        velocities[token] = np.zeros(2)
        object_types[token] = RED_LIGHT_TYPE
    return ForecastObservation(maps, config.observation_sample_interval, headings, velocities, object_types, collided)
