"""Scenes: a window of OpenScene frames (history + current + future) as typed objects.

Semantics follow spec navsim_data.md §5: frame ``num_history_frames - 1`` is the current frame; its token is
the scene token. `Frame.ego_status` is global; `AgentInput` poses are relative to the current rear axle;
targets are future poses in the current rear-axle frame (§3 relative-pose formula).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from data_pipelines.errors import DataError
from data_pipelines.geometry import absolute_to_relative_poses, quaternion_to_yaw
from data_pipelines.log_reader import load_camera_image, load_lidar_pcd
from data_pipelines.types import (
    CAMERA_NAMES,
    DEFAULT_SAMPLING,
    AgentInput,
    Annotations,
    Camera,
    Cameras,
    EgoStatus,
    Frame,
    Lidar,
    SceneMetadata,
    Trajectory,
    TrajectorySampling,
)

PathLike = Union[str, Path]
SensorSelection = Union[bool, list[int]]

FRAME_INTERVAL_S = 0.5  # OpenScene frames are 2 Hz (spec §3)
DEFAULT_NUM_HISTORY_FRAMES = 4  # spec §4 SceneFilter default
LIDAR_FIELD = "lidar_pc"
CAMERA_FIELDS = tuple(name.lower() for name in CAMERA_NAMES)  # cam_f0, cam_l0, ... (Cameras field names)


@dataclass
class SensorConfig:
    """Which sensors to load: per sensor either a bool (every frame) or a list of frame indices in the window."""

    cam_f0: SensorSelection = False
    cam_l0: SensorSelection = False
    cam_l1: SensorSelection = False
    cam_l2: SensorSelection = False
    cam_r0: SensorSelection = False
    cam_r1: SensorSelection = False
    cam_r2: SensorSelection = False
    cam_b0: SensorSelection = False
    lidar_pc: SensorSelection = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if not isinstance(value, (list, tuple)) or not all(
                isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in value
            ):
                raise ValueError(f"SensorConfig.{f.name} must be a bool or a list of frame indices, got {value!r}")
            setattr(self, f.name, [int(i) for i in value])

    def get_sensors_at_iteration(self, iteration: int) -> list[str]:
        """Field names (``cam_f0`` ..., ``lidar_pc``) of the sensors to load at frame `iteration`."""
        selected = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is True or (isinstance(value, list) and iteration in value):
                selected.append(f.name)
        return selected

    @property
    def requests_any(self) -> bool:
        return any(getattr(self, f.name) not in (False, []) for f in fields(self))

    @classmethod
    def build_no_sensors(cls) -> "SensorConfig":
        return cls()

    @classmethod
    def build_all_sensors(cls, include: SensorSelection = True) -> "SensorConfig":
        """Every camera and the lidar, at `include` (True = every frame, or a list of frame indices)."""
        return cls(**{f.name: (list(include) if isinstance(include, (list, tuple)) else include) for f in fields(cls)})

    @classmethod
    def front_three_current(cls, num_history_frames: int = DEFAULT_NUM_HISTORY_FRAMES) -> "SensorConfig":
        """CAM_L0, CAM_F0, CAM_R0 at the current frame only (the DP-VLA input, spec §8)."""
        current = [num_history_frames - 1]
        return cls(cam_f0=list(current), cam_l0=list(current), cam_r0=list(current))


# ------------------------------------------------------------------------------------- frame dict -> typed


def global_ego_pose(frame_dict: dict[str, Any]) -> np.ndarray:
    """(x, y, heading) of the rear axle in the map frame, float64 (spec §3)."""
    translation = frame_dict["ego2global_translation"]
    heading = quaternion_to_yaw(frame_dict["ego2global_rotation"])
    return np.array([translation[0], translation[1], heading], dtype=np.float64)


def build_ego_status(frame_dict: dict[str, Any], dtype: np.dtype = np.float64) -> EgoStatus:
    """Global ego status of a frame (velocity / acceleration stay in the ego frame, as logged)."""
    dynamic = np.asarray(frame_dict["ego_dynamic_state"], dtype=np.float64)
    return EgoStatus(
        ego_pose=global_ego_pose(frame_dict).astype(dtype),
        ego_velocity=dynamic[:2].astype(dtype),
        ego_acceleration=dynamic[2:4].astype(dtype),
        driving_command=np.asarray(frame_dict["driving_command"]).copy(),
        in_global_frame=True,
    )


def build_annotations(frame_dict: dict[str, Any]) -> Optional[Annotations]:
    """Boxes of a frame in its ego frame; None when the log has no annotations (private test data)."""
    anns = frame_dict.get("anns")
    if anns is None:
        return None
    names = [str(n) for n in anns["gt_names"]]
    boxes = np.asarray(anns["gt_boxes"], dtype=np.float64).reshape(len(names), 7)
    velocity = np.asarray(anns["gt_velocity_3d"], dtype=np.float64).reshape(len(names), 3)
    return Annotations(
        boxes=boxes,
        names=names,
        velocity_3d=velocity,
        instance_tokens=[str(t) for t in anns["instance_tokens"]],
        track_tokens=[str(t) for t in anns["track_tokens"]],
    )


def _require_blobs(sensor_blobs_path: Optional[PathLike], token: str) -> Path:
    if sensor_blobs_path is None:
        raise DataError(f"frame {token}: sensors were requested but no sensor_blobs_path was given")
    return Path(sensor_blobs_path)


def build_cameras(
    frame_dict: dict[str, Any], sensor_blobs_path: Optional[PathLike], camera_fields: Sequence[str]
) -> Cameras:
    """Cameras of a frame: requested ones with decoded image and calibration, the others empty."""
    cameras = Cameras()
    if not camera_fields:
        return cameras
    root = _require_blobs(sensor_blobs_path, frame_dict["token"])
    for field_name in camera_fields:
        key = field_name.upper()
        entry = frame_dict["cams"].get(key)
        if not entry or "data_path" not in entry:
            raise DataError(f"frame {frame_dict['token']}: the sensor config asks for camera {key}, which this frame "
                            f"does not carry (cameras present: {sorted(frame_dict['cams']) or 'none'})")
        setattr(
            cameras,
            field_name,
            Camera(
                image=load_camera_image(root / entry["data_path"], token=frame_dict["token"], camera=key),
                sensor2lidar_rotation=np.asarray(entry["sensor2lidar_rotation"]),
                sensor2lidar_translation=np.asarray(entry["sensor2lidar_translation"]),
                intrinsics=np.asarray(entry["cam_intrinsic"]),
                distortion=np.asarray(entry["distortion"]),
                camera_path=str(entry["data_path"]),
            ),
        )
    return cameras


def build_lidar(frame_dict: dict[str, Any], sensor_blobs_path: Optional[PathLike], load: bool) -> Lidar:
    if not load:
        return Lidar()
    root = _require_blobs(sensor_blobs_path, frame_dict["token"])
    if frame_dict.get("lidar_path") is None:
        raise DataError(f"frame {frame_dict['token']}: lidar requested but the log has no lidar_path")
    return Lidar(lidar_pc=load_lidar_pcd(root / frame_dict["lidar_path"], token=frame_dict["token"]))


def _split_sensor_names(names: list[str]) -> tuple[list[str], bool]:
    return [n for n in names if n in CAMERA_FIELDS], LIDAR_FIELD in names


def sensor_file_paths(frame_dict: dict[str, Any], sensor_blobs_path: Optional[PathLike],
                      sensor_names: Sequence[str]) -> list[tuple[str, Optional[Path]]]:
    """(sensor, file path) of every sensor in `sensor_names` a frame needs; the path is None when the log has no
    entry for it. The files :func:`build_cameras` / :func:`build_lidar` would read, without reading them."""
    camera_fields, lidar = _split_sensor_names(list(sensor_names))
    if not camera_fields and not lidar:
        return []
    root = _require_blobs(sensor_blobs_path, frame_dict["token"])
    out: list[tuple[str, Optional[Path]]] = []
    for field_name in camera_fields:
        entry = frame_dict["cams"].get(field_name.upper())
        out.append((field_name.upper(), root / entry["data_path"] if entry and "data_path" in entry else None))
    if lidar:
        out.append(("lidar_pc", root / frame_dict["lidar_path"] if frame_dict.get("lidar_path") else None))
    return out


def build_frame(
    frame_dict: dict[str, Any], sensor_blobs_path: Optional[PathLike] = None, sensor_names: Sequence[str] = ()
) -> Frame:
    cameras, lidar = _split_sensor_names(list(sensor_names))
    return Frame(
        token=frame_dict["token"],
        timestamp=int(frame_dict["timestamp"]),
        roadblock_ids=[str(r) for r in frame_dict["roadblock_ids"]],
        traffic_lights=[(int(lane), bool(red)) for lane, red in frame_dict["traffic_lights"]],
        annotations=build_annotations(frame_dict),
        ego_status=build_ego_status(frame_dict),
        lidar=build_lidar(frame_dict, sensor_blobs_path, lidar),
        cameras=build_cameras(frame_dict, sensor_blobs_path, cameras),
    )


def future_trajectory(global_poses: np.ndarray, current_index: int, num_poses: int) -> Trajectory:
    """Poses ``current_index + 1 ... current_index + num_poses`` relative to the current pose (spec §5)."""
    global_poses = np.asarray(global_poses, dtype=np.float64)
    available = len(global_poses) - current_index - 1
    if not 1 <= num_poses <= available:
        raise ValueError(f"asked for {num_poses} future poses, the window has {available} future frames")
    local = absolute_to_relative_poses(
        global_poses[current_index], global_poses[current_index + 1 : current_index + 1 + num_poses]
    )
    return Trajectory(local, TrajectorySampling(num_poses=num_poses, interval_length=FRAME_INTERVAL_S))


def future_trajectory_from_frame_dicts(
    frame_dicts: Sequence[dict[str, Any]],
    num_history_frames: int = DEFAULT_NUM_HISTORY_FRAMES,
    num_poses: int = DEFAULT_SAMPLING.num_poses,
) -> Trajectory:
    """Target trajectory straight from frame dicts (float64), identical to `Scene.get_future_trajectory`."""
    _check_window(len(frame_dicts), num_history_frames)
    poses = np.stack([global_ego_pose(f) for f in frame_dicts])
    return future_trajectory(poses, num_history_frames - 1, num_poses)


def _check_window(num_frames: int, num_history_frames: int) -> None:
    if num_history_frames < 1:
        raise ValueError(f"num_history_frames must be >= 1, got {num_history_frames}")
    if num_frames < num_history_frames:
        raise ValueError(f"window has {num_frames} frames, fewer than num_history_frames={num_history_frames}")


def build_agent_input(
    frame_dicts: Sequence[dict[str, Any]],
    num_history_frames: int = DEFAULT_NUM_HISTORY_FRAMES,
    sensor_blobs_path: Optional[PathLike] = None,
    sensor_config: Optional[SensorConfig] = None,
    dtype: np.dtype = np.float32,
) -> AgentInput:
    """Agent input straight from frame dicts (reads only the history frames' sensors).

    Poses are computed in float64 relative to the current rear axle and then cast to `dtype` (the devkit's
    loader returns float32). Velocity, acceleration and command are each frame's own logged values.
    """
    _check_window(len(frame_dicts), num_history_frames)
    sensor_config = sensor_config or SensorConfig.build_no_sensors()
    history = frame_dicts[:num_history_frames]
    poses = np.stack([global_ego_pose(f) for f in history])
    local = absolute_to_relative_poses(poses[-1], poses)
    statuses, cameras, lidars = [], [], []
    for index, frame_dict in enumerate(history):
        dynamic = np.asarray(frame_dict["ego_dynamic_state"], dtype=np.float64)
        statuses.append(
            EgoStatus(
                ego_pose=local[index].astype(dtype),
                ego_velocity=dynamic[:2].astype(dtype),
                ego_acceleration=dynamic[2:4].astype(dtype),
                driving_command=np.asarray(frame_dict["driving_command"]).copy(),
                in_global_frame=False,
            )
        )
        camera_fields, lidar = _split_sensor_names(sensor_config.get_sensors_at_iteration(index))
        cameras.append(build_cameras(frame_dict, sensor_blobs_path, camera_fields))
        lidars.append(build_lidar(frame_dict, sensor_blobs_path, lidar))
    return AgentInput(ego_statuses=statuses, cameras=cameras, lidars=lidars)


# ----------------------------------------------------------------------------------------------- scene


@dataclass
class Scene:
    """A window of frames; `frames[num_history_frames - 1]` is the current frame."""

    scene_metadata: SceneMetadata
    frames: list[Frame]
    map_api: Any = None

    @classmethod
    def from_frame_dicts(
        cls,
        frame_dicts: Sequence[dict[str, Any]],
        num_history_frames: int = DEFAULT_NUM_HISTORY_FRAMES,
        sensor_blobs_path: Optional[PathLike] = None,
        sensor_config: Optional[SensorConfig] = None,
        map_api: Any = None,
    ) -> "Scene":
        """Build a scene from a window of OpenScene frame dicts (sensors loaded per `sensor_config`)."""
        _check_window(len(frame_dicts), num_history_frames)
        sensor_config = sensor_config or SensorConfig.build_no_sensors()
        current = frame_dicts[num_history_frames - 1]
        metadata = SceneMetadata(
            log_name=current["log_name"],
            scene_token=current["scene_token"],
            map_name=current["map_location"],
            initial_token=current["token"],
            num_history_frames=num_history_frames,
            num_future_frames=len(frame_dicts) - num_history_frames,
        )
        frames = [
            build_frame(f, sensor_blobs_path, sensor_config.get_sensors_at_iteration(i))
            for i, f in enumerate(frame_dicts)
        ]
        return cls(scene_metadata=metadata, frames=frames, map_api=map_api)

    # -------------------------------------------------------------------------------- convenience

    @property
    def token(self) -> str:
        """The NAVSIM scene token (= current frame token)."""
        return self.scene_metadata.initial_token

    @property
    def current_frame_index(self) -> int:
        return self.scene_metadata.num_history_frames - 1

    @property
    def current_frame(self) -> Frame:
        return self.frames[self.current_frame_index]

    def global_poses(self) -> np.ndarray:
        """(num_frames, 3) global rear-axle poses (x, y, heading)."""
        return np.stack([f.ego_status.ego_pose for f in self.frames]).astype(np.float64)

    # -------------------------------------------------------------------------------- trajectories

    def get_future_trajectory(self, num_poses: Optional[int] = None) -> Trajectory:
        """Next `num_poses` poses (default 8 = 4 s at 0.5 s) in the current rear-axle frame, float64."""
        num_poses = DEFAULT_SAMPLING.num_poses if num_poses is None else int(num_poses)
        try:
            return future_trajectory(self.global_poses(), self.current_frame_index, num_poses)
        except ValueError as exc:
            raise ValueError(f"scene {self.token}: {exc}") from exc

    def get_history_trajectory(self, num_poses: Optional[int] = None) -> Trajectory:
        """Last `num_poses` history poses including the current one (0, 0, 0), in the current rear-axle frame."""
        num_history = self.scene_metadata.num_history_frames
        num_poses = num_history if num_poses is None else int(num_poses)
        if not 1 <= num_poses <= num_history:
            raise ValueError(f"scene {self.token}: asked for {num_poses} history poses, window has {num_history}")
        current = self.current_frame_index
        poses = self.global_poses()
        local = absolute_to_relative_poses(poses[current], poses[num_history - num_poses : current + 1])
        return Trajectory(local, TrajectorySampling(num_poses=num_poses, interval_length=FRAME_INTERVAL_S))

    def get_agent_input(self) -> AgentInput:
        """History ego statuses relative to the current rear axle (float64) with the loaded sensors."""
        history = self.frames[: self.scene_metadata.num_history_frames]
        poses = np.stack([f.ego_status.ego_pose for f in history]).astype(np.float64)
        local = absolute_to_relative_poses(poses[-1], poses)
        statuses = [
            EgoStatus(
                ego_pose=local[i],
                ego_velocity=np.asarray(f.ego_status.ego_velocity, dtype=np.float64),
                ego_acceleration=np.asarray(f.ego_status.ego_acceleration, dtype=np.float64),
                driving_command=np.asarray(f.ego_status.driving_command).copy(),
                in_global_frame=False,
            )
            for i, f in enumerate(history)
        ]
        return AgentInput(
            ego_statuses=statuses, cameras=[f.cameras for f in history], lidars=[f.lidar for f in history]
        )
