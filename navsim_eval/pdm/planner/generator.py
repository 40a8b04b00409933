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
        self._collided_masks: dict[int, np.ndarray] = {}
        self._corridor_array = np.array(self.corridors, dtype=object)
        self._linestrings = np.array([path.linestring for path in self.paths], dtype=object)
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
        self._update_leading_groups(k, groups)
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
        """Leading-agent vectors at step k of the given proposals of one path."""
        self._update_leading_groups(k, [(path_index, np.asarray(rows, dtype=np.int64))])

    def _leading_pairs(self, k: int, groups: Sequence[tuple[int, np.ndarray]]) -> tuple:
        """Candidate leaders at step k: (rows, per (row, corridor obstacle) pair: row position, query order,
        polygon, centroid progress along the row's path, obstacle index; per group: has obstacles).

        A path's candidates are the obstacles of step k's occupancy map intersecting its corridor, in the tree's
        query order, without already-collided objects; all paths' centroids are projected in one call.
        """
        occupancy = self.observation.at_step(k)
        paths = np.array([path_index for path_index, _ in groups], dtype=np.int64)
        rows_per_group = np.array([len(rows) for _, rows in groups], dtype=np.int64)
        all_rows = np.concatenate([rows for _, rows in groups])
        if len(occupancy.tokens):
            # One bulk query: per corridor the same hits, in the same order, as a query of that corridor alone.
            group, obstacle = occupancy.tree.query(self._corridor_array[paths], predicate="intersects")
            order = np.argsort(group, kind="stable")
            group, obstacle = group[order], obstacle[order]
            keep = ~self._collided_mask(k)[obstacle]
            group, obstacle = group[keep], obstacle[keep]
        else:
            group, obstacle = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        counts = np.bincount(group, minlength=len(groups))
        polygons = occupancy.polygons[obstacle]
        if len(obstacle):
            progress = shapely.line_locate_point(self._linestrings[paths[group]], shapely.centroid(polygons))
        else:
            progress = np.zeros(0)
        group_of_row = np.repeat(np.arange(len(groups)), rows_per_group)
        per_row = counts[group_of_row]
        pair_row = np.repeat(np.arange(len(all_rows)), per_row)
        pair_order = np.arange(int(per_row.sum())) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        pair_candidate = (np.cumsum(counts) - counts)[group_of_row][pair_row] + pair_order
        return (all_rows, pair_row, pair_order, polygons[pair_candidate], progress[pair_candidate],
                obstacle[pair_candidate], counts > 0)

    def _collided_mask(self, k: int) -> np.ndarray:
        """(obstacles,) bool of step k's occupancy map: already collided at the start (ignored as leaders)."""
        map_index = k // self.observation.sample_interval
        mask = self._collided_masks.get(map_index)
        if mask is None:
            collided = self.observation.collided_tokens
            mask = np.array([t in collided for t in self.observation.at_step(k).tokens], dtype=bool)
            self._collided_masks[map_index] = mask
        return mask

    def _update_leading_groups(self, k: int, groups: Sequence[tuple[int, np.ndarray]]) -> None:
        """Leading-agent vectors at step k for [(path index, its proposal rows)], all paths in one pass.

        Per row: the nearest (footprint distance) obstacle of the path's corridor whose centroid lies ahead on
        the path; ties go to the first in the corridor query order. One vector is shared by the rows of a path
        within a step (spec §3.8 quirk): each row overwrites only some of its components.
        """
        s = self.state
        if k % self.config.leading_agent_update_interval != 0:
            for _, rows in groups:
                s.leading[rows, k] = s.leading[rows, k - 1]
            return
        occupancy = self.observation.at_step(k)
        all_rows, pair_row, pair_order, pair_polygon, pair_progress, pair_obstacle, has_obstacles = (
            self._leading_pairs(k, groups))
        ego_progress = s.progress[all_rows, k - 1]
        ahead = pair_progress > ego_progress[pair_row]
        nearest_distance = np.full(len(all_rows), np.inf)
        nearest_obstacle = np.full(len(all_rows), -1, dtype=np.int64)
        if ahead.any():
            row, order, obstacle = pair_row[ahead], pair_order[ahead], pair_obstacle[ahead]
            footprints = shapely.polygons(ego_corners(s.poses[all_rows, k - 1]))
            distance = shapely.distance(footprints[row], pair_polygon[ahead])
            ranked = np.lexsort((order, distance, row))  # per row: smallest distance, then first in query order
            first_of_row = ranked[np.concatenate([[True], row[ranked][1:] != row[ranked][:-1]])]
            nearest_distance[row[first_of_row]] = distance[first_of_row]
            nearest_obstacle[row[first_of_row]] = obstacle[first_of_row]
        need = nearest_obstacle >= 0
        velocity = self._projected_velocities(s.poses[all_rows, k - 1, 2],
                                              [occupancy.tokens[i] if i >= 0 else None for i in nearest_obstacle])
        values = np.zeros((len(all_rows), 3))
        position = 0
        for group, (path_index, rows) in enumerate(groups):
            shared = [0.0, 0.0, 0.0]
            if not has_obstacles[group]:
                values[position:position + len(rows)] = (self.path_lengths[path_index], 0.0, EGO_LENGTH / 2.0)
                position += len(rows)
                continue
            for j in range(position, position + len(rows)):
                if need[j]:
                    shared[LEAD_PROGRESS] = ego_progress[j] + nearest_distance[j]
                    if not np.isnan(velocity[j]):  # red lights keep the vector's velocity
                        shared[LEAD_VELOCITY] = velocity[j]
                else:
                    shared[LEAD_PROGRESS] = self.path_lengths[path_index]
                    shared[LEAD_REAR_LENGTH] = EGO_LENGTH / 2.0
                values[j] = shared
            position += len(rows)
        s.leading[all_rows, k] = values

    def _projected_velocities(self, ego_headings: np.ndarray, tokens: Sequence[Optional[str]]) -> np.ndarray:
        """Per row: the leader's speed projected on the ego heading (0 for static objects, NaN for red lights
        and rows without a leader)."""
        result = np.full(len(tokens), np.nan)
        agents = [j for j, t in enumerate(tokens) if t is not None and not t.startswith(RED_LIGHT_PREFIX)
                  and self.observation.is_agent(t)]
        statics = [j for j, t in enumerate(tokens) if t is not None and not t.startswith(RED_LIGHT_PREFIX)
                   and not self.observation.is_agent(t)]
        result[statics] = 0.0
        if agents:
            velocity = np.array([self.observation.velocities[tokens[j]] for j in agents], dtype=np.float64)
            heading = np.array([self.observation.headings[tokens[j]] for j in agents], dtype=np.float64)
            speed = np.hypot(velocity[:, 0], velocity[:, 1])
            difference = heading - ego_headings[agents]
            relative = np.arctan2(np.sin(difference), np.cos(difference))
            result[agents] = speed * np.cos(relative)
        return result
