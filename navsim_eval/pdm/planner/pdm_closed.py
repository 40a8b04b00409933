"""PDM-Closed reference planner: 15 IDM proposals, simulated and scored, best one extended (spec §3.8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Optional

import numpy as np

from navsim_eval.pdm.constants import STATE_DIM, StateIndex
from navsim_eval.pdm.drivable_map import DrivableMap
from navsim_eval.pdm.path import PDMPath
from navsim_eval.pdm.planner.config import PDMClosedConfig
from navsim_eval.pdm.planner.forecast import ForecastObservation
from navsim_eval.pdm.planner.generator import ProposalGenerator

US_PER_S = 1_000_000


@dataclass
class PlannerResult:
    """Reference trajectory (51 states, x/y/heading set) and how it was chosen."""

    trajectory: np.ndarray  # (T+1, 11)
    time_us: np.ndarray  # (T+1,) relative to the current frame
    selected_proposal: int  # path index * num_policies + policy index
    proposal_scores: np.ndarray  # (num_proposals,)
    proposals: np.ndarray  # (num_proposals, proposal_steps + 1, 3) x, y, heading


def target_velocities(speed_limit_mps: Optional[float], config: PDMClosedConfig) -> np.ndarray:
    """Target speed per IDM policy: fraction x speed limit (fallback speed without a limit)."""
    base = config.idm.fallback_target_velocity if speed_limit_mps is None else float(speed_limit_mps)
    return np.asarray(config.idm.speed_limit_fractions, dtype=np.float64) * base


def proposal_paths(centerline: PDMPath, config: PDMClosedConfig) -> list[PDMPath]:
    """The centerline followed by its parallel copies at the lateral offsets."""
    return [centerline] + [centerline.offset(offset) for offset in config.lateral_offsets]


def plan_pdm_closed(
    ego_state: np.ndarray,
    observation: ForecastObservation,
    centerline: PDMPath,
    route_lane_ids: Collection[str],
    drivable_map: DrivableMap,
    speed_limit_mps: Optional[float],
    version: str,
    config: PDMClosedConfig = PDMClosedConfig(),
) -> PlannerResult:
    """Roll out, simulate and score the proposals; extend the best one to the trajectory horizon."""
    from navsim_eval.pdm.scorer import score_simulated_states
    from navsim_eval.pdm.simulation import simulate

    ego_state = np.asarray(ego_state, dtype=np.float64)
    pose = ego_state[[StateIndex.X, StateIndex.Y, StateIndex.HEADING]]
    velocity = float(ego_state[StateIndex.VELOCITY_X])
    targets = target_velocities(speed_limit_mps, config)
    generator = ProposalGenerator(proposal_paths(centerline, config), targets, observation, pose, velocity, config)
    generator.rollout(1, config.proposal_steps)
    proposals = generator.state.poses[:, : config.proposal_steps + 1].copy()

    simulated = simulate(proposals, ego_state)
    scores = score_simulated_states(
        simulated, observation.to_observation(), centerline.poses, route_lane_ids, drivable_map, version
    ).score
    scores = np.asarray(scores, dtype=np.float64)
    best = int(np.argmax(scores))

    generator.rollout(config.proposal_steps + 1, config.trajectory_steps, [best])
    trajectory = np.zeros((config.trajectory_steps + 1, STATE_DIM), dtype=np.float64)
    trajectory[:, [StateIndex.X, StateIndex.Y, StateIndex.HEADING]] = generator.state.poses[best]
    time_us = np.arange(config.trajectory_steps + 1, dtype=np.int64) * int(config.dt * US_PER_S)
    return PlannerResult(trajectory, time_us, best, scores, proposals)
