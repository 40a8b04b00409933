"""Batched PDM scoring: PDMS (v1) and EPDMS (v2) of K candidate trajectories of one scene (spec §7, §8).

`score_simulated_states` scores simulated state batches against one observation (also used by the PDM-Closed
planner for its proposals). `score_trajectories` goes from a metric cache and K submitted pose sets to the
official per-trajectory sub-scores in one vectorised call: the PDM-Closed reference, the K candidates and (v2)
the logged human trajectory are simulated together; each candidate's EP is normalised against the reference
only, as in the devkit's [reference, candidate] batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Optional, Sequence

import numpy as np
import shapely

from navsim_eval import names as metric_names
from navsim_eval.pdm.comfort import comfort, history_comfort
from navsim_eval.pdm.constants import (
    NUM_SIM_STATES,
    PROGRESS_DISTANCE_THRESHOLD,
    STATE_DIM,
    V1_TTC_STEPS,
    V1_WEIGHTS,
    V2_TTC_STEPS,
    V2_WEIGHTS,
    check_version,
    is_synthetic_token,
)
from navsim_eval.pdm.ego_areas import EgoGeometry, compute_ego_areas
from navsim_eval.pdm.errors import ScoringError
from navsim_eval.pdm.metrics import (
    collision_contacts,
    drivable_area_compliance,
    driving_direction_compliance,
    lane_keeping,
    no_at_fault_collisions,
    raw_progress,
    time_to_collision,
    traffic_light_compliance,
)
from navsim_eval.pdm.observation import Observation
from navsim_eval.pdm.simulation import simulate
from navsim_eval.pdm.trajectory import (
    reference_trajectory_to_reference,
    submitted_poses_to_reference,
    validate_poses,
)

MULTIPLICATIVE = {version: metric_names.multiplier_columns(version) for version in metric_names.VERSIONS}
METRICS = {version: metric_names.scored_columns(version) for version in metric_names.VERSIONS}


def as_linestring(centerline: Any) -> shapely.LineString:
    """Centerline as a shapely LineString: accepts (N, >=2) arrays, objects with `.linestring`, LineStrings."""
    if isinstance(centerline, shapely.LineString):
        return centerline
    if hasattr(centerline, "linestring"):
        return centerline.linestring
    array = np.asarray(centerline, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 2 or len(array) < 2:
        raise ScoringError(f"centerline must be (N >= 2, 2 or 3) points, got shape {array.shape}")
    return shapely.LineString(array[:, :2])


@dataclass
class SubScores:
    """Per-row sub-scores of a scored batch (arrays of shape (B,)).

    `score` is the version's scorer aggregate: v1 NC·DAC·(5 EP + 5 TTC + 2 C)/12; v2 M·(5 EP + 5 TTC + 2 LK
    + 2 HC)/14 without EC and before the human filter.
    """

    version: str
    metrics: dict[str, np.ndarray]
    raw_progress: np.ndarray
    multiplicative: np.ndarray
    score: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return self.metrics[name]

    def __len__(self) -> int:
        return len(self.score)


def _normalised_progress(version: str, raw: np.ndarray, multiplicative: np.ndarray,
                         groups: np.ndarray) -> np.ndarray:
    """EP (§7.5) with P = max of masked progress over each row's normalisation group (group ids (B,))."""
    masked = raw * multiplicative
    normaliser = np.zeros(len(raw))
    for group in np.unique(groups):
        members = groups == group
        normaliser[members] = masked[members].max()
    above = normaliser > PROGRESS_DISTANCE_THRESHOLD
    with np.errstate(invalid="ignore", divide="ignore"):
        if version == "v1":
            fallback = np.where(multiplicative == 0.0, 0.0, 1.0)
            return np.where(above, masked / np.where(above, normaliser, 1.0), fallback)
        return np.where(above, np.clip(raw / np.where(above, normaliser, 1.0), 0.0, 1.0), 1.0)


def aggregate(version: str, metrics: dict[str, np.ndarray],
              weights: Optional[dict[str, float]] = None) -> tuple[np.ndarray, np.ndarray]:
    """(multiplicative product M, scorer aggregate) from sub-metrics (v2 without EC); ``weights`` (column ->
    weight, every weighted column of the version) replaces the official weights of the weighted average."""
    multiplicative = np.prod([metrics[name] for name in MULTIPLICATIVE[version]], axis=0)
    weights = weights if weights is not None else (V1_WEIGHTS if version == "v1" else V2_WEIGHTS)
    weighted = sum(weight * metrics[name] for name, weight in weights.items()) / sum(weights.values())
    return multiplicative, multiplicative * weighted


def score_simulated_states(
    states: np.ndarray,
    observation: Observation,
    centerline: Any,
    route_lane_ids: Collection[str],
    drivable_map,
    version: str,
    *,
    progress_reference_index: Optional[int] = None,
    past_states: Optional[np.ndarray] = None,
    past_time_us: Optional[np.ndarray] = None,
    progress_groups: Optional[np.ndarray] = None,
    history_mask: Optional[np.ndarray] = None,
) -> SubScores:
    """Score simulated trajectories (B, 41, 11) against one observation (§6-§8.2).

    EP normalisation: by default over the whole batch (the planner's proposal scoring); with
    `progress_reference_index = r` each row i is normalised over {r, i} (the devkit's [reference, candidate]
    batches); `progress_groups` (B,) ints gives explicit groups (rows sharing an id are normalised together).
    v2 history comfort uses `past_states` (4, 11) and `past_time_us` (4,) for the rows of `history_mask` (all
    rows by default); other rows get HC = 1.
    """
    check_version(version)
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 3 or states.shape[1] != NUM_SIM_STATES or states.shape[2] != STATE_DIM:
        raise ScoringError(f"simulated states must be (B, {NUM_SIM_STATES}, {STATE_DIM}), got {states.shape}")
    batch = len(states)
    line = as_linestring(centerline)
    geometry = EgoGeometry.from_states(states)
    areas = compute_ego_areas(geometry, drivable_map, route_lane_ids)
    contacts = collision_contacts(geometry, observation)

    metrics: dict[str, np.ndarray] = {
        "no_at_fault_collisions": no_at_fault_collisions(states, geometry, areas, observation, contacts),
        "drivable_area_compliance": drivable_area_compliance(areas),
        "driving_direction_compliance": driving_direction_compliance(geometry, areas, version == "v2"),
    }
    if version == "v2":
        metrics["traffic_light_compliance"] = traffic_light_compliance(batch, observation, contacts)
    ttc_steps = V1_TTC_STEPS if version == "v1" else V2_TTC_STEPS
    metrics["time_to_collision_within_bound"] = time_to_collision(states, geometry, areas, observation, ttc_steps,
                                                                  footprint_contacts=contacts)
    if version == "v1":
        metrics["comfort"] = comfort(states)
    else:
        metrics["lane_keeping"] = lane_keeping(geometry, areas, line)
        hc = np.ones(batch)
        if past_states is not None:
            rows = np.ones(batch, dtype=bool) if history_mask is None else np.asarray(history_mask, dtype=bool)
            if rows.any():
                hc[rows] = history_comfort(states[rows], past_states, past_time_us)
        metrics["history_comfort"] = hc

    progress = raw_progress(geometry, line)
    metrics["ego_progress"] = np.zeros(batch)
    multiplicative, _ = aggregate(version, metrics)
    if progress_groups is not None:
        groups = np.asarray(progress_groups, dtype=np.int64)
        metrics["ego_progress"] = _normalised_progress(version, progress, multiplicative, groups)
    elif progress_reference_index is None:
        metrics["ego_progress"] = _normalised_progress(version, progress, multiplicative, np.zeros(batch, int))
    else:
        metrics["ego_progress"] = _pairwise_progress(version, progress, multiplicative, progress_reference_index)
    multiplicative, score = aggregate(version, metrics)
    ordered = {name: metrics[name] for name in METRICS[version]}
    return SubScores(version, ordered, progress, multiplicative, score)


def _pairwise_progress(version: str, raw: np.ndarray, multiplicative: np.ndarray, reference: int) -> np.ndarray:
    """EP of every row normalised over {reference row, row} (the devkit scores [reference, candidate])."""
    masked = raw * multiplicative
    normaliser = np.maximum(masked, masked[reference])
    above = normaliser > PROGRESS_DISTANCE_THRESHOLD
    safe = np.where(above, normaliser, 1.0)
    if version == "v1":
        return np.where(above, masked / safe, np.where(multiplicative == 0.0, 0.0, 1.0))
    return np.where(above, np.clip(raw / safe, 0.0, 1.0), 1.0)


# ------------------------------------------------------------------------------------- from a metric cache


@dataclass
class ScoreTable:
    """Official sub-scores of K candidates of one scene (arrays (K,)), plus diagnostics.

    v1: `metrics` are the PDMS sub-scores and `score` the PDMS. v2: `metrics` are after the human filter,
    `raw_metrics` before it, `human_metrics` the logged trajectory's (scalars); `score` excludes EC
    (denominator 14); :func:`navsim_eval.pdm.epdms.epdms_of_table` adds EC.
    """

    token: str
    version: str
    metrics: dict[str, np.ndarray]
    score: np.ndarray
    multiplicative: np.ndarray
    simulated_states: np.ndarray  # (K, 41, 11)
    raw_metrics: dict[str, np.ndarray] = field(default_factory=dict)
    human_metrics: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.score)


def _cache_reference(cache) -> np.ndarray:
    return reference_trajectory_to_reference(cache.pdm_trajectory, cache.pdm_trajectory_time_us, cache.timepoint_us)


def score_trajectories(cache, poses: np.ndarray, version: Optional[str] = None) -> ScoreTable:
    """Score K submitted trajectories (K, 8, 3) (or one (8, 3)) of the scene of a metric cache (§4-§8.3)."""
    version, references, has_human = _tracker_references(cache, poses, version)
    states = simulate(references, np.asarray(cache.ego_state, dtype=np.float64))
    return _score_scene_states(cache, states, version, has_human)


def score_trajectories_batch(caches: Sequence[Any], poses: Sequence[np.ndarray],
                             version: Optional[str] = None) -> list[ScoreTable]:
    """:func:`score_trajectories` of several scenes (caches[i], poses[i] (K_i, 8, 3)) with one tracker simulation.

    The LQR/bicycle simulation is a sequential loop over 40 steps whose cost is per call, not per row, so all
    scenes' rows (each from its own initial state) go through one call; the geometric scoring stays per scene.
    Results equal per-scene calls up to floating-point summation order in the reference fits (< 1e-12).
    """
    if len(caches) != len(poses):
        raise ScoringError(f"{len(caches)} metric caches but {len(poses)} pose sets")
    prepared = [_tracker_references(cache, scene_poses, version) for cache, scene_poses in zip(caches, poses)]
    if not prepared:
        return []
    counts = [len(references) for _, references, _ in prepared]
    initial = np.repeat(np.stack([np.asarray(c.ego_state, dtype=np.float64) for c in caches]), counts, axis=0)
    states = simulate(np.concatenate([references for _, references, _ in prepared]), initial)
    bounds = np.cumsum([0] + counts)
    return [_score_scene_states(cache, states[bounds[i]:bounds[i + 1]], scene_version, has_human)
            for i, (cache, (scene_version, _, has_human)) in enumerate(zip(caches, prepared))]


def _tracker_references(cache, poses: np.ndarray, version: Optional[str]) -> tuple[str, np.ndarray, bool]:
    """(version, tracker references (1 + K [+ 1], 41, 3): PDM-Closed reference, candidates [, logged human],
    whether the human filter applies)."""
    version = version or cache.version
    check_version(version)
    if getattr(cache, "version", version) != version:
        raise ScoringError(f"metric cache of token {cache.token} is {cache.version}, asked to score {version}")
    poses = validate_poses(poses, token=getattr(cache, "token", None))
    initial_state = np.asarray(cache.ego_state, dtype=np.float64)
    references = [_cache_reference(cache)[None], submitted_poses_to_reference(initial_state, cache.timepoint_us, poses)]
    # The human filter applies to original log scenes only; synthetic scenes have no logged future (§8.3).
    has_human = (version == "v2" and getattr(cache, "human_trajectory", None) is not None
                 and not is_synthetic_token(getattr(cache, "token", "")))
    if has_human:
        references.append(submitted_poses_to_reference(initial_state, cache.timepoint_us, cache.human_trajectory))
    return version, np.concatenate(references), has_human


def _score_scene_states(cache, states: np.ndarray, version: str, has_human: bool) -> ScoreTable:
    """The score table of one scene from its simulated rows [reference, candidates..., (human)]."""
    num = len(states) - 1 - int(has_human)
    # Normalisation groups: candidates with the reference (pairwise), the human alone (§8.3).
    if has_human:
        history_mask = np.ones(len(states), dtype=bool)
        history_mask[-1] = False  # the human is scored without logged past (HC = 1)
    else:
        history_mask = None
    sub = score_simulated_states(
        states,
        cache.observation,
        cache.centerline,
        cache.route_lane_ids,
        cache.drivable_map,
        version,
        progress_reference_index=0,
        past_states=getattr(cache, "past_human_states", None) if version == "v2" else None,
        past_time_us=getattr(cache, "past_human_time_us", None) if version == "v2" else None,
        history_mask=history_mask,
    )
    candidates = slice(1, 1 + num)
    raw = {name: values[candidates].copy() for name, values in sub.metrics.items()}
    if version == "v1":
        return ScoreTable(cache.token, version, raw, sub.score[candidates].copy(),
                          sub.multiplicative[candidates].copy(), states[candidates], raw_metrics=raw)

    human: dict[str, float] = {}
    filtered = {name: values.copy() for name, values in raw.items()}
    if has_human:
        human_row = len(states) - 1
        human = {name: float(values[human_row]) for name, values in sub.metrics.items()}
        human["ego_progress"] = float(_normalised_progress(version, sub.raw_progress[[human_row]],
                                                          sub.multiplicative[[human_row]], np.zeros(1, int))[0])
        for name, value in human.items():
            if value == 0.0:
                filtered[name] = np.ones(num)
    multiplicative, score = aggregate(version, filtered)
    return ScoreTable(cache.token, version, filtered, score, multiplicative, states[candidates],
                      raw_metrics=raw, human_metrics=human)
