"""SE(2) helpers, the quaternion yaw convention of the devkit (pyquaternion's yaw_pitch_roll) and the
constant-turn-rate extrapolation."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.geometry import (
    absolute_to_relative_poses,
    constant_turn_rate_poses,
    history_yaw_rate,
    quaternion_to_yaw,
    relative_to_absolute_poses,
    wrap_angle,
    yaw_to_quaternion,
)


def _axis_quaternion(axis: int, angle: float) -> np.ndarray:
    q = np.zeros(4)
    q[0] = np.cos(angle / 2.0)
    q[1 + axis] = np.sin(angle / 2.0)
    return q


def _multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ])


@pytest.mark.parametrize("yaw, pitch, roll", [(0.7, 0.2, -0.3), (-2.5, 0.1, 0.25), (3.0, -0.05, 0.4)])
def test_yaw_follows_pyquaternion_convention(yaw, pitch, roll):
    """pyquaternion documents R = R_x(roll) R_y(pitch) R_z(yaw); its yaw recovers `yaw` from that product."""
    q = _multiply(_multiply(_axis_quaternion(0, roll), _axis_quaternion(1, pitch)), _axis_quaternion(2, yaw))
    assert quaternion_to_yaw(q) == pytest.approx(yaw, abs=1e-12)
    assert quaternion_to_yaw(2.5 * q) == pytest.approx(yaw, abs=1e-12)  # normalised first


def test_pure_yaw_round_trip_and_invalid_quaternion():
    for yaw in np.linspace(-3.1, 3.1, 7):
        assert quaternion_to_yaw(yaw_to_quaternion(yaw)) == pytest.approx(yaw, abs=1e-12)
    with pytest.raises(ValueError):
        quaternion_to_yaw(np.zeros(4))


def test_relative_pose_formula_and_inverse():
    origin = np.array([10.0, -4.0, np.pi / 2])
    poses = np.array([[10.0, -2.0, np.pi / 2], [8.0, -4.0, -np.pi + 0.1]])
    local = absolute_to_relative_poses(origin, poses)
    np.testing.assert_allclose(local[0], [2.0, 0.0, 0.0], atol=1e-12)  # 2 m straight ahead
    np.testing.assert_allclose(local[1, :2], [0.0, 2.0], atol=1e-12)  # 2 m to the left
    assert local[1, 2] == pytest.approx(wrap_angle(-np.pi + 0.1 - np.pi / 2))
    np.testing.assert_allclose(relative_to_absolute_poses(origin, local)[:, :2], poses[:, :2], atol=1e-12)
    assert wrap_angle(np.pi) == pytest.approx(np.pi) and wrap_angle(3 * np.pi / 2) == pytest.approx(-np.pi / 2)


def test_constant_turn_rate_poses_are_an_arc_and_a_line_without_turning():
    times = 0.5 * np.arange(1, 9)
    poses = constant_turn_rate_poses(np.array([5.0, 5.0, 3.0]), np.array([0.2, 0.0, -0.3]), times)
    assert poses.shape == (3, 8, 3)
    speed, rate = 5.0, 0.2
    np.testing.assert_allclose(poses[0, :, 0], speed / rate * np.sin(rate * times))
    np.testing.assert_allclose(poses[0, :, 1], speed / rate * (1 - np.cos(rate * times)))
    np.testing.assert_allclose(poses[1], np.stack([5.0 * times, 0 * times, 0 * times], 1))
    assert np.all(poses[2, :, 1] < 0) and np.all(poses[2, :, 2] < 0)  # a right turn
    # the distance along the arc is speed x time
    steps = np.diff(np.concatenate([[[0.0, 0.0]], poses[2, :, :2]]), axis=0)
    np.testing.assert_allclose(np.hypot(*steps.T), 3.0 * 0.5, rtol=1e-3)


def test_history_yaw_rate_wraps_the_heading_change():
    assert history_yaw_rate(0.0, -0.1, 0.5) == pytest.approx(0.2)
    assert history_yaw_rate(-np.pi + 0.05, np.pi - 0.05, 0.5) == pytest.approx(0.2)
