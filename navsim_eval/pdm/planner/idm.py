"""Intelligent-driver-model step (spec pdm_score.md §3.8), compiled for the proposal roll-out loop."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def idm_step(progress, velocity, lead_progress, lead_velocity, lead_rear_length, target_velocity,
             min_gap, headway_time, accel_max, decel_max, acceleration_exponent, dt):  # pragma: no cover - compiled
    """One explicit-Euler IDM step of one proposal: returns (next progress, next velocity).

    The parameters after `target_velocity` are those of `IDMConfig`; a zero target speed gives the
    IEEE results of the division (clipped to -decel_max), as the devkit's numpy code.
    """
    desired_gap = (min_gap + velocity * headway_time
                   + (velocity * (velocity - lead_velocity)) / (2 * np.sqrt(accel_max * decel_max)))
    actual_gap = max(lead_progress - progress - lead_rear_length, min_gap)
    ratio = desired_gap / actual_gap
    acceleration = accel_max * (1 - (velocity / target_velocity) ** acceleration_exponent - ratio * ratio)
    if acceleration < -decel_max:
        acceleration = -decel_max
    elif acceleration > accel_max:
        acceleration = accel_max
    return progress + dt * velocity, velocity + dt * acceleration
