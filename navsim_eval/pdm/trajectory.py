"""From submitted poses to the 41 tracker reference poses (spec pdm_score.md §4).

Submitted poses (x, y, heading) at 0.5 ... 4.0 s in the current rear-axle frame are made global, prefixed by
the current pose and re-sampled at 10 Hz. Times follow the devkit: float seconds, truncated to integer µs.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from data_pipelines.geometry import relative_to_absolute_poses, wrap_angle
from navsim_eval.pdm.constants import (
    NUM_SIM_STATES,
    SIM_DT,
    SUBMISSION_INTERVAL,
    SUBMISSION_NUM_POSES,
    US_PER_S,
    StateIndex,
)
from navsim_eval.pdm.errors import TrajectoryError

# Largest accepted |x|, |y| of a relative pose [m]: 25x more than 4 s at 1000 m/s. Larger values cannot be a
# trajectory and would overflow the tracker's arithmetic, so they are rejected as bad input.
MAX_ABS_POSITION_M = 1e5
# Seconds per microsecond, multiplied (not divided) as in the devkit's TimePoint.time_s (§4 step 3).
S_PER_US = 1e-6


def validate_poses(poses, *, token: Optional[str] = None, name: Optional[str] = None) -> np.ndarray:
    """Return submitted poses as float64 (K, 8, 3) (a single (8, 3) becomes K = 1); raise on bad input."""
    try:
        array = np.asarray(poses, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TrajectoryError(f"poses are not numeric ({error})", token=token, name=name) from None
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[-1] != 3:
        raise TrajectoryError(f"poses must have shape (8, 3) or (K, 8, 3), got {array.shape}", token=token, name=name)
    if array.shape[1] != SUBMISSION_NUM_POSES:
        raise TrajectoryError(
            f"expected {SUBMISSION_NUM_POSES} poses (0.5 s ... 4.0 s), got {array.shape[1]}", token=token, name=name
        )
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise TrajectoryError(f"non-finite value at index {tuple(int(i) for i in bad)}", token=token, name=name)
    if np.any(np.abs(array[..., :2]) > MAX_ABS_POSITION_M):
        raise TrajectoryError(f"position beyond {MAX_ABS_POSITION_M:g} m of the ego", token=token, name=name)
    return array


def time_us_to_s(time_us: int) -> float:
    """Integer µs -> float seconds as the devkit's time points compute it (``time_us * 1e-6``).

    Dividing by 1e6 instead differs in the last bit for about a third of real timestamps (~1.6e15 µs), which
    moves a truncated 10 Hz sample time by 1 µs.
    """
    return int(time_us) * S_PER_US


def _truncate_to_us(times_s: np.ndarray) -> np.ndarray:
    """Float seconds -> integer µs by truncation (the devkit's ``int(t * 1e6)``)."""
    return np.trunc(np.asarray(times_s, dtype=np.float64) * US_PER_S).astype(np.int64)


def submission_time_us(initial_time_us: int, num_poses: int = SUBMISSION_NUM_POSES,
                       interval_s: float = SUBMISSION_INTERVAL) -> np.ndarray:
    """Times of the series [current state, pose 1 ... pose n] in µs (§4 step 3)."""
    t0_s = time_us_to_s(initial_time_us)
    offsets = np.arange(1, num_poses + 1, dtype=np.float64) * interval_s
    return np.concatenate([[int(initial_time_us)], _truncate_to_us(t0_s + offsets)])


def sample_time_us(initial_time_us: int, num_samples: int = NUM_SIM_STATES, dt_s: float = SIM_DT) -> np.ndarray:
    """The 10 Hz sample times t0 + 0.1 k in µs, truncated (§4 step 4; clipping happens in :func:`interpolate_xyh`)."""
    t0_s = time_us_to_s(initial_time_us)
    return _truncate_to_us(np.arange(num_samples, dtype=np.float64) * dt_s + t0_s)


def interpolate_xyh(series_time_us: np.ndarray, series_xyh: np.ndarray, query_time_us: np.ndarray) -> np.ndarray:
    """Sample poses (..., T, 3) at the query times: x, y linear in time; heading unwrapped, linear, wrapped.

    Query times are clipped to the series' span. Works on a batch of series that share the time axis.
    """
    t = np.asarray(series_time_us, dtype=np.float64)
    q = np.clip(np.asarray(query_time_us, dtype=np.float64), t[0], t[-1])
    upper = np.clip(np.searchsorted(t, q, side="right"), 1, len(t) - 1)
    lower = upper - 1
    fraction = (q - t[lower]) / (t[upper] - t[lower])
    xyh = np.asarray(series_xyh, dtype=np.float64).copy()
    xyh[..., 2] = np.unwrap(xyh[..., 2], axis=-1)
    lo = xyh[..., lower, :]
    hi = xyh[..., upper, :]
    out = lo + (hi - lo) * fraction[:, None]
    out[..., 2] = wrap_angle(out[..., 2])
    return out


def submitted_poses_to_reference(initial_state: np.ndarray, initial_time_us: int, poses: np.ndarray) -> np.ndarray:
    """Relative poses (K, 8, 3) -> 41 global tracker reference poses (K, 41, 3) (§4)."""
    poses = validate_poses(poses)
    origin = np.asarray(initial_state, dtype=np.float64)[[StateIndex.X, StateIndex.Y, StateIndex.HEADING]]
    global_poses = relative_to_absolute_poses(origin, poses)
    series = np.concatenate([np.broadcast_to(origin, (len(poses), 1, 3)), global_poses], axis=1)
    return interpolate_xyh(submission_time_us(initial_time_us, poses.shape[1]), series,
                           sample_time_us(initial_time_us))


def reference_trajectory_to_reference(states: np.ndarray, time_us: np.ndarray, initial_time_us: int) -> np.ndarray:
    """PDM-Closed reference (51 states, times relative to the start in µs) -> 41 poses (41, 3) (§4 step 4)."""
    states = np.asarray(states, dtype=np.float64)
    absolute_time = np.asarray(time_us, dtype=np.int64) + int(initial_time_us)
    xyh = states[:, [StateIndex.X, StateIndex.Y, StateIndex.HEADING]]
    return interpolate_xyh(absolute_time, xyh, sample_time_us(initial_time_us))
