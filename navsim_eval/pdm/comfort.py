"""Comfort metrics: C (v1), HC (v2 history comfort) and EC (v2 two-frame extended comfort), spec §7.7-7.11.

Every filter is a Savitzky-Golay filter with ``mode="interp"`` semantics (§7.11), expressed as a cached
(n, n) matrix so that a whole batch of series is filtered with one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from navsim_eval.pdm.constants import REAR_AXLE_TO_CENTER, SIM_DT, US_PER_S, StateIndex

ROUND_DECIMALS = 8  # filtered series are rounded before the bound test (§7.7)


# --- Savitzky-Golay (§7.11) ---------------------------------------------------------------------------------------
def _fit_rows(window: int, polyorder: int, deriv: int, delta: float, positions: np.ndarray) -> np.ndarray:
    """Rows mapping `window` samples (at 0..window-1) to the deriv-th derivative of their LS polynomial at positions."""
    samples = np.arange(window, dtype=np.float64)
    vandermonde = samples[:, None] ** np.arange(polyorder + 1)[None, :]
    solve = np.linalg.pinv(vandermonde)  # (p+1, window): polynomial coefficients from samples
    powers = np.arange(polyorder + 1)
    factor = np.zeros((len(positions), polyorder + 1))
    for power in powers[deriv:]:
        falling = np.prod(np.arange(power - deriv + 1, power + 1)) if deriv else 1.0
        factor[:, power] = falling * positions ** (power - deriv)
    return factor @ solve / delta**deriv


@lru_cache(maxsize=64)
def savgol_matrix(length: int, window: int, polyorder: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """(length, length) matrix M with M @ y = savgol_filter(y, window, polyorder, deriv, delta, mode="interp").

    The window is first reduced to the series length. With h = window // 2, outputs h .. n-h-1 are the
    window-centre value of a local fit (odd window: samples i-h..i+h at i; even window: samples i-h+1..i+h at
    i + 0.5); the first / last h outputs come from one fit to the first / last `window` samples.
    """
    window = min(window, length)
    if polyorder >= window:
        raise ValueError(f"polyorder {polyorder} must be less than the window length {window}")
    half = window // 2
    matrix = np.zeros((length, length))
    centre = (window - 1) / 2.0
    interior = _fit_rows(window, polyorder, deriv, delta, np.array([centre]))[0]
    first = half - (window - 1) // 2  # offset of the window start relative to i - h (0 odd, 1 even)
    for i in range(half, length - half):
        start = i - half + first
        matrix[i, start : start + window] = interior
    edge_positions = np.arange(half, dtype=np.float64)
    matrix[:half, :window] = _fit_rows(window, polyorder, deriv, delta, edge_positions)
    matrix[length - half :, length - window :] = _fit_rows(
        window, polyorder, deriv, delta, edge_positions + (window - half)
    )
    matrix.setflags(write=False)
    return matrix


def savgol(series: np.ndarray, window: int, polyorder: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """Savitzky-Golay filter along the last axis (scipy ``mode="interp"`` semantics)."""
    series = np.asarray(series, dtype=np.float64)
    return series @ savgol_matrix(series.shape[-1], window, polyorder, deriv, float(delta)).T


def unwrap_heading(heading: np.ndarray) -> np.ndarray:
    """Unwrap along time: subtract 2π·cumsum(round(Δh / 2π)) (§7.7)."""
    jumps = np.round(np.diff(heading, axis=-1) / (2.0 * np.pi))
    correction = np.concatenate([np.zeros(heading.shape[:-1] + (1,)), np.cumsum(jumps, axis=-1)], axis=-1)
    return heading - 2.0 * np.pi * correction


def _rounded(values: np.ndarray) -> np.ndarray:
    return np.round(values, ROUND_DECIMALS)


# --- C (v1) and HC (v2) -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComfortBounds:
    """Open intervals of the six comfort tests (§7.7)."""

    lon_acceleration: tuple[float, float] = (-4.05, 2.40)
    lat_acceleration: tuple[float, float] = (-4.89, 4.89)
    jerk_magnitude: tuple[float, float] = (-8.37, 8.37)
    lon_jerk: tuple[float, float] = (-4.13, 4.13)
    yaw_acceleration: tuple[float, float] = (-1.93, 1.93)
    yaw_rate: tuple[float, float] = (-0.95, 0.95)


@dataclass(frozen=True)
class ComfortFilters:
    """Savitzky-Golay windows of one comfort variant (§7.7 for v1, §7.8 for v2 history comfort)."""

    acceleration_window: int
    jerk_window: int
    acceleration_at_centre: bool


V1_COMFORT = ComfortFilters(acceleration_window=41, jerk_window=41, acceleration_at_centre=False)
V2_HISTORY_COMFORT = ComfortFilters(acceleration_window=8, jerk_window=15, acceleration_at_centre=True)
JERK_PRE_FILTER_WINDOW = 8  # acceleration smoothing before differentiation (§7.7, §7.8)
YAW_RATE_FILTER = (5, 2)  # (window, polyorder), first derivative (§7.7)
YAW_ACCELERATION_FILTER = (5, 3)  # second derivative (§7.7)
EC_YAW_ACCELERATION_FILTER = (5, 2)  # EC uses poly 2 for the yaw acceleration (§7.10)
SG_POLYORDER = 2


def _within(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return np.all((values > bounds[0]) & (values < bounds[1]), axis=-1)


def comfort_checks(states: np.ndarray, filters: ComfortFilters, dt: float = SIM_DT,
                   bounds: ComfortBounds = ComfortBounds()) -> dict[str, np.ndarray]:
    """The six comfort tests for state series (B, T, 11); each entry (B,) bool."""
    ax = states[..., StateIndex.ACCELERATION_X]
    ay = states[..., StateIndex.ACCELERATION_Y]
    if filters.acceleration_at_centre:
        yaw_rate = states[..., StateIndex.ANGULAR_VELOCITY]
        yaw_acc = states[..., StateIndex.ANGULAR_ACCELERATION]
        lon_signal = ax + REAR_AXLE_TO_CENTER * yaw_rate**2 + REAR_AXLE_TO_CENTER * yaw_acc
    else:
        lon_signal = ax
    window = filters.acceleration_window
    lon_acc = _rounded(savgol(lon_signal, window, SG_POLYORDER))
    lat_acc = _rounded(savgol(ay, window, SG_POLYORDER))
    magnitude = _rounded(savgol(np.hypot(ax, ay), JERK_PRE_FILTER_WINDOW, SG_POLYORDER))
    lon_smooth = _rounded(savgol(lon_signal, JERK_PRE_FILTER_WINDOW, SG_POLYORDER))
    jerk = _rounded(savgol(magnitude, filters.jerk_window, SG_POLYORDER, deriv=1, delta=dt))
    lon_jerk = _rounded(savgol(lon_smooth, filters.jerk_window, SG_POLYORDER, deriv=1, delta=dt))
    heading = unwrap_heading(states[..., StateIndex.HEADING])
    yaw_acc = _rounded(savgol(heading, *YAW_ACCELERATION_FILTER, deriv=2, delta=dt))
    yaw_rate = _rounded(savgol(heading, *YAW_RATE_FILTER, deriv=1, delta=dt))
    return {
        "lon_acceleration": _within(lon_acc, bounds.lon_acceleration),
        "lat_acceleration": _within(lat_acc, bounds.lat_acceleration),
        "jerk_magnitude": _within(jerk, bounds.jerk_magnitude),
        "lon_jerk": _within(lon_jerk, bounds.lon_jerk),
        "yaw_acceleration": _within(yaw_acc, bounds.yaw_acceleration),
        "yaw_rate": _within(yaw_rate, bounds.yaw_rate),
    }


def comfort(states: np.ndarray, dt: float = SIM_DT) -> np.ndarray:
    """v1 C per trajectory (B,) in {0, 1} on the 41 simulated states (§7.7)."""
    checks = comfort_checks(states, V1_COMFORT, dt)
    return np.all(np.stack(list(checks.values())), axis=0).astype(np.float64)


HISTORY_STEPS = 14  # interpolated past samples at -1.5 ... -0.2 s (§7.8)


def interpolate_past_states(past_states: np.ndarray, past_time_us: np.ndarray, dt: float = SIM_DT) -> np.ndarray:
    """Logged past (P, 11) at times (P,) µs (relative, last = 0) -> 14 states at -1.5, -1.4, ..., -0.2 s (§7.8).

    Linear in every component, heading interpolated on the unwrapped angle; yaw rate and yaw acceleration 0.
    """
    past_states = np.asarray(past_states, dtype=np.float64)
    # Sample times in integer µs from the first logged state, last one dropped (the devkit's history grid).
    times_us = np.asarray(past_time_us, dtype=np.int64)
    query_us = np.arange(times_us[0], times_us[-1], int(round(dt * US_PER_S)), dtype=np.int64)[:-1]
    times = times_us.astype(np.float64)
    query = query_us.astype(np.float64)
    out = np.zeros((len(query), past_states.shape[1]))
    for index in range(past_states.shape[1]):
        out[:, index] = np.interp(query, times, past_states[:, index])
    heading = np.unwrap(past_states[:, StateIndex.HEADING])
    out[:, StateIndex.HEADING] = np.arctan2(*[f(np.interp(query, times, heading)) for f in (np.sin, np.cos)])
    out[:, StateIndex.ANGULAR_VELOCITY] = 0.0
    out[:, StateIndex.ANGULAR_ACCELERATION] = 0.0
    return out


def history_comfort(states: np.ndarray, past_states: Optional[np.ndarray], past_time_us: Optional[np.ndarray],
                    dt: float = SIM_DT) -> np.ndarray:
    """v2 HC per trajectory (B,) on 14 interpolated past states + the 41 simulated states; 1 without a past."""
    if past_states is None:
        return np.ones(len(states))
    past = interpolate_past_states(past_states, past_time_us, dt)
    series = np.concatenate([np.broadcast_to(past, (len(states),) + past.shape), states], axis=1)
    checks = comfort_checks(series, V2_HISTORY_COMFORT, dt)
    return np.all(np.stack(list(checks.values())), axis=0).astype(np.float64)


# --- EC (v2) ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtendedComfortThresholds:
    """RMS bounds of the feature differences (§7.10)."""

    acceleration: float = 0.7
    jerk: float = 0.5
    yaw_rate: float = 0.1
    yaw_acceleration: float = 0.1


EC_JERK_WINDOW = 15


def _extended_comfort_features(states: np.ndarray, dt: float) -> np.ndarray:
    """(B, 4, T) acceleration magnitude, jerk, yaw rate, yaw acceleration (rounded) of state series (B, T, 11)."""
    ax = states[..., StateIndex.ACCELERATION_X]
    ay = states[..., StateIndex.ACCELERATION_Y]
    acceleration = _rounded(savgol(np.hypot(ax, ay), JERK_PRE_FILTER_WINDOW, SG_POLYORDER))
    jerk = _rounded(savgol(acceleration, EC_JERK_WINDOW, SG_POLYORDER, deriv=1, delta=dt))
    heading = unwrap_heading(states[..., StateIndex.HEADING])
    yaw_rate = _rounded(savgol(heading, *YAW_RATE_FILTER, deriv=1, delta=dt))
    yaw_acc = _rounded(savgol(heading, *EC_YAW_ACCELERATION_FILTER, deriv=2, delta=dt))
    return np.stack([acceleration, jerk, yaw_rate, yaw_acc], axis=1)


def extended_comfort(current_states: np.ndarray, previous_states: np.ndarray, overlap_offset: int,
                     dt: float = SIM_DT,
                     thresholds: ExtendedComfortThresholds = ExtendedComfortThresholds()) -> np.ndarray:
    """EC (B,) in {0, 1}: current[0 : T-o] versus previous[o : T] of the same agent (§7.10)."""
    current_states = np.asarray(current_states, dtype=np.float64)
    previous_states = np.asarray(previous_states, dtype=np.float64)
    length = current_states.shape[1] - overlap_offset
    current = _extended_comfort_features(current_states[:, :length], dt)
    previous = _extended_comfort_features(previous_states[:, overlap_offset : overlap_offset + length], dt)
    rms = np.sqrt(np.mean((current - previous) ** 2, axis=-1))  # (B, 4)
    limits = np.array([thresholds.acceleration, thresholds.jerk, thresholds.yaw_rate, thresholds.yaw_acceleration])
    return np.all(rms <= limits, axis=-1).astype(np.float64)
