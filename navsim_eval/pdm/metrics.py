"""PDM sub-metrics NC, DAC, DDC, TLC, EP (raw), TTC and LK (spec pdm_score.md §7.1-7.6, §7.9), vectorised.

Every function takes a batch of B simulated trajectories (T = 41 states). Collision-type decisions are
computed for all candidate (trajectory, step, object) contacts at once; the devkit's sequential "ignore this
track from now on" rule is reproduced exactly by comparing each at-fault contact with the first not-at-fault
contact of the same track (see `_before_first_release`).
"""

from __future__ import annotations

import numpy as np
import shapely

from navsim_eval.pdm.compiled_geometry import project_on_line
from navsim_eval.pdm.constants import (
    AGENT_COLLISION_SCORE,
    AHEAD_ANGLE_DEG,
    BEHIND_ANGLE_DEG,
    DDC_COMPLIANCE_THRESHOLD,
    DDC_HORIZON_STEPS,
    DDC_VIOLATION_THRESHOLD,
    LANE_KEEPING_DEVIATION,
    LANE_KEEPING_HORIZON_STEPS,
    SIM_DT,
    STATIC_COLLISION_SCORE,
    STOPPED_SPEED_THRESHOLD,
    TTC_LOOKAHEAD_STEPS,
    TTC_STOPPED_SPEED_THRESHOLD,
    StateIndex,
)
from navsim_eval.pdm.ego_areas import EgoAreas, EgoGeometry
from navsim_eval.pdm.footprint import FRONT_LEFT, FRONT_RIGHT
from navsim_eval.pdm.observation import Observation

AHEAD_ANGLE = np.deg2rad(AHEAD_ANGLE_DEG)
BEHIND_ANGLE = np.deg2rad(BEHIND_ANGLE_DEG)


def relative_angle(ego_xy: np.ndarray, ego_heading: np.ndarray, target_xy: np.ndarray) -> np.ndarray:
    """Angle between the ego heading and the vector ego -> target (arccos of the unit dot product)."""
    vector = np.asarray(target_xy) - np.asarray(ego_xy)
    norm = np.hypot(vector[..., 0], vector[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        dot = (np.cos(ego_heading) * vector[..., 0] + np.sin(ego_heading) * vector[..., 1]) / norm
        return np.arccos(dot)


def _before_first_release(row: np.ndarray, track: np.ndarray, order: np.ndarray, released: np.ndarray,
                          num_rows: int, flat) -> np.ndarray:
    """Mask of contacts that happen before the first 'released' contact of the same (row, track).

    A released contact puts the track on the row's ignore list; contacts after it are skipped. Tracks of the
    observation's collided set are ignored from the start.
    """
    num_tracks = len(flat.unique_tokens)
    key = row * num_tracks + track
    first = np.full(num_rows * num_tracks, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, key[released], order[released])
    collided = np.flatnonzero(flat.track_collided)
    if len(collided):
        first.reshape(num_rows, num_tracks)[:, collided] = -1
    return order < first[key]


def collision_contacts(geometry: EgoGeometry, observation: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, step, flat entry) of every ego footprint (B, T) intersecting an obstacle of the same step."""
    batch, steps = geometry.centers.shape[:2]
    step_index = np.broadcast_to(np.arange(steps), (batch, steps))
    query, entry = observation.query_corners(geometry.corners.reshape(-1, 4, 2), step_index.reshape(-1))
    row, step = np.divmod(query, steps)
    return row, step, entry


def no_at_fault_collisions(states: np.ndarray, geometry: EgoGeometry, areas: EgoAreas, observation: Observation,
                           contacts) -> np.ndarray:
    """NC per trajectory (B,) in {0, 0.5, 1} (§7.1)."""
    batch = len(states)
    scores = np.ones(batch)
    row, step, entry = contacts
    flat = observation.flat()
    keep = ~flat.is_red_light[entry]
    row, step, entry = row[keep], step[keep], entry[keep]
    if len(row) == 0:
        return scores
    track = flat.token_ids[entry]
    ego_speed = np.hypot(states[row, step, StateIndex.VELOCITY_X], states[row, step, StateIndex.VELOCITY_Y])
    ego_stopped = ego_speed <= STOPPED_SPEED_THRESHOLD
    track_stopped = ~flat.track_is_agent[track] | (flat.track_speed[track] <= STOPPED_SPEED_THRESHOLD)
    angle = relative_angle(geometry.rear_axles[row, step], geometry.headings[row, step], flat.centroids(entry))
    behind = angle > BEHIND_ANGLE
    active = ~ego_stopped & ~track_stopped & ~behind
    front = np.zeros(len(row), dtype=bool)
    if active.any():
        corners = geometry.corners[row[active], step[active]]
        edges = shapely.linestrings(corners[:, [FRONT_LEFT, FRONT_RIGHT]])
        front[active] = shapely.intersects(edges, flat.polygons_of(entry[active]))
    lateral = active & ~front
    off_lane = areas.multiple_lanes[row, step] | areas.non_drivable[row, step]
    at_fault = (~ego_stopped & track_stopped) | (active & front) | (lateral & off_lane)
    counted = at_fault & _before_first_release(row, track, step, ~at_fault, batch, flat)
    values = np.where(flat.track_is_agent[track], AGENT_COLLISION_SCORE, STATIC_COLLISION_SCORE)
    np.minimum.at(scores, row[counted], values[counted])
    return scores


def traffic_light_compliance(batch: int, observation: Observation, contacts) -> np.ndarray:
    """TLC per trajectory (B,): 0 if the ego polygon touches a red-light polygon of its step (§7.4)."""
    row, _, entry = contacts
    scores = np.ones(batch)
    scores[row[observation.flat().is_red_light[entry]]] = 0.0
    return scores


def drivable_area_compliance(areas: EgoAreas) -> np.ndarray:
    """DAC per trajectory (B,) (§7.2)."""
    return np.where(areas.non_drivable.any(axis=1), 0.0, 1.0)


def driving_direction_compliance(geometry: EgoGeometry, areas: EgoAreas, exclude_intersections: bool) -> np.ndarray:
    """DDC per trajectory (B,) in {0, 0.5, 1} (§7.3); v2 ignores steps with the centre in an intersection."""
    centers = geometry.centers
    progress = np.zeros(centers.shape[:2])
    progress[:, 1:] = np.linalg.norm(centers[:, 1:] - centers[:, :-1], axis=-1)
    counted = areas.oncoming & ~areas.center_in_intersection if exclude_intersections else areas.oncoming
    progress[~counted] = 0.0
    padded = np.concatenate([np.zeros((len(progress), DDC_HORIZON_STEPS)), progress], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, DDC_HORIZON_STEPS + 1, axis=1).sum(axis=-1)
    worst = windows.max(axis=1)
    return np.where(worst < DDC_COMPLIANCE_THRESHOLD, 1.0, np.where(worst < DDC_VIOLATION_THRESHOLD, 0.5, 0.0))


def raw_progress(geometry: EgoGeometry, centerline: shapely.LineString) -> np.ndarray:
    """Progress along the centerline from the first to the last centre, clipped at 0 (§7.5).

    Projections by the compiled `project_on_line` (GEOS's nearest-segment measure, equal to
    `shapely.line_locate_point` bit for bit)."""
    line = np.ascontiguousarray(shapely.get_coordinates(centerline), dtype=np.float64)
    start = project_on_line(line, np.ascontiguousarray(geometry.centers[:, 0]))
    end = project_on_line(line, np.ascontiguousarray(geometry.centers[:, -1]))
    return np.clip(end - start, 0.0, None)


def time_to_collision(states: np.ndarray, geometry: EgoGeometry, areas: EgoAreas, observation: Observation,
                      num_eval_steps: int, dt: float = SIM_DT, footprint_contacts=None) -> np.ndarray:
    """TTC per trajectory (B,) in {0, 1} (§7.6), evaluated at steps 0 .. num_eval_steps - 1.

    `footprint_contacts` (the NC contacts of the unshifted footprints) stand in for the zero look-ahead queries.
    """
    batch = len(states)
    scores = np.ones(batch)
    steps = min(num_eval_steps, states.shape[1])
    lookahead = np.asarray(TTC_LOOKAHEAD_STEPS)
    speed = np.hypot(states[:, :steps, StateIndex.VELOCITY_X], states[:, :steps, StateIndex.VELOCITY_Y])
    heading = states[:, :steps, StateIndex.HEADING]
    velocity = np.stack([np.cos(heading) * speed, np.sin(heading) * speed], axis=-1)  # (B, S, 2)
    shift = velocity[:, :, None, :] * (lookahead * dt)[None, None, :, None]  # (B, S, L, 2)
    corners = geometry.corners[:, :steps, None] + shift[:, :, :, None, :]  # (B, S, L, 4, 2)
    target_step = np.arange(steps)[:, None] + lookahead[None, :]  # (S, L)
    valid_query = np.broadcast_to(target_step < observation.num_steps, (batch, steps, len(lookahead)))
    moving_steps = speed >= TTC_STOPPED_SPEED_THRESHOLD
    moving = np.broadcast_to(moving_steps[:, :, None], valid_query.shape)
    reuse = footprint_contacts is not None and lookahead[0] == 0
    wanted = valid_query & moving
    if reuse:
        wanted = wanted.copy()
        wanted[:, :, 0] = False
    selected = np.flatnonzero(wanted)
    query, entry = observation.query_corners(
        corners.reshape(-1, 4, 2)[selected], np.broadcast_to(target_step, valid_query.shape).reshape(-1)[selected]
    )
    flat = observation.flat()
    flat_index = selected[query]
    row, rest = np.divmod(flat_index, steps * len(lookahead))
    step, look = np.divmod(rest, len(lookahead))
    if reuse:
        contact_row, contact_step, contact_entry = footprint_contacts
        use = contact_step < steps
        use[use] = moving_steps[contact_row[use], contact_step[use]]
        row = np.concatenate([row, contact_row[use]])
        step = np.concatenate([step, contact_step[use]])
        look = np.concatenate([look, np.zeros(int(use.sum()), dtype=look.dtype)])
        entry = np.concatenate([entry, contact_entry[use]])
    keep = ~flat.is_red_light[entry]
    row, step, look, entry = row[keep], step[keep], look[keep], entry[keep]
    if len(row) == 0:
        return scores
    track = flat.token_ids[entry]
    angle = relative_angle(geometry.rear_axles[row, step], geometry.headings[row, step], flat.centroids(entry))
    ahead = angle < AHEAD_ANGLE
    behind = angle > BEHIND_ANGLE
    risky_area = (areas.multiple_lanes[row, step] | areas.non_drivable[row, step]
                  | areas.rear_axle_in_intersection[row, step])
    violation = ahead | (risky_area & ~behind)
    order = step * len(lookahead) + look
    counted = violation & _before_first_release(row, track, order, ~violation, batch, flat)
    scores[row[counted]] = 0.0
    return scores


def lane_keeping(geometry: EgoGeometry, areas: EgoAreas, centerline: shapely.LineString) -> np.ndarray:
    """LK per trajectory (B,) (§7.9): 0 once the centre is > 0.5 m off the centerline for 20 counted steps."""
    batch, steps = geometry.centers.shape[:2]
    if not shapely.is_prepared(centerline):
        shapely.prepare(centerline)
    points = shapely.points(geometry.centers.reshape(-1, 2))
    # distance > limit  <=>  not within the limit (prepared distance-within test)
    exceeds = ~shapely.dwithin(centerline, points, LANE_KEEPING_DEVIATION).reshape(batch, steps)
    counter = np.zeros(batch, dtype=np.int64)
    failed = np.zeros(batch, dtype=bool)
    for step in range(steps):
        skip = areas.center_in_intersection[:, step]
        counter = np.where(skip, counter, np.where(exceeds[:, step], counter + 1, 0))
        failed |= counter >= LANE_KEEPING_HORIZON_STEPS
    return np.where(failed, 0.0, 1.0)
