"""Typed NAVSIM scene data: the same fields, units and frames as the official devkit's dataclasses.

Frames: *global* is the map's projected frame (x east, y north, metres). *Local* poses are relative to the
current rear axle (x forward, y left, heading counter-clockwise, radians wrapped to (-pi, pi]).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import numpy as np

CAMERA_NAMES = ("CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2", "CAM_B0")
"""The eight OpenScene camera keys, in devkit order (every log frame must carry all eight)."""

AGENT_TYPES = ("vehicle", "pedestrian", "bicycle")
STATIC_OBJECT_TYPES = ("traffic_cone", "barrier", "czone_sign", "generic_object")

DRIVING_COMMANDS = ("left", "forward", "right", "unknown")
"""Order of the one-hot `driving_command` vector in OpenScene logs."""

TURN_COMMAND_SIGNS = {"left": 1, "right": -1}
"""The driving commands that turn, with the sign of the turn's heading change (ego frame: y left, yaw
counter-clockwise)."""


@dataclass
class TrajectorySampling:
    """Mirror of nuPlan's TrajectorySampling: poses exclude the initial state; derives the missing field."""

    num_poses: Optional[int] = None
    time_horizon: Optional[float] = None
    interval_length: Optional[float] = None

    def __post_init__(self) -> None:
        n, t, dt = self.num_poses, self.time_horizon, self.interval_length
        if sum(v is None for v in (n, t, dt)) > 1:
            raise ValueError("TrajectorySampling needs at least two of num_poses, time_horizon, interval_length")
        if n is None:
            n = int(round(t / dt))
        elif t is None:
            t = n * dt
        elif dt is None:
            dt = t / n
        if not np.isclose(n * dt, t):
            raise ValueError(f"inconsistent TrajectorySampling: {n} poses x {dt} s != {t} s")
        self.num_poses, self.time_horizon, self.interval_length = int(n), float(t), float(dt)

    @property
    def step_time(self) -> float:
        return self.interval_length


DEFAULT_SAMPLING = TrajectorySampling(time_horizon=4.0, interval_length=0.5)
"""NAVSIM's planning horizon: 8 poses at 0.5 s (t = 0.5 ... 4.0 s)."""


@dataclass
class Trajectory:
    """Poses (N, 3) = (x, y, heading) in the current rear-axle frame."""

    poses: np.ndarray
    trajectory_sampling: TrajectorySampling = field(default_factory=lambda: TrajectorySampling(8, 4.0, 0.5))

    def __post_init__(self) -> None:
        if self.poses.ndim != 2 or self.poses.shape[1] != 3:
            raise ValueError(f"trajectory poses must be (N, 3), got {self.poses.shape}")
        if self.poses.shape[0] != self.trajectory_sampling.num_poses:
            raise ValueError(
                f"trajectory has {self.poses.shape[0]} poses, sampling expects {self.trajectory_sampling.num_poses}"
            )


@dataclass
class EgoStatus:
    """Ego state of one frame. In an AgentInput the pose is relative to the current rear axle."""

    ego_pose: np.ndarray  # (3,) x, y, heading
    ego_velocity: np.ndarray  # (2,) vx, vy in the ego frame [m/s]
    ego_acceleration: np.ndarray  # (2,) ax, ay in the ego frame [m/s^2]
    driving_command: np.ndarray  # (4,) one-hot (left, forward, right, unknown)
    in_global_frame: bool = False

    @property
    def command(self) -> str:
        """The driving command's name (a ``DRIVING_COMMANDS`` entry)."""
        return DRIVING_COMMANDS[int(np.argmax(self.driving_command))]


@dataclass
class Camera:
    image: Optional[np.ndarray] = None  # uint8 (H, W, 3) RGB
    sensor2lidar_rotation: Optional[np.ndarray] = None  # (3, 3)
    sensor2lidar_translation: Optional[np.ndarray] = None  # (3,)
    intrinsics: Optional[np.ndarray] = None  # (3, 3)
    distortion: Optional[np.ndarray] = None
    camera_path: Optional[str] = None


@dataclass
class Cameras:
    cam_f0: Camera = field(default_factory=Camera)
    cam_l0: Camera = field(default_factory=Camera)
    cam_l1: Camera = field(default_factory=Camera)
    cam_l2: Camera = field(default_factory=Camera)
    cam_r0: Camera = field(default_factory=Camera)
    cam_r1: Camera = field(default_factory=Camera)
    cam_r2: Camera = field(default_factory=Camera)
    cam_b0: Camera = field(default_factory=Camera)

    def get(self, name: str) -> Camera:
        """Camera by OpenScene key (``CAM_F0``) or field name (``cam_f0``)."""
        key = name.lower()
        if key not in {f.name for f in fields(self)}:
            raise KeyError(f"unknown camera {name!r}; expected one of {CAMERA_NAMES}")
        return getattr(self, key)


@dataclass
class Lidar:
    lidar_pc: Optional[np.ndarray] = None  # (6, n) x, y, z, intensity, ring, lidar_id


@dataclass
class AgentInput:
    """What a NAVSIM agent sees: one entry per history frame, oldest first, last = current frame."""

    ego_statuses: list[EgoStatus]
    cameras: list[Cameras]
    lidars: list[Lidar]


@dataclass
class Annotations:
    """Boxes of one frame, in that frame's ego (rear-axle) frame."""

    boxes: np.ndarray  # (N, 7) x, y, z, length, width, height, yaw
    names: list[str]  # (N,) object class
    velocity_3d: np.ndarray  # (N, 3) treated as ego-frame (vx, vy, vz), as navsim does
    instance_tokens: list[str]
    track_tokens: list[str]


@dataclass
class Frame:
    token: str
    timestamp: int  # microseconds
    roadblock_ids: list[str]
    traffic_lights: list[tuple[int, bool]]  # (lane_connector_id, is_red)
    annotations: Optional[Annotations]
    ego_status: EgoStatus  # in the global frame
    lidar: Lidar
    cameras: Cameras


@dataclass
class SceneMetadata:
    log_name: str
    scene_token: str  # nuPlan scene token of the current frame (not the NAVSIM token)
    map_name: str  # nuPlan map location folder name
    initial_token: str  # token of the current frame = the NAVSIM scene token
    num_history_frames: int
    num_future_frames: int
