"""SE(2) helpers shared by the data layer and the scorer.

Conventions follow NAVSIM: headings in radians, counter-clockwise from +x, wrapped to (-pi, pi] with
atan2(sin, cos); a relative pose is expressed in the frame of an origin pose (x forward, y left).
"""

from __future__ import annotations

import numpy as np


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles to (-pi, pi] via atan2(sin, cos)."""
    return np.arctan2(np.sin(angle), np.cos(angle))


def history_yaw_rate(heading_now, heading_before, interval_s: float):
    """Yaw rate [rad/s] over the last history interval: the wrapped heading change divided by its duration."""
    return wrap_angle(np.asarray(heading_now) - np.asarray(heading_before)) / interval_s


def constant_turn_rate_poses(speed, yaw_rate, times) -> np.ndarray:
    """Poses (..., T, 3) reached at ``times`` (T,) [s] from the origin pose, driving at constant ``speed`` [m/s]
    and ``yaw_rate`` [rad/s] (arrays of one shape, or scalars): an arc, a straight line when the yaw rate is 0.

    x = v sin(w t) / w and y = v (1 - cos(w t)) / w, written with sinc so that w -> 0 needs no special case.
    """
    speed = np.asarray(speed, dtype=np.float64)[..., None]
    yaw_rate = np.asarray(yaw_rate, dtype=np.float64)[..., None]
    times = np.asarray(times, dtype=np.float64)
    heading = yaw_rate * times
    x = speed * times * np.sinc(heading / np.pi)  # np.sinc(u) = sin(pi u) / (pi u)
    y = speed * times * np.sin(heading / 2.0) * np.sinc(heading / (2.0 * np.pi))
    return np.stack(np.broadcast_arrays(x, y, heading), axis=-1)


def quaternion_to_yaw(quaternion: np.ndarray) -> float:
    """Yaw of a (w, x, y, z) quaternion: the first element of yaw-pitch-roll angles.

    Uses the same expression as pyquaternion's ``yaw_pitch_roll`` (which the devkit calls on
    ``ego2global_rotation``, spec navsim_data.md §3): atan2(2 (w z - x y), 1 - 2 (y^2 + z^2)). It equals the
    textbook ZYX yaw for rotations about +z and differs from it only by O(roll * pitch) otherwise.
    """
    w, x, y, z = (float(v) for v in np.asarray(quaternion, dtype=np.float64))
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError(f"invalid quaternion {quaternion!r}")
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return float(np.arctan2(2.0 * (w * z - x * y), 1.0 - 2.0 * (y * y + z * z)))


def yaw_to_quaternion(yaw: float) -> np.ndarray:
    """(w, x, y, z) quaternion of a rotation by `yaw` about +z."""
    return np.array([np.cos(yaw / 2.0), 0.0, 0.0, np.sin(yaw / 2.0)])


def rotation_matrix(heading: float) -> np.ndarray:
    """2x2 rotation by `heading`."""
    c, s = np.cos(heading), np.sin(heading)
    return np.array([[c, -s], [s, c]])


def absolute_to_relative_poses(origin: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Express global poses (..., 3) in the frame of the global `origin` pose (3,)."""
    origin = np.asarray(origin, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    dx = poses[..., 0] - origin[0]
    dy = poses[..., 1] - origin[1]
    c, s = np.cos(origin[2]), np.sin(origin[2])
    out = np.empty_like(poses)
    out[..., 0] = c * dx + s * dy
    out[..., 1] = -s * dx + c * dy
    out[..., 2] = wrap_angle(poses[..., 2] - origin[2])
    return out


def relative_to_absolute_poses(origin: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Inverse of :func:`absolute_to_relative_poses`: local poses (..., 3) to the global frame."""
    origin = np.asarray(origin, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    out = np.empty_like(poses)
    out[..., 0] = origin[0] + c * poses[..., 0] - s * poses[..., 1]
    out[..., 1] = origin[1] + s * poses[..., 0] + c * poses[..., 1]
    out[..., 2] = wrap_angle(poses[..., 2] + origin[2])
    return out
