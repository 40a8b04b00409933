"""Batched LQR tracker + kinematic bicycle model (spec pdm_score.md §5).

Every row of the batch is an independent reference (41 poses) tracked from the same initial ego state.
All operations are vectorised over the batch; the 40 simulation steps are the only Python loop.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

from data_pipelines.geometry import wrap_angle
from navsim_eval.pdm.constants import (
    ACCEL_TIME_CONSTANT,
    CURVATURE_PENALTY,
    CURVATURE_RATE_PENALTY,
    JERK_PENALTY,
    LAT_Q,
    LAT_R,
    LON_Q,
    LON_R,
    MAX_STEERING_ANGLE,
    NUM_SIM_STATES,
    SIM_DT,
    STATE_DIM,
    STEERING_TIME_CONSTANT,
    STOPPING_PROPORTIONAL_GAIN,
    STOPPING_VELOCITY,
    TRACKING_HORIZON,
    WHEEL_BASE,
    StateIndex,
)


def _integration_matrix(num: int, dt: float) -> np.ndarray:
    """(num, num) matrix mapping (initial value, derivatives d_0..d_{num-2}) to the profile of num values."""
    matrix = np.zeros((num, num))
    matrix[:, 0] = 1.0
    matrix[:, 1:] = np.tril(np.ones((num, num - 1)), k=-1) * dt
    return matrix


@lru_cache(maxsize=8)
def _velocity_fit_operator(num: int, dt: float) -> np.ndarray:
    """(n, num) matrix mapping heading-projected displacements to (v0, a_0 .. a_{num-2}) (see below)."""
    integration = _integration_matrix(num, dt)
    regulariser = np.zeros((num - 2, num))
    rows = np.arange(num - 2)
    regulariser[rows, rows + 1] = -1.0
    regulariser[num - 3, num - 1] = 1.0
    normal = dt * dt * integration.T @ integration + JERK_PENALTY * regulariser.T @ regulariser
    operator = np.linalg.solve(normal, dt * integration.T)
    operator.setflags(write=False)
    return operator


@lru_cache(maxsize=8)
def _curvature_fit_structure(num: int, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scale dt²·f_i·f_k, index max(i, k), penalty) of the curvature fit's normal matrix."""
    factor = np.concatenate([[1.0], np.full(num - 1, dt)])
    scale = dt * dt * np.outer(factor, factor)
    index = np.maximum.outer(np.arange(num), np.arange(num))
    penalty = np.diag(np.concatenate([[CURVATURE_PENALTY], np.full(num - 1, CURVATURE_RATE_PENALTY)]))
    for array in (scale, index, penalty):
        array.setflags(write=False)
    return scale, index, penalty


def fit_reference_profiles(reference_xyh: np.ndarray, dt: float = SIM_DT) -> tuple[np.ndarray, np.ndarray]:
    """Velocity and curvature profiles (B, 40) fitted to reference poses (B, 41, 3) (§5 reference profiles)."""
    displacements = np.diff(reference_xyh[..., :2], axis=1)  # (B, 40, 2)
    heading_displacements = wrap_angle(np.diff(reference_xyh[..., 2], axis=1))  # (B, 40)
    batch, num = heading_displacements.shape
    headings = reference_xyh[:, :num, 2]
    integration = _integration_matrix(num, dt)  # profile = integration @ (initial, derivatives)

    # Velocity: Δp_j ≈ dt v_j (cos h_j, sin h_j), regularised by JERK_PENALTY·‖R x‖². The devkit's regulariser
    # (reproduced as measured on its outputs): rows -a_i for i = 0..M-4 and a_{M-2} - a_{M-3} for the last row,
    # i.e. its "banded difference" matrix keeps only the diagonal except in the final row.
    # Since cos² + sin² = 1 the normal matrix does not depend on the headings: one constant solve operator
    # applied to the displacements projected on the headings.
    along = displacements[..., 0] * np.cos(headings) + displacements[..., 1] * np.sin(headings)  # (B, 40)
    velocity_params = along @ _velocity_fit_operator(num, dt).T
    velocity_profile = velocity_params @ integration.T  # (B, 40)

    # Curvature: δ_j ≈ dt v_j κ_j; diagonal penalty on κ0 and the curvature rates. With A = dt·diag(v)·I the
    # normal matrix entries are dt²·f_i·f_k·Σ_{j ≥ max(i,k)} v_j² (f = 1 for κ0, dt for the rates), built from
    # suffix sums instead of a batched matrix product.
    scale, max_index, penalty = _curvature_fit_structure(num, dt)
    suffix_v2 = np.cumsum((velocity_profile**2)[:, ::-1], axis=1)[:, ::-1]
    suffix_vd = np.cumsum((velocity_profile * heading_displacements)[:, ::-1], axis=1)[:, ::-1]
    normal = suffix_v2[:, max_index] * scale + penalty
    rhs = suffix_vd * (scale[0] / dt)  # dt·f_i·Σ_{j ≥ i} v_j δ_j
    curvature_params = np.linalg.solve(normal, rhs[..., None])[..., 0]
    curvature_profile = curvature_params @ integration.T
    return velocity_profile, curvature_profile


class _HorizonSums:
    """Constants of the closed-form lateral LQR over the tracking horizon i = 0..N-1 (velocities v + i·dt·a).

    Every horizon sum is a quadratic form in (v, dt·a); the coefficients below include the dt and wheel-base
    factors. Curvature-dependent sums use the per-step window sums Σ κ_j w_j for the weights `kappa_weights`.
    """

    def __init__(self, horizon: int, dt: float, wheel_base: float):
        i = np.arange(horizon, dtype=np.float64)
        tri = i * (i - 1.0) / 2.0  # Σ_{j<i} j
        squares_before = np.concatenate([[0.0], np.cumsum(i**2)[:-1]])  # Σ_{j<i} j²
        after = np.array([np.sum(i[j + 1 :]) for j in range(horizon)])  # Σ_{i>j} i
        self.sum_a = (dt * horizon, dt * i.sum())  # Σ a_i = dt Σ v_i
        self.sum_b = tuple(c / wheel_base for c in self.sum_a)  # Σ b_i = Σ a_i / L
        ab = dt * dt / wheel_base
        self.sum_ab = (ab * i.sum(), ab * (tri + i**2).sum(), ab * (i * tri).sum())  # Σ a_i Σ_{j<i} b_j
        self.psi_input = (ab * i.sum(), ab * (i**2).sum())  # Σ b_j j dt
        ein = dt**3 / wheel_base
        self.e_input = (ein * tri.sum(), ein * (squares_before + i * tri).sum(), ein * (i * squares_before).sum())
        # Weights per κ_j of: Σ c_j (v and dt·a terms) and Σ a_i Σ_{j<i} c_j (v², v·dt·a, (dt·a)² terms),
        # with their constant factors (-dt, -dt²) folded in.
        self.kappa_weights = np.stack([
            -dt * np.ones(horizon), -dt * i,
            -dt * dt * (horizon - 1.0 - i), -dt * dt * (after + i * (horizon - 1.0 - i)), -dt * dt * i * after,
        ], axis=1)  # (N, 5)
        self.steering_input = horizon * dt
        # Stacked forms: rows (Σa, Σb, ψ_input) from (v, dt·a); rows (Σ a Σb, e_input) from (v², v·dt·a, (dt·a)²).
        self.linear = np.array([self.sum_a, self.sum_b, self.psi_input])
        self.quadratic = np.array([self.sum_ab, self.e_input])


_SUMS = _HorizonSums(TRACKING_HORIZON, SIM_DT, WHEEL_BASE)
# State columns as plain ints for the compiled loop.
_X, _Y, _HEADING = int(StateIndex.X), int(StateIndex.Y), int(StateIndex.HEADING)
_VELOCITY_X, _ACCELERATION_X = int(StateIndex.VELOCITY_X), int(StateIndex.ACCELERATION_X)
_STEERING_ANGLE, _STEERING_RATE = int(StateIndex.STEERING_ANGLE), int(StateIndex.STEERING_RATE)
_ANGULAR_VELOCITY, _ANGULAR_ACCELERATION = int(StateIndex.ANGULAR_VELOCITY), int(StateIndex.ANGULAR_ACCELERATION)


def _horizon_polynomials(v_ref: np.ndarray, kappa_sums: np.ndarray, accel_per_speed: float,
                         sums: _HorizonSums) -> np.ndarray:
    """Per-step coefficients (3, steps, 7, B) of the horizon sums as quadratics in the current speed v.

    The longitudinal command is a = lon_factor·(v_ref − v), so with dt·a = α (v_ref − v) every horizon sum of
    the lateral LQR (linear forms in (v, dt·a), quadratic forms in (v², v·dt·a, (dt·a)²)) is c0 + c1 v + c2 v²
    with c depending only on the step's v_ref and curvature window: the loop evaluates all seven sums with one
    Horner scheme. Rows of the 7 axis: Σa, Σb, ψ_input, Σ a Σb, e_input, Σc, Σ a Σc.
    v_ref (steps, B); kappa_sums (steps, 5, B); α = dt·lon_factor.
    """
    alpha = accel_per_speed
    steps, batch = v_ref.shape
    coefficients = np.zeros((3, steps, 7, batch))

    def linear(row, l_speed, l_accel):  # l_speed v + l_accel α (v_ref - v)
        coefficients[0, :, row] = l_accel * alpha * v_ref
        coefficients[1, :, row] = l_speed - l_accel * alpha

    def quadratic(row, m_vv, m_va, m_aa):  # m_vv v² + m_va v α (v_ref - v) + m_aa α² (v_ref - v)²
        coefficients[0, :, row] = m_aa * alpha * alpha * v_ref * v_ref
        coefficients[1, :, row] = m_va * alpha * v_ref - 2.0 * m_aa * alpha * alpha * v_ref
        coefficients[2, :, row] = m_vv - m_va * alpha + m_aa * alpha * alpha

    for row, (l_speed, l_accel) in enumerate(sums.linear):
        linear(row, l_speed, l_accel)
    for row, (m_vv, m_va, m_aa) in enumerate(sums.quadratic):
        quadratic(3 + row, m_vv, m_va, m_aa)
    linear(5, kappa_sums[:, 0], kappa_sums[:, 1])
    quadratic(6, kappa_sums[:, 2], kappa_sums[:, 3], kappa_sums[:, 4])
    return coefficients


def simulate(reference_xyh: np.ndarray, initial_state: np.ndarray, dt: float = SIM_DT) -> np.ndarray:
    """Track reference poses (B, 41, 3) from the initial ego state (11,) or one per row (B, 11); return states
    (B, 41, 11). Rows are independent, so several scenes can share one call.

    Per step: one-shot lateral LQR over the horizon in closed form (§5). The horizon step matrices are
    unipotent, so the composed free response Φz + g and input response Γ are polynomials in the current speed
    v and the longitudinal command a (velocities v_i = v + i·dt·a); their coefficients are precomputed for all
    steps (`_horizon_polynomials`) so the sequential loop only runs a handful of element-wise operations on
    (B,) arrays. The steering-angle weight of Q is 0, so only the lateral and heading components enter the gain.
    """
    reference_xyh = np.asarray(reference_xyh, dtype=np.float64)
    batch, num_states, _ = reference_xyh.shape
    num_steps = num_states - 1
    velocity_profile, curvature_profile = fit_reference_profiles(reference_xyh, dt)
    last = velocity_profile.shape[1] - 1
    v_ref_all = velocity_profile[:, np.minimum(np.arange(num_steps) + TRACKING_HORIZON, last)]  # (B, steps)
    padded_curvature = np.concatenate(
        [curvature_profile, np.repeat(curvature_profile[:, -1:], TRACKING_HORIZON, axis=1)], axis=1
    )
    windows = np.lib.stride_tricks.sliding_window_view(padded_curvature, TRACKING_HORIZON, axis=1)[:, :num_steps]
    # Per-step quantities as contiguous (steps, B) rows.
    sums = _SUMS if dt == SIM_DT else _HorizonSums(TRACKING_HORIZON, dt, WHEEL_BASE)
    kappa_sums = (windows @ sums.kappa_weights).transpose(1, 2, 0)  # (steps, 5, B)
    v_ref_all = np.ascontiguousarray(v_ref_all.T)
    ref_x, ref_y, ref_h = (np.ascontiguousarray(reference_xyh[:, :num_steps, i].T) for i in range(3))
    sin_ref, cos_ref = np.sin(ref_h), np.cos(ref_h)
    lon_gain = TRACKING_HORIZON * dt
    lon_factor = lon_gain * LON_Q / (lon_gain * LON_Q * lon_gain + LON_R)
    coefficient_0, coefficient_1, coefficient_2 = _horizon_polynomials(v_ref_all, kappa_sums, dt * lon_factor, sums)
    reference_stopping = v_ref_all <= STOPPING_VELOCITY

    # A writable C-order copy: one compiled signature whether one initial state is shared or given per row.
    initial = np.array(np.broadcast_to(np.asarray(initial_state, dtype=np.float64), (batch, STATE_DIM)), order="C")
    return _track(initial, ref_x, ref_y, ref_h, sin_ref, cos_ref, v_ref_all, reference_stopping,
                  np.ascontiguousarray(coefficient_0), np.ascontiguousarray(coefficient_1),
                  np.ascontiguousarray(coefficient_2), dt, lon_factor)


@numba.njit(cache=True)
def _track(initial, ref_x, ref_y, ref_h, sin_ref, cos_ref, v_ref_all, reference_stopping,
           coefficient_0, coefficient_1, coefficient_2, dt, lon_factor):  # pragma: no cover - compiled
    """The sequential part of :func:`simulate`, compiled: per row, 40 steps of lateral LQR + bicycle.

    Inputs are (steps, B) rows (coefficients (steps, 7, B)); returns states (B, steps + 1, 11). Each
    operation is the element-wise float64 expression of the vectorised formulation, in the same order.
    """
    num_steps, batch = ref_x.shape
    accel_lag = dt / (dt + ACCEL_TIME_CONSTANT)
    steering_lag = dt / (dt + STEERING_TIME_CONSTANT)
    q_e, q_psi = LAT_Q[0], LAT_Q[1]
    states = np.zeros((batch, num_steps + 1, STATE_DIM))
    for b in range(batch):
        for column in range(STATE_DIM):
            states[b, 0, column] = initial[b, column]
        x = initial[b, _X]
        y = initial[b, _Y]
        h = initial[b, _HEADING]
        v = initial[b, _VELOCITY_X]
        accel = initial[b, _ACCELERATION_X]
        steering = initial[b, _STEERING_ANGLE]
        tan_steering = np.tan(steering)
        yaw_rate = initial[b, _ANGULAR_VELOCITY]
        horizon = np.empty(7)
        for k in range(num_steps):
            lateral_error = (y - ref_y[k, b]) * cos_ref[k, b] - (x - ref_x[k, b]) * sin_ref[k, b]
            heading_error = h - ref_h[k, b]
            heading_error = np.arctan2(np.sin(heading_error), np.cos(heading_error))
            accel_cmd = lon_factor * (v_ref_all[k, b] - v)
            for row in range(7):
                horizon[row] = (coefficient_2[k, row, b] * v + coefficient_1[k, row, b]) * v + coefficient_0[k, row, b]
            sum_a, sum_b, psi_input, sum_ab, e_input, sum_c, sum_ac = (
                horizon[0], horizon[1], horizon[2], horizon[3], horizon[4], horizon[5], horizon[6])
            psi_free = heading_error + steering * sum_b + sum_c
            psi_free = np.arctan2(np.sin(psi_free), np.cos(psi_free))
            e_free = lateral_error + heading_error * sum_a + steering * sum_ab + sum_ac
            steering_rate_cmd = -(q_e * e_input * e_free + q_psi * psi_input * psi_free) / (
                q_e * e_input * e_input + q_psi * psi_input * psi_input + LAT_R
            )
            if reference_stopping[k, b] and v <= STOPPING_VELOCITY:
                accel_cmd = -STOPPING_PROPORTIONAL_GAIN * (v - v_ref_all[k, b])
                steering_rate_cmd = 0.0

            # Kinematic bicycle with first-order actuator lags; explicit Euler using the old steering angle.
            new_accel = accel + accel_lag * (accel_cmd - accel)
            new_steering_rate = steering_lag * steering_rate_cmd
            distance = dt * v
            x = x + distance * np.cos(h)
            y = y + distance * np.sin(h)
            h = h + distance * tan_steering / WHEEL_BASE
            h = np.arctan2(np.sin(h), np.cos(h))
            v = v + dt * new_accel
            steering = min(max(steering + dt * new_steering_rate, -MAX_STEERING_ANGLE), MAX_STEERING_ANGLE)
            tan_steering = np.tan(steering)
            new_yaw_rate = v * tan_steering / WHEEL_BASE
            out = states[b, k + 1]
            out[_X], out[_Y], out[_HEADING], out[_VELOCITY_X] = x, y, h, v
            out[_ACCELERATION_X], out[_STEERING_ANGLE], out[_STEERING_RATE] = new_accel, steering, new_steering_rate
            out[_ANGULAR_VELOCITY] = new_yaw_rate
            out[_ANGULAR_ACCELERATION] = (new_yaw_rate - yaw_rate) / dt
            accel, yaw_rate = new_accel, new_yaw_rate
    return states


__all__ = ["simulate", "fit_reference_profiles", "NUM_SIM_STATES"]
