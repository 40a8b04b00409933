"""IDM proposal roll-outs along paths with leading-agent search (spec pdm_score.md §3.8).

All proposals (path index x policy index) advance together; the leading-agent search runs per path because
the policies of one path share the driving corridor and the leading-agent vector (the documented quirk).
The candidate leaders of each update step (corridor queries, centroid projections) do not depend on the
proposals' states and are found up front with shapely; the sequential part (nearest leader by footprint
distance, IDM, path interpolation) runs as one compiled loop (docs/pdm_scorer.md, "Speed").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numba
import numpy as np
import shapely

from navsim_eval.pdm.compiled_geometry import (BOUND_SLACK_M, box_gap_squared, project_on_line, quad_bounds,
                                                quad_polygon_distance)
from navsim_eval.pdm.constants import EGO_LENGTH, EGO_WIDTH, RED_LIGHT_PREFIX
from navsim_eval.pdm.footprint import ego_corners_into
from navsim_eval.pdm.path import PathSetInterpolator, PDMPath, interpolate_pose
from navsim_eval.pdm.planner.config import PDMClosedConfig
from navsim_eval.pdm.planner.forecast import ForecastObservation
from navsim_eval.pdm.planner.idm import idm_step

# Components of the leading-agent vector (spec §3.8).
LEAD_PROGRESS, LEAD_VELOCITY, LEAD_REAR_LENGTH = 0, 1, 2
# Obstacle kinds: an agent's speed is projected on the ego heading, a static object has speed 0, a red light
# leaves the vector's speed as it is.
AGENT_KIND, STATIC_KIND, RED_LIGHT_KIND = 0, 1, 2


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
        self._path_coordinates = [np.ascontiguousarray(shapely.get_coordinates(path.linestring), dtype=np.float64)
                                  for path in self.paths]
        self._interpolate = PathSetInterpolator(self.paths)
        self._obstacle_tables()

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

    def rollout(self, first_step: int, last_step: int, proposals: Optional[Sequence[int]] = None) -> None:
        """Advance the given proposals (default all) from step first_step - 1 to last_step: leading-agent vectors
        at the update steps, then one IDM step and the path pose per proposal and step (one compiled call)."""
        index, groups = self._groups(proposals)
        steps = [k for k in range(first_step, last_step + 1) if k % self.config.leading_agent_update_interval == 0]
        candidates = self._candidates(steps, groups)
        rows, group_start, group_path = self._group_arrays(groups)
        idm = self.config.idm
        s = self.state
        _rollout(first_step, last_step, self.config.leading_agent_update_interval, rows, group_start, group_path,
                 *candidates, s.progress, s.velocity, s.poses, s.leading, self._targets, self.path_lengths,
                 *self._obstacle_arrays(), self._interpolate.tables,
                 idm.min_gap_to_lead_agent, idm.headway_time, idm.accel_max, idm.decel_max,
                 idm.acceleration_exponent, self.config.dt)

    def _update_leading(self, k: int, rows: np.ndarray, path_index: int) -> None:
        """Leading-agent vectors at step k of the given proposals of one path."""
        self._update_leading_groups(k, [(path_index, np.asarray(rows, dtype=np.int64))])

    def _update_leading_groups(self, k: int, groups: Sequence[tuple[int, np.ndarray]]) -> None:
        """Leading-agent vectors at step k for [(path index, its proposal rows)] (see `_leading_vectors`)."""
        interval = self.config.leading_agent_update_interval
        candidates = self._candidates([k] if k % interval == 0 else [], groups)
        rows, group_start, group_path = self._group_arrays(groups)
        s = self.state
        _leading_vectors(k, 0, k % interval == 0, rows, group_start, group_path, *candidates, s.progress, s.poses,
                         s.leading, self.path_lengths, *self._obstacle_arrays())

    def _obstacle_arrays(self) -> tuple:
        """The obstacle arguments of the compiled loops: the outlines' ring table (coordinates, coordinate start,
        ring start), then per obstacle its outline, bounds, kind, speed and heading."""
        outlines = self._flat.outlines
        return (outlines.coordinates, outlines.coordinate_start, outlines.ring_start, self._obstacle_outline,
                self._obstacle_bounds, self._obstacle_kind, self._obstacle_speed, self._obstacle_heading)

    @staticmethod
    def _group_arrays(groups: Sequence[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows of all groups, start of each group's rows (G + 1,), path of each group)."""
        rows = np.concatenate([np.asarray(r, dtype=np.int64) for _, r in groups]).astype(np.int64)
        group_start = np.concatenate([[0], np.cumsum([len(r) for _, r in groups])]).astype(np.int64)
        return rows, group_start, np.array([p for p, _ in groups], dtype=np.int64)

    def _candidates(self, steps: Sequence[int], groups: Sequence[tuple[int, np.ndarray]]) -> tuple:
        """Candidate leaders of every group at the given update steps (they do not depend on the ego state):
        per (step, group) the obstacles of the step's occupancy map intersecting the path's corridor, in the
        tree's query order, without already-collided objects, with their centroid progress along the path.

        Returns (candidate start per (step, group) (S, G + 1), obstacle (global index), centroid progress).
        """
        paths = np.array([path_index for path_index, _ in groups], dtype=np.int64)
        starts = np.zeros((len(steps), len(groups) + 1), dtype=np.int64)
        groups_of, obstacles = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        total = 0
        for j, k in enumerate(steps):
            occupancy = self.observation.at_step(k)
            if len(occupancy.tokens):
                # One bulk query: per corridor the same hits, in the same order, as a query of that corridor alone.
                group, obstacle = occupancy.tree.query(self._corridor_array[paths], predicate="intersects")
                order = np.argsort(group, kind="stable")
                group, obstacle = group[order], obstacle[order]
                keep = ~self._collided_mask(k)[obstacle]
                groups_of.append(group[keep])
                obstacles.append(obstacle[keep] + self._map_offsets[k // self.observation.sample_interval])
                counts = np.bincount(group[keep], minlength=len(groups))
            else:
                counts = np.zeros(len(groups), dtype=np.int64)
            starts[j, 1:] = np.cumsum(counts)
            starts[j] += total
            total = int(starts[j, -1])
        group = np.concatenate(groups_of).astype(np.int64)
        obstacle = np.concatenate(obstacles).astype(np.int64)
        # Centroid progress along each candidate's path: one projection call for all steps, once per (path,
        # distinct obstacle shape): static objects and red lights are candidates at every step.
        progress = np.zeros(len(obstacle))
        if len(obstacle):
            shape = self._obstacle_shape[obstacle]
            key = paths[group] * (int(shape.max()) + 1) + shape
            _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            # Centroids of the candidates only (a corridor meets few of the obstacles), once per outline,
            # projected by the compiled equivalent of `shapely.line_locate_point` (a city path has ~10^3 vertices).
            centroids = np.ascontiguousarray(self._flat.centroids(self._obstacle_entries[obstacle[first]]))
            centroid_path = paths[group[first]]
            distinct_progress = np.empty(len(first))
            for path_index in np.unique(centroid_path):
                on_path = centroid_path == path_index
                distinct_progress[on_path] = project_on_line(self._path_coordinates[path_index], centroids[on_path])
            progress = distinct_progress[inverse.reshape(-1)]
        return starts, obstacle, np.asarray(progress, dtype=np.float64)

    def _collided_mask(self, k: int) -> np.ndarray:
        """(obstacles,) bool of step k's occupancy map: already collided at the start (ignored as leaders)."""
        map_index = k // self.observation.sample_interval
        mask = self._collided_masks.get(map_index)
        if mask is None:
            collided = self.observation.collided_tokens
            mask = np.array([t in collided for t in self.observation.at_step(k).tokens], dtype=bool)
            self._collided_masks[map_index] = mask
        return mask

    def _obstacle_tables(self) -> None:
        """Every occupancy map's obstacles under one global index: outline (in a `RingTable`), kind (agent,
        static, red light), speed and heading of their track."""
        maps = self.observation.maps
        self._map_offsets = np.concatenate([[0], np.cumsum([len(m.tokens) for m in maps])]).astype(np.int64)
        # The outlines of the scorer's view of the forecast (static objects and red lights are one polygon in
        # every map); map m is the view's step m * sample_interval.
        flat = self.observation.to_observation().flat()
        steps = np.arange(len(maps)) * self.observation.sample_interval
        entries = np.concatenate([flat.offsets[k] + np.arange(len(m.tokens)) for k, m in zip(steps, maps)])
        entries = entries.astype(np.int64)
        self._flat, self._obstacle_entries = flat, entries  # outlines: flat.outlines
        self._obstacle_outline = flat.outline[entries]
        self._obstacle_bounds = np.ascontiguousarray(flat.bounds[entries])
        kinds, speeds, headings = [], [], []
        previous_tokens, previous = None, None
        for occupancy in maps:  # the maps of a forecast list the same tokens: computed once
            if occupancy.tokens != previous_tokens:
                previous_tokens, previous = occupancy.tokens, self._token_attributes(occupancy.tokens)
            for out, array in zip((kinds, speeds, headings), previous):
                out.append(array)
        self._obstacle_kind = np.concatenate(kinds).astype(np.int64) if kinds else np.zeros(0, dtype=np.int64)
        self._obstacle_speed = np.concatenate(speeds).astype(np.float64) if speeds else np.zeros(0)
        self._obstacle_heading = np.concatenate(headings).astype(np.float64) if headings else np.zeros(0)
        # Shape of each obstacle: a static object or red light keeps its polygon in every map (its place in the
        # shared token list names it), an agent's box moves (its own outline).
        self._obstacle_shape = self._obstacle_outline
        if maps and all(m.tokens is maps[0].tokens for m in maps):
            index_in_map = np.tile(np.arange(len(maps[0].tokens), dtype=np.int64), len(maps))
            self._obstacle_shape = np.where(self._obstacle_kind == AGENT_KIND,
                                            len(maps[0].tokens) + self._obstacle_outline, index_in_map)

    def _token_attributes(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(kind, speed, heading) arrays of an occupancy map's tokens."""
        kind = np.full(len(tokens), RED_LIGHT_KIND, dtype=np.int64)
        speed, heading = np.zeros(len(tokens)), np.zeros(len(tokens))
        for i, token in enumerate(tokens):
            if token.startswith(RED_LIGHT_PREFIX):
                continue
            kind[i] = AGENT_KIND if self.observation.is_agent(token) else STATIC_KIND
            velocity = self.observation.velocities[token]
            speed[i] = np.hypot(velocity[0], velocity[1])
            heading[i] = self.observation.headings[token]
        return kind, speed, heading


@numba.njit(cache=True)
def _leading_vectors(k, step_slot, update, rows, group_start, group_path, candidate_start, candidate_obstacle,
                     candidate_progress, progress, poses, leading, path_lengths, coordinates, coordinate_start,
                     ring_start, obstacle_outline, obstacle_bounds, obstacle_kind, obstacle_speed,
                     obstacle_heading):  # pragma: no cover - compiled
    """Leading-agent vectors at step k of the rows of every group (path); odd steps hold the previous vector.

    Per row: the nearest (footprint distance, GEOS's formula) candidate whose centroid lies ahead on the path;
    ties go to the first in the corridor query order. Candidates are measured in the order of their bounding
    boxes' distance to the ego's, a lower bound of the exact distance: once that bound exceeds the nearest
    distance found (by more than `compiled_geometry.BOUND_SLACK_M`) no later candidate can be nearer, so it stops there (a red light's
    lane connector has ~100 vertices). One vector is shared by the rows of a path within a
    step (spec §3.8 quirk): each row overwrites only some of its components. A group without candidates gets
    (path length, 0, half the ego length). `step_slot` selects the step's row of `candidate_start`.
    """
    if not update:
        for r in rows:
            for c in range(3):
                leading[r, k, c] = leading[r, k - 1, c]
        return
    corners = np.empty((4, 2))
    max_candidates = 0
    for g in range(group_start.shape[0] - 1):
        max_candidates = max(max_candidates, candidate_start[step_slot, g + 1] - candidate_start[step_slot, g])
    ahead = np.empty(max_candidates, dtype=np.int64)
    bound = np.empty(max_candidates)
    for g in range(group_start.shape[0] - 1):
        path_length = path_lengths[group_path[g]]
        first, last = candidate_start[step_slot, g], candidate_start[step_slot, g + 1]
        if first == last:
            for j in range(group_start[g], group_start[g + 1]):
                r = rows[j]
                leading[r, k, LEAD_PROGRESS] = path_length
                leading[r, k, LEAD_VELOCITY] = 0.0
                leading[r, k, LEAD_REAR_LENGTH] = EGO_LENGTH / 2.0
            continue
        shared_progress, shared_velocity, shared_rear = 0.0, 0.0, 0.0
        for j in range(group_start[g], group_start[g + 1]):
            r = rows[j]
            ego_progress = progress[r, k - 1]
            ego_corners_into(poses[r, k - 1, 0], poses[r, k - 1, 1], poses[r, k - 1, 2], corners)
            ego_low_x, ego_low_y, ego_high_x, ego_high_y = quad_bounds(corners)
            count = 0
            for c in range(first, last):
                if candidate_progress[c] > ego_progress:
                    o = candidate_obstacle[c]
                    ahead[count] = c
                    bound[count] = box_gap_squared(ego_low_x, ego_low_y, ego_high_x, ego_high_y, obstacle_bounds[o, 0],
                                                   obstacle_bounds[o, 1], obstacle_bounds[o, 2], obstacle_bounds[o, 3])
                    count += 1
            nearest, nearest_candidate, nearest_distance = -1, -1, np.inf
            for i in np.argsort(bound[:count], kind="mergesort"):
                if bound[i] > (nearest_distance + BOUND_SLACK_M) ** 2:
                    break
                c = ahead[i]
                o = candidate_obstacle[c]
                u = obstacle_outline[o]
                distance = quad_polygon_distance(corners, coordinates, coordinate_start, ring_start[u],
                                                 ring_start[u + 1])
                if distance < nearest_distance or (distance == nearest_distance and c < nearest_candidate):
                    nearest, nearest_candidate, nearest_distance = o, c, distance
            if nearest >= 0:
                shared_progress = ego_progress + nearest_distance
                if obstacle_kind[nearest] == AGENT_KIND:  # projected on the ego heading
                    difference = obstacle_heading[nearest] - poses[r, k - 1, 2]
                    relative = np.arctan2(np.sin(difference), np.cos(difference))
                    shared_velocity = obstacle_speed[nearest] * np.cos(relative)
                elif obstacle_kind[nearest] == STATIC_KIND:
                    shared_velocity = 0.0
                # red lights keep the vector's velocity
            else:
                shared_progress = path_length
                shared_rear = EGO_LENGTH / 2.0
            leading[r, k, LEAD_PROGRESS] = shared_progress
            leading[r, k, LEAD_VELOCITY] = shared_velocity
            leading[r, k, LEAD_REAR_LENGTH] = shared_rear


@numba.njit(cache=True)
def _rollout(first_step, last_step, update_interval, rows, group_start, group_path, candidate_start,
             candidate_obstacle, candidate_progress, progress, velocity, poses, leading, targets, path_lengths,
             coordinates, coordinate_start, ring_start, obstacle_outline, obstacle_bounds, obstacle_kind,
             obstacle_speed, obstacle_heading, tables,
             min_gap, headway_time, accel_max, decel_max, acceleration_exponent, dt):  # pragma: no cover - compiled
    """Steps first_step .. last_step of the rows: leading vectors, IDM step, pose on the row's path."""
    slot = 0
    for k in range(first_step, last_step + 1):
        update = k % update_interval == 0
        _leading_vectors(k, slot, update, rows, group_start, group_path, candidate_start, candidate_obstacle,
                         candidate_progress, progress, poses, leading, path_lengths, coordinates, coordinate_start,
                         ring_start, obstacle_outline, obstacle_bounds, obstacle_kind, obstacle_speed, obstacle_heading)
        if update:
            slot += 1
        for g in range(group_start.shape[0] - 1):
            path = group_path[g]
            for j in range(group_start[g], group_start[g + 1]):
                r = rows[j]
                progress[r, k], velocity[r, k] = idm_step(
                    progress[r, k - 1], velocity[r, k - 1], leading[r, k, LEAD_PROGRESS], leading[r, k, LEAD_VELOCITY],
                    leading[r, k, LEAD_REAR_LENGTH], targets[r], min_gap, headway_time, accel_max, decel_max,
                    acceleration_exponent, dt)
                interpolate_pose(tables, path, progress[r, k], poses[r, k])
