"""Turn a 10 Hz simulation into OpenScene frame dicts at 2 Hz (every key of the real logs) and camera JPEGs."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_pipelines.camera_geometry import homogeneous, quaternion_to_rotation_matrix
from data_pipelines.geometry import yaw_to_quaternion
from data_pipelines.synthetic.agents import Snapshot
from data_pipelines.synthetic.layouts import LayoutInstance
from data_pipelines.synthetic.renderer import (
    LIDAR2EGO_QUATERNION, LIDAR2EGO_TRANSLATION, Box3D, CameraRenderer, blank_image, camera_rig, encode_jpeg,
    object_boxes, pinhole, rasterize_ground, signal_head_boxes,
)
from data_pipelines.synthetic.world import SignalCycle, driving_command, traffic_light_entries
from data_pipelines.types import CAMERA_NAMES

FRAME_INTERVAL_US = 500_000  # 2 Hz (navsim_data.md §3)
VEHICLE_NAME = "pacifica"
BLANK_IMAGE_NAME = "blank.jpg"
TEXTURE_CACHE_SIZE = 3  # ground textures kept per process


# Pickles must load under the devkit's NumPy 1.x too (navsim_data.md §9): NumPy >= 2 names its array
# reconstructors `numpy._core.*`, NumPy 1.x only knows `numpy.core.*` (which NumPy 2 still resolves). Protocol 3
# writes module names as text GLOBAL opcodes, so they can be renamed without touching length prefixes or frames.
PICKLE_PROTOCOL = 3
NUMPY2_GLOBALS = {b"cnumpy._core.multiarray\n": b"cnumpy.core.multiarray\n",
                  b"cnumpy._core.numeric\n": b"cnumpy.core.numeric\n"}


def dump_pickle(obj: object, path: Path) -> None:
    """Pickle `obj` to `path` loadable by NumPy 1.x and 2.x (no `numpy._core` references)."""
    data = pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    for new_name, old_name in NUMPY2_GLOBALS.items():
        data = data.replace(new_name, old_name)
    if b"numpy._core" in data:
        raise ValueError(f"{path}: pickle still references numpy._core")
    path.write_bytes(data)


def make_token(*parts: object, length: int = 16) -> str:
    """Deterministic hex token from its parts (no clock, no process state)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:length]


@dataclass
class EgoFrameState:
    """Ego rear-axle state at one logged instant (global pose; ego-frame dynamics)."""

    x: float
    y: float
    heading: float
    vx: float
    vy: float
    ax: float
    ay: float
    yaw_rate: float


def ego_frame_state(row: np.ndarray) -> EgoFrameState:
    x, y, h, v, a, yaw_rate, lat_acc = (float(v) for v in row[:7])
    return EgoFrameState(x, y, h, v, 0.0, a, lat_acc, yaw_rate)


def annotations(ego: EgoFrameState, snap: Snapshot, radius: float, frame_token: str) -> dict:
    """`anns` of one frame: boxes, velocities in the ego frame (spec §3), names, instance and track tokens."""
    c, s = np.cos(ego.heading), np.sin(ego.heading)
    if len(snap):
        rel = snap.xy - np.array([ego.x, ego.y])
        keep = np.nonzero(np.hypot(rel[:, 0], rel[:, 1]) <= radius)[0]
    else:
        keep = np.zeros(0, dtype=np.int64)
    boxes = np.zeros((len(keep), 7), dtype=np.float64)
    velocity = np.zeros((len(keep), 3), dtype=np.float64)
    for row, i in enumerate(keep):
        dx, dy = snap.xy[i, 0] - ego.x, snap.xy[i, 1] - ego.y
        length, width, height = snap.size[i]
        boxes[row] = [c * dx + s * dy, -s * dx + c * dy, height / 2.0, length, width, height,
                      snap.heading[i] - ego.heading]
        vx, vy = snap.velocity[i]
        velocity[row, :2] = [c * vx + s * vy, -s * vx + c * vy]
    tracks = [snap.tracks[i] for i in keep]
    return {
        "gt_boxes": boxes,
        "gt_names": np.array([snap.kinds[i] for i in keep], dtype="<U16"),
        "gt_velocity_3d": velocity,
        "instance_tokens": [make_token("instance", frame_token, t) for t in tracks],
        "track_tokens": tracks,
    }


def frame_dict(*, token: str, frame_idx: int, timestamp: int, log_name: str, log_token: str, scene_token: str,
               location: str, roadblock_ids: list[str], ego: EgoFrameState, traffic_lights: list[tuple[int, bool]],
               command: np.ndarray, cams: dict, prev_token: str | None, next_token: str | None, anns: dict) -> dict:
    """One OpenScene frame dict, keys in the order of the real logs."""
    q = yaw_to_quaternion(ego.heading)
    translation = np.array([ego.x, ego.y, 0.0])
    ego2global = homogeneous(quaternion_to_rotation_matrix(q), translation)
    lidar2ego = homogeneous(quaternion_to_rotation_matrix(LIDAR2EGO_QUATERNION), LIDAR2EGO_TRANSLATION)
    can_bus = np.zeros(18, dtype=np.float64)
    can_bus[:3] = translation
    can_bus[3:7] = q
    can_bus[7:9] = [ego.ax, ego.ay]
    can_bus[10:12] = [ego.vx, ego.vy]
    can_bus[15] = ego.yaw_rate
    return {
        "token": token,
        "frame_idx": int(frame_idx),
        "timestamp": int(timestamp),
        "log_name": log_name,
        "log_token": log_token,
        "scene_name": f"{log_name}-scene",
        "scene_token": scene_token,
        "map_location": location,
        "roadblock_ids": list(roadblock_ids),
        "vehicle_name": VEHICLE_NAME,
        "can_bus": can_bus,
        "lidar_path": f"{log_name}/MergedPointCloud/{token}.pcd",
        "lidar2ego_translation": LIDAR2EGO_TRANSLATION.copy(),
        "lidar2ego_rotation": LIDAR2EGO_QUATERNION.copy(),
        "ego2global_translation": translation,
        "ego2global_rotation": q,
        "ego_dynamic_state": [float(ego.vx), float(ego.vy), float(ego.ax), float(ego.ay)],
        "traffic_lights": [(int(i), bool(r)) for i, r in traffic_lights],
        "driving_command": np.asarray(command, dtype=np.int64),
        "cams": cams,
        "sample_prev": prev_token,
        "sample_next": next_token,
        "ego2global": ego2global,
        "lidar2ego": lidar2ego,
        "lidar2global": ego2global @ lidar2ego,
        "anns": anns,
        "occ_gt_final_path": None,
        "flow_gt_final_path": None,
    }


class FrameRenderer:
    """Renders and writes the camera images of frames of one layout instance."""

    def __init__(self, inst: LayoutInstance, width: int, height: int, quality: int, rendered: tuple[str, ...],
                 texture_resolution: float, texture_cache: dict):
        key = (inst.location, inst.index, texture_resolution)
        if key not in texture_cache:
            while len(texture_cache) >= TEXTURE_CACHE_SIZE:
                texture_cache.pop(next(iter(texture_cache)))
            texture_cache[key] = rasterize_ground(inst, texture_resolution)
        texture = texture_cache[key]
        self.inst = inst
        self.rig = camera_rig(width, height)
        self.width, self.height, self.quality = width, height, quality
        self.rendered = tuple(c for c in CAMERA_NAMES if c in rendered)
        self.renderers = {c: CameraRenderer(pinhole(self.rig[c], width, height), texture, width, height)
                          for c in self.rendered}
        self._blank = encode_jpeg(blank_image(width, height), quality)

    def boxes(self, ego: EgoFrameState, snap: Snapshot, signal_states: dict[int, str]) -> list[Box3D]:
        anns_pose = np.array([ego.x, ego.y, ego.heading])
        out = []
        c, s = np.cos(ego.heading), np.sin(ego.heading)
        for i in range(len(snap)):
            dx, dy = snap.xy[i, 0] - ego.x, snap.xy[i, 1] - ego.y
            x, y = c * dx + s * dy, -s * dx + c * dy
            if x * x + y * y > 130.0**2:
                continue
            seed = int(snap.tracks[i][:8], 16) if _is_hex(snap.tracks[i][:8]) else 0
            out += object_boxes(snap.kinds[i], np.array([x, y]), float(snap.heading[i] - ego.heading), snap.size[i], seed)
        out += signal_head_boxes(self.inst, signal_states, anns_pose)
        return out

    def write_blank(self, sensor_root: Path, log_name: str) -> dict:
        """`cams` dict whose eight cameras all point at the log's shared blank JPEG (unrendered frames)."""
        cams = {}
        for name in CAMERA_NAMES:
            rel = f"{log_name}/{name}/{BLANK_IMAGE_NAME}"
            (sensor_root / log_name / name).mkdir(parents=True, exist_ok=True)
            if not (sensor_root / rel).exists():
                (sensor_root / rel).write_bytes(self._blank)
            cams[name] = self._cam_entry(name, rel)
        return cams

    def _cam_entry(self, name: str, rel: str) -> dict:
        entry = self.rig[name]
        return {
            "data_path": rel,
            "sensor2lidar_rotation": entry["sensor2lidar_rotation"].copy(),
            "sensor2lidar_translation": entry["sensor2lidar_translation"].copy(),
            "cam_intrinsic": entry["cam_intrinsic"].copy(),
            "distortion": entry["distortion"].copy(),
        }

    def write(self, sensor_root: Path, log_name: str, image_token: str, ego: EgoFrameState, snap: Snapshot,
              signal_states: dict[int, str]) -> dict:
        """Render the rendered cameras, point the others at a shared blank JPEG; returns the `cams` dict."""
        boxes = self.boxes(ego, snap, signal_states)
        cams = {}
        for name in CAMERA_NAMES:
            folder = sensor_root / log_name / name
            folder.mkdir(parents=True, exist_ok=True)
            if name in self.renderers:
                rel = f"{log_name}/{name}/{make_token('image', image_token, name)}.jpg"
                img = self.renderers[name].render(np.array([ego.x, ego.y, ego.heading]), boxes)
                (sensor_root / rel).write_bytes(encode_jpeg(img, self.quality))
            else:
                rel = f"{log_name}/{name}/{BLANK_IMAGE_NAME}"
                if not (sensor_root / rel).exists():
                    (sensor_root / rel).write_bytes(self._blank)
            cams[name] = self._cam_entry(name, rel)
        return cams


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
        return True
    except ValueError:
        return False


def signal_states(cycle: SignalCycle, t: float) -> dict[int, str]:
    return {g: cycle.state(g, t) for g in range(cycle.num_groups)}


def frame_command(inst: LayoutInstance, route: list[int], ego: EgoFrameState) -> np.ndarray:
    return driving_command(inst, route, np.array([ego.x, ego.y]), ego.heading)


def lights(inst: LayoutInstance, cycle: SignalCycle, t: float) -> list[tuple[int, bool]]:
    return traffic_light_entries(inst, cycle, t)


__all__ = ["make_token", "frame_dict", "annotations", "FrameRenderer", "ego_frame_state", "EgoFrameState",
           "signal_states", "frame_command", "lights", "FRAME_INTERVAL_US"]
