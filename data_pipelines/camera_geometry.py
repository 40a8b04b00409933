"""Pinhole camera geometry between the ego, lidar and camera frames of OpenScene logs.

Frames (OpenScene / nuPlan):
* ego: rear axle on the ground, x forward, y left, z up.
* lidar: `lidar2ego_rotation` (quaternion w, x, y, z) and `lidar2ego_translation` map lidar coordinates to the ego
  frame: p_ego = R_l2e p_lidar + t_l2e.
* camera: x right, y down, z forward (optical axis). `sensor2lidar_rotation` (3x3) and `sensor2lidar_translation`
  map camera coordinates to the lidar frame: p_lidar = R_s2l p_cam + t_s2l.
* image: pixel (u, v) = (fx x / z + cx, fy y / z + cy) with `cam_intrinsic` K; u to the right, v down, origin at the
  top-left pixel corner. Distortion is ignored (the synthetic world writes zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_DEPTH_M = 0.1  # points closer to the image plane are not projected


def quaternion_to_rotation_matrix(quaternion: np.ndarray) -> np.ndarray:
    """3x3 rotation of a unit quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(quaternion, dtype=np.float64) / np.linalg.norm(quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rotation_matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) with w >= 0 of a 3x3 rotation matrix."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = np.empty(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def camera_to_body_rotation(yaw: float, pitch: float = 0.0) -> np.ndarray:
    """Rotation taking camera axes (x right, y down, z forward) to a body frame (x forward, y left, z up).

    The optical axis points along `yaw` (counter-clockwise from body +x) and is tilted down by `pitch`."""
    forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), -np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def homogeneous(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = translation
    return out


@dataclass
class PinholeCamera:
    """A camera of one frame: intrinsics, camera->lidar and lidar->ego extrinsics, image size."""

    intrinsic: np.ndarray  # (3, 3)
    sensor2lidar_rotation: np.ndarray  # (3, 3)
    sensor2lidar_translation: np.ndarray  # (3,)
    lidar2ego_rotation: np.ndarray = None  # (3, 3); identity when None
    lidar2ego_translation: np.ndarray = None  # (3,); zero when None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        self.intrinsic = np.asarray(self.intrinsic, dtype=np.float64)
        self.sensor2lidar_rotation = np.asarray(self.sensor2lidar_rotation, dtype=np.float64)
        self.sensor2lidar_translation = np.asarray(self.sensor2lidar_translation, dtype=np.float64)
        rot = np.eye(3) if self.lidar2ego_rotation is None else np.asarray(self.lidar2ego_rotation, dtype=np.float64)
        if rot.shape == (4,):
            rot = quaternion_to_rotation_matrix(rot)
        self.lidar2ego_rotation = rot
        self.lidar2ego_translation = (np.zeros(3) if self.lidar2ego_translation is None
                                      else np.asarray(self.lidar2ego_translation, dtype=np.float64))

    @classmethod
    def from_frame(cls, frame: dict, camera_name: str, width: int | None = None, height: int | None = None) -> "PinholeCamera":
        """Camera `camera_name` of an OpenScene frame dict (uses the frame's lidar2ego extrinsics)."""
        cam = frame["cams"][camera_name]
        return cls(cam["cam_intrinsic"], cam["sensor2lidar_rotation"], cam["sensor2lidar_translation"],
                   frame["lidar2ego_rotation"], frame["lidar2ego_translation"], width, height)

    @property
    def camera_to_ego(self) -> np.ndarray:
        """4x4 transform of camera coordinates into the ego frame."""
        rotation = self.lidar2ego_rotation @ self.sensor2lidar_rotation
        translation = self.lidar2ego_rotation @ self.sensor2lidar_translation + self.lidar2ego_translation
        return homogeneous(rotation, translation)

    @property
    def ego_to_camera(self) -> np.ndarray:
        m = self.camera_to_ego
        return homogeneous(m[:3, :3].T, -m[:3, :3].T @ m[:3, 3])

    @property
    def position_ego(self) -> np.ndarray:
        return self.camera_to_ego[:3, 3]

    def ego_to_camera_points(self, points_ego: np.ndarray) -> np.ndarray:
        m = self.ego_to_camera
        return np.asarray(points_ego, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]

    def camera_to_pixels(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) and a mask of points in front of the camera (depth > MIN_DEPTH_M)."""
        points_cam = np.atleast_2d(points_cam)
        depth = points_cam[:, 2]
        valid = depth > MIN_DEPTH_M
        z = np.where(valid, depth, 1.0)
        uv = np.stack([self.intrinsic[0, 0] * points_cam[:, 0] / z + self.intrinsic[0, 2],
                       self.intrinsic[1, 1] * points_cam[:, 1] / z + self.intrinsic[1, 2]], axis=1)
        return uv, valid

    def project_ego_points(self, points_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) of ego-frame points (N, 3) and a validity mask (in front; inside the image if sized)."""
        uv, valid = self.camera_to_pixels(self.ego_to_camera_points(np.atleast_2d(points_ego)))
        if self.width is not None and self.height is not None:
            valid &= (uv[:, 0] >= 0) & (uv[:, 0] < self.width) & (uv[:, 1] >= 0) & (uv[:, 1] < self.height)
        return uv, valid

    def pixel_rays_ego(self, width: int, height: int) -> np.ndarray:
        """Unit ray directions (height, width, 3) in the ego frame through pixel centres."""
        u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        k_inv = np.linalg.inv(self.intrinsic)
        pix = np.stack([u, v, np.ones_like(u)], axis=-1)
        rays = pix @ k_inv.T @ self.camera_to_ego[:3, :3].T
        return rays / np.linalg.norm(rays, axis=-1, keepdims=True)

    def ground_points(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Ego-frame (x, y) where each pixel's ray meets the ground z = 0, and a mask of rays that do."""
        rays = self.pixel_rays_ego(width, height)
        origin = self.position_ego
        hits = rays[..., 2] < -1e-6
        t = np.where(hits, -origin[2] / np.where(hits, rays[..., 2], -1.0), 0.0)
        xy = origin[:2] + t[..., None] * rays[..., :2]
        return xy, hits


def project_trajectory(poses_ego: np.ndarray, camera: PinholeCamera, height_m: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of trajectory poses (N, >=2) given in the ego (rear-axle) frame, drawn at `height_m` above ground."""
    poses = np.atleast_2d(np.asarray(poses_ego, dtype=np.float64))
    points = np.column_stack([poses[:, 0], poses[:, 1], np.full(len(poses), height_m)])
    return camera.project_ego_points(points)


def scaled_intrinsic(fx: float, fy: float, cx: float, cy: float, scale: float) -> np.ndarray:
    """Intrinsics of an image resized by `scale` (pixel-corner convention)."""
    return np.array([[fx * scale, 0.0, cx * scale], [0.0, fy * scale, cy * scale], [0.0, 0.0, 1.0]])
