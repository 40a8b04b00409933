"""Pinhole geometry between ego, lidar and camera frames (OpenScene conventions)."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.camera_geometry import (
    PinholeCamera, camera_to_body_rotation, project_trajectory, quaternion_to_rotation_matrix,
    rotation_matrix_to_quaternion,
)

FX, CX, CY = 200.0, 128.0, 72.0
LIDAR_T = np.array([1.5, 0.0, 1.9])
CAM_EGO = np.array([2.0, 0.0, 1.6])


def _front_camera(yaw: float = 0.0, lidar_yaw: float = 0.0) -> PinholeCamera:
    """A camera at CAM_EGO looking along `yaw`, expressed through a lidar rotated by `lidar_yaw`."""
    r_l2e = np.array([[np.cos(lidar_yaw), -np.sin(lidar_yaw), 0], [np.sin(lidar_yaw), np.cos(lidar_yaw), 0], [0, 0, 1]])
    r_c2e = camera_to_body_rotation(yaw)
    s2l_rot = r_l2e.T @ r_c2e
    s2l_t = r_l2e.T @ (CAM_EGO - LIDAR_T)
    k = np.array([[FX, 0, CX], [0, FX, CY], [0, 0, 1.0]])
    return PinholeCamera(k, s2l_rot, s2l_t, rotation_matrix_to_quaternion(r_l2e), LIDAR_T, 256, 144)


def test_camera_axes_convention():
    r = camera_to_body_rotation(0.0)
    # camera z (optical axis) = ego x (forward); camera x (right) = ego -y; camera y (down) = ego -z.
    assert np.allclose(r @ [0, 0, 1], [1, 0, 0])
    assert np.allclose(r @ [1, 0, 0], [0, -1, 0])
    assert np.allclose(r @ [0, 1, 0], [0, 0, -1])
    assert np.isclose(np.linalg.det(r), 1.0)


@pytest.mark.parametrize("lidar_yaw", [0.0, 0.3, -1.2])
def test_known_points_project_to_expected_pixels(lidar_yaw):
    cam = _front_camera(lidar_yaw=lidar_yaw)
    ahead = CAM_EGO + np.array([10.0, 0.0, 0.0])  # on the optical axis
    left_low = CAM_EGO + np.array([10.0, 1.0, -0.5])  # 1 m left, 0.5 m lower
    uv, valid = cam.project_ego_points(np.array([ahead, left_low]))
    assert valid.all()
    assert np.allclose(uv[0], [CX, CY])
    assert np.allclose(uv[1], [CX - FX * 1.0 / 10.0, CY + FX * 0.5 / 10.0])
    behind = CAM_EGO - np.array([5.0, 0.0, 0.0])
    assert not cam.project_ego_points(behind[None])[1][0]


def test_side_camera_sees_the_left():
    cam = _front_camera(yaw=np.pi / 2)
    uv, valid = cam.project_ego_points((CAM_EGO + np.array([0.0, 8.0, 0.0]))[None])
    assert valid[0] and np.allclose(uv[0], [CX, CY])


def test_pixel_ray_round_trip():
    cam = _front_camera(yaw=0.4, lidar_yaw=0.2)
    rays = cam.pixel_rays_ego(256, 144)
    rng = np.random.default_rng(0)
    for _ in range(20):
        u, v = rng.integers(0, 256), rng.integers(0, 144)
        point = cam.position_ego + rng.uniform(2.0, 50.0) * rays[v, u]
        uv, valid = cam.project_ego_points(point[None])
        assert valid[0] and np.allclose(uv[0], [u + 0.5, v + 0.5], atol=1e-6)


def test_ground_points_lie_on_the_ground_under_the_pixel():
    cam = _front_camera()
    xy, hits = cam.ground_points(256, 144)
    assert not hits[: int(CY) - 1].any() and hits[-1].all()  # sky above the horizon, road below
    v, u = 130, 40
    point = np.array([xy[v, u, 0], xy[v, u, 1], 0.0])
    uv, _ = cam.project_ego_points(point[None])
    assert np.allclose(uv[0], [u + 0.5, v + 0.5], atol=1e-6)


def test_transforms_are_inverse_and_quaternions_round_trip():
    cam = _front_camera(yaw=0.7, lidar_yaw=-0.4)
    assert np.allclose(cam.camera_to_ego @ cam.ego_to_camera, np.eye(4))
    q = np.array([0.9, 0.1, -0.2, 0.3])
    q /= np.linalg.norm(q)
    assert np.allclose(rotation_matrix_to_quaternion(quaternion_to_rotation_matrix(q)), q)


def test_project_trajectory_and_frame_dict_constructor():
    cam = _front_camera()
    frame = {"lidar2ego_rotation": rotation_matrix_to_quaternion(np.eye(3)), "lidar2ego_translation": LIDAR_T,
             "cams": {"CAM_F0": {"cam_intrinsic": cam.intrinsic, "sensor2lidar_rotation": cam.sensor2lidar_rotation,
                                 "sensor2lidar_translation": cam.sensor2lidar_translation}}}
    from_frame = PinholeCamera.from_frame(frame, "CAM_F0", 256, 144)
    poses = np.array([[10.0, 0.0, 0.0], [20.0, 0.0, 0.0], [30.0, 2.0, 0.1]])
    uv_a, valid_a = project_trajectory(poses, cam)
    uv_b, valid_b = project_trajectory(poses, from_frame)
    assert np.allclose(uv_a, uv_b) and valid_a.all() and valid_b.all()
    assert not project_trajectory(np.array([[3.0, 0.0, 0.0]]), cam)[1][0]  # too close: below the image
    assert np.all(np.diff(uv_a[:2, 1]) < 0)  # farther points are higher in the image
    assert np.isclose(uv_a[0, 0], CX)
