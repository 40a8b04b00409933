"""Batch intelligent-driver-model step (spec pdm_score.md §3.8)."""

from __future__ import annotations

import numpy as np

from navsim_eval.pdm.planner.config import IDMConfig


def idm_step(
    progress: np.ndarray,
    velocity: np.ndarray,
    lead_progress: np.ndarray,
    lead_velocity: np.ndarray,
    lead_rear_length: np.ndarray,
    target_velocity: np.ndarray,
    config: IDMConfig,
    dt: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One explicit-Euler IDM step for a batch: returns (next progress, next velocity)."""
    desired_gap = (
        config.min_gap_to_lead_agent
        + velocity * config.headway_time
        + (velocity * (velocity - lead_velocity)) / (2 * np.sqrt(config.accel_max * config.decel_max))
    )
    actual_gap = np.maximum(lead_progress - progress - lead_rear_length, config.min_gap_to_lead_agent)
    with np.errstate(divide="ignore", invalid="ignore"):
        acceleration = config.accel_max * (
            1 - (velocity / target_velocity) ** config.acceleration_exponent - (desired_gap / actual_gap) ** 2
        )
    acceleration = np.clip(acceleration, -config.decel_max, config.accel_max)
    return progress + dt * velocity, velocity + dt * acceleration
