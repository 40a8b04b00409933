"""IDM proposal roll-outs along paths with leading-agent search (spec pdm_score.md §3.8).

All proposals (path index x policy index) advance together; the leading-agent search runs per path because
the policies of one path share the driving corridor and the leading-agent vector (the documented quirk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import shapely

from navsim_eval.pdm.constants import EGO_LENGTH, EGO_WIDTH, RED_LIGHT_PREFIX
from navsim_eval.pdm.footprint import ego_corners
from navsim_eval.pdm.path import PathSetInterpolator, PDMPath
from navsim_eval.pdm.planner.config import PDMClosedConfig
from navsim_eval.pdm.planner.forecast import ForecastObservation
from navsim_eval.pdm.planner.idm import idm_step

# Components of the leading-agent vector (spec §3.8).
LEAD_PROGRESS, LEAD_VELOCITY, LEAD_REAR_LENGTH = 0, 1, 2


@dataclass
class RolloutState:
    """Arrays over (proposal, step): IDM progress and velocity, path poses and leading-agent vectors."""

    progress: np.ndarray  # (N, T+1)
    velocity: np.ndarray  # (N, T+1)
    poses: np.ndarray  # (N, T+1, 3)
    leading: np.ndarray  # (N, T+1, 3)


class ProposalGenerator:
    """Unrolls every (path, IDM policy) proposal step by step; proposal index = path * policies + policy."""

    def __init__(
        self,
        paths: Sequence[PDMPath],
        target_velocities: np.ndarray,
        observation: ForecastObservation,
        initial_pose: np.ndarray,
        initial_velocity: float,
        config: PDMClosedConfig = PDMClosedConfig(),
    ):
        self.config = config
        self.paths = list(paths)
        self.observation = observation
        self.target_velocities = np.asarray(target_velocities, dtype=np.float64)
        self.num_policies = len(self.target_velocities)
        num = len(self.paths) * self.num_policies
        steps = config.trajectory_steps + 1
        self.path_of = np.repeat(np.arange(len(self.paths)), self.num_policies)
        self.policy_of = np.tile(np.arange(self.num_policies), len(self.paths))
        self.state = RolloutState(np.zeros((num, steps)), np.zeros((num, steps)), np.zeros((num, steps, 3)),
                                  np.zeros((num, steps, 3)))
        rear_axle = shapely.Point(float(initial_pose[0]), float(initial_pose[1]))
        max_target = abs(float(np.max(self.target_velocities)))
        self.corridors: list[shapely.Geometry] = []
        self.path_lengths = np.array([float(p.linestring.length) for p in self.paths])
        for index, path in enumerate(self.paths):
            progress0 = float(path.project(rear_axle))
            end = progress0 + max_target * config.trajectory_steps * config.dt
            self.corridors.append(path.substring(progress0, end).buffer(EGO_WIDTH / 2.0, cap_style="square"))
            rows = self.path_of == index
            self.state.progress[rows, 0] = progress0
            self.state.poses[rows, 0] = path.interpolate(np.array([progress0]))[0]
        self.state.velocity[:, 0] = initial_velocity
        self._targets = self.target_velocities[self.policy_of]
        self._group_cache: dict = {}
        self._interpolate = PathSetInterpolator(self.paths)

    @property
    def num_proposals(self) -> int:
        return len(self.path_of)

    def _groups(self, proposals: Optional[Sequence[int]]) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
        """(proposal indices, [(path index, its proposal indices)]) for a selection (default all)."""
        key = None if proposals is None else tuple(int(p) for p in proposals)
        cached = self._group_cache.get(key)
        if cached is None:
            index = np.arange(self.num_proposals) if key is None else np.asarray(key, dtype=np.int64)
            cached = (index, [(int(p), index[self.path_of[index] == p]) for p in np.unique(self.path_of[index])])
            self._group_cache[key] = cached
        return cached

    def step(self, k: int, proposals: Optional[Sequence[int]] = None) -> None:
        """Advance the given proposals (default all) from step k-1 to k."""
        s = self.state
        index, groups = self._groups(proposals)
        for path_index, rows in groups:
            self._update_leading(k, rows, path_index)
        leading = s.leading[index, k]
        progress, velocity = idm_step(
            s.progress[index, k - 1], s.velocity[index, k - 1], leading[:, LEAD_PROGRESS],
            leading[:, LEAD_VELOCITY], leading[:, LEAD_REAR_LENGTH], self._targets[index],
            self.config.idm, self.config.dt)
        s.progress[index, k] = progress
        s.velocity[index, k] = velocity
        s.poses[index, k] = self._interpolate(self.path_of[index], progress)

    def rollout(self, first_step: int, last_step: int, proposals: Optional[Sequence[int]] = None) -> None:
        for k in range(first_step, last_step + 1):
            self.step(k, proposals)

    def _update_leading(self, k: int, rows: np.ndarray, path_index: int) -> None:
        s = self.state
        if k % self.config.leading_agent_update_interval != 0:
            s.leading[rows, k] = s.leading[rows, k - 1]
            return
        occupancy = self.observation.at_step(k)
        candidates = [int(i) for i in occupancy.intersecting(self.corridors[path_index])
                      if occupancy.tokens[i] not in self.observation.collided_tokens]
        # One vector shared by the policies of a path within a step (spec §3.8 quirk): partly overwritten.
        shared = np.zeros(3, dtype=np.float64)
        if not candidates:
            for row in rows:
                shared[LEAD_PROGRESS] = self.path_lengths[path_index]
                shared[LEAD_REAR_LENGTH] = EGO_LENGTH / 2.0
                s.leading[row, k] = shared
            return
        polygons = occupancy.polygons[candidates]
        path = self.paths[path_index]
        object_progress = shapely.line_locate_point(path.linestring, shapely.centroid(polygons))
        ego_progress = s.progress[rows, k - 1]
        ahead = object_progress[None, :] > ego_progress[:, None]  # (P, A)
        need = ahead.any(axis=1)
        distances = np.full(ahead.shape, np.inf)
        if need.any():
            footprints = shapely.polygons(ego_corners(s.poses[rows[need], k - 1]))
            distances[need] = shapely.distance(footprints[:, None], polygons[None, :])
            distances[~ahead] = np.inf
        nearest = np.argmin(distances, axis=1)
        for j, row in enumerate(rows):
            if need[j]:
                shared[LEAD_PROGRESS] = ego_progress[j] + distances[j, nearest[j]]
                token = occupancy.tokens[candidates[nearest[j]]]
                if not token.startswith(RED_LIGHT_PREFIX):
                    shared[LEAD_VELOCITY] = self._projected_velocity(s.poses[row, k - 1, 2], token)
            else:
                shared[LEAD_PROGRESS] = self.path_lengths[path_index]
                shared[LEAD_REAR_LENGTH] = EGO_LENGTH / 2.0
            s.leading[row, k] = shared

    def _projected_velocity(self, ego_heading: float, token: str) -> float:
        """Speed of an agent projected on the ego heading; 0 for static objects."""
        if not self.observation.is_agent(token):
            return 0.0
        speed = float(np.hypot(*self.observation.velocities[token]))
        heading = self.observation.headings[token]
        relative = np.arctan2(np.sin(heading - ego_heading), np.cos(heading - ego_heading))
        return speed * float(np.cos(relative))
