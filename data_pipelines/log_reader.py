"""Reading OpenScene logs: log pickles (a time-ordered list of frame dicts) and their sensor blobs.

Keys, units and frames are those of spec navsim_data.md §3. Frame dicts are returned as stored (no copies,
no conversions) after validation of every key the data layer and the scorer read.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from data_pipelines.errors import LogFileError, SensorFileError
from data_pipelines.safe_pickle import LOG_PICKLE, UnsafePickleError, restricted_load
from data_pipelines.types import CAMERA_NAMES

PathLike = Union[str, Path]

LOG_SUFFIX = ".pkl"

# Keys every frame must carry, with the length of array-valued entries (None = any length). Spec §3 marks
# these "read by navsim"; `anns` is optional (absent in private test data) and validated when present.
REQUIRED_FRAME_KEYS: dict[str, Optional[int]] = {
    "token": None,
    "timestamp": None,
    "log_name": None,
    "scene_token": None,
    "map_location": None,
    "roadblock_ids": None,
    "lidar_path": None,
    "ego2global_translation": 3,
    "ego2global_rotation": 4,  # quaternion (w, x, y, z)
    "ego_dynamic_state": 4,  # vx, vy, ax, ay in the ego frame
    "traffic_lights": None,
    "driving_command": 4,  # one-hot (left, forward, right, unknown)
    "cams": None,
}
FINITE_KEYS = ("ego2global_translation", "ego2global_rotation", "ego_dynamic_state", "driving_command")
"""Ego pose, motion and command: NaN or inf here would surface later as geometry or training errors without a
token."""
STRING_KEYS = ("token", "log_name", "scene_token", "map_location")
CAMERA_KEYS = ("data_path", "sensor2lidar_rotation", "sensor2lidar_translation", "cam_intrinsic", "distortion")
CAMERA_CALIBRATION_KEYS = CAMERA_KEYS[1:]
"""Numeric camera entries; each must be finite when given (None = calibration not known)."""
ANNOTATION_KEYS = ("gt_boxes", "gt_names", "gt_velocity_3d", "instance_tokens", "track_tokens")
BOX_DIM = 7  # x, y, z, length, width, height, yaw
VELOCITY_DIM = 3

# Exceptions unpickling a damaged or foreign file can raise.
_UNPICKLING_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    AttributeError,
    ImportError,
    IndexError,
    TypeError,
    ValueError,
    MemoryError,
)


def find_log_files(root: PathLike) -> list[Path]:
    """All ``*.pkl`` log files below `root` (recursive), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise LogFileError(root, "log folder does not exist")
    return sorted(p for p in root.rglob(f"*{LOG_SUFFIX}") if p.is_file())


def log_name_of(path: PathLike) -> str:
    """Log name = file stem (the devkit matches split `log_names` against it)."""
    return Path(path).name[: -len(LOG_SUFFIX)] if str(path).endswith(LOG_SUFFIX) else Path(path).stem


def load_log(path: PathLike, validate: bool = True) -> list[dict[str, Any]]:
    """Unpickle one log and check every frame; raises :class:`LogFileError` naming file, frame and key.

    The log is read with the restricted unpickler (numbers, strings, numpy arrays only): a log that references
    any other global is refused before anything in it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise LogFileError(path, "file does not exist")
    try:
        frames = restricted_load(path, LOG_PICKLE)
    except UnsafePickleError as exc:
        raise LogFileError(path, exc.reason) from exc
    except (OSError, *_UNPICKLING_ERRORS) as exc:
        raise LogFileError(path, f"cannot unpickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(frames, list):
        raise LogFileError(path, f"expected a list of frame dicts, got {type(frames).__name__}")
    if validate:
        validate_frames(frames, path)
    return frames


def validate_frames(frames: list, path: PathLike) -> None:
    """Check that `frames` is a non-empty list of well-formed OpenScene frame dicts."""
    if len(frames) == 0:
        raise LogFileError(path, "log contains no frames")
    for index, frame in enumerate(frames):
        validate_frame(frame, path, index)


def _length(value: Any) -> Optional[int]:
    try:
        return len(value)
    except TypeError:
        return None


def _is_finite_number_array(value: Any) -> bool:
    array = np.asarray(value)
    return array.dtype.kind in "biuf" and bool(np.all(np.isfinite(array)))


def validate_frame(frame: Any, path: PathLike, index: int, cameras: Sequence[str] = CAMERA_NAMES) -> None:
    """Validate one frame dict (keys, types, array lengths, finite numbers, the `cameras` it must carry,
    optional annotations). Stage-2 scenes (:mod:`data_pipelines.two_stage`) are validated by this function too."""
    if not isinstance(frame, Mapping):
        raise LogFileError(path, f"frame is a {type(frame).__name__}, expected a dict", frame_index=index)
    for key, size in REQUIRED_FRAME_KEYS.items():
        if key not in frame:
            raise LogFileError(path, "required key is missing", key=key, frame_index=index)
        if size is not None:
            value = frame[key]
            if _length(value) != size or np.asarray(value).dtype.kind not in "biuf":
                raise LogFileError(
                    path, f"expected {size} numbers, got {value!r}", key=key, frame_index=index
                )
    for key in STRING_KEYS:
        if not isinstance(frame[key], str):
            raise LogFileError(path, f"expected a string, got {type(frame[key]).__name__}", key=key, frame_index=index)
    for key in FINITE_KEYS:
        if not np.all(np.isfinite(np.asarray(frame[key], dtype=np.float64))):
            raise LogFileError(
                path, f"contains NaN or inf: {frame[key]!r} (frame token {frame['token']})", key=key, frame_index=index
            )
    if not np.any(np.asarray(frame["ego2global_rotation"], dtype=np.float64)):
        raise LogFileError(path, f"quaternion is all zeros (frame token {frame['token']})",
                           key="ego2global_rotation", frame_index=index)
    if isinstance(frame["timestamp"], bool) or not isinstance(frame["timestamp"], (int, np.integer)):
        raise LogFileError(path, "expected an integer timestamp in microseconds", key="timestamp", frame_index=index)
    for key in ("roadblock_ids", "traffic_lights"):
        if isinstance(frame[key], (str, bytes)) or _length(frame[key]) is None:
            raise LogFileError(path, "expected a list", key=key, frame_index=index)
    for entry in frame["traffic_lights"]:
        if _length(entry) != 2 or not _is_integral(entry[0]):
            raise LogFileError(path, f"expected (lane connector id, is_red) pairs with an integer id, got {entry!r} "
                               f"(frame token {frame['token']})", key="traffic_lights", frame_index=index)
    _validate_cameras(frame["cams"], path, index, cameras)
    if frame.get("anns") is not None:
        _validate_annotations(frame["anns"], path, index, frame["token"])


def _is_integral(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isfinite(value)) and float(value).is_integer()


def _validate_cameras(cams: Any, path: PathLike, index: int, cameras: Sequence[str]) -> None:
    if not isinstance(cams, Mapping):
        raise LogFileError(path, "expected a dict of cameras", key="cams", frame_index=index)
    for name in cameras:
        if name not in cams:
            raise LogFileError(path, "camera is missing", key=f"cams.{name}", frame_index=index)
        camera = cams[name]
        if not isinstance(camera, Mapping):
            raise LogFileError(path, "expected a dict", key=f"cams.{name}", frame_index=index)
        for key in CAMERA_KEYS:
            if key not in camera:
                raise LogFileError(path, "required key is missing", key=f"cams.{name}.{key}", frame_index=index)
        for key in CAMERA_CALIBRATION_KEYS:
            if camera[key] is not None and not _is_finite_number_array(camera[key]):
                raise LogFileError(path, f"contains NaN or inf, or is not numeric: {camera[key]!r}",
                                   key=f"cams.{name}.{key}", frame_index=index)


def _validate_annotations(anns: Any, path: PathLike, index: int, token: str) -> None:
    if not isinstance(anns, Mapping):
        raise LogFileError(path, "expected a dict", key="anns", frame_index=index)
    for key in ANNOTATION_KEYS:
        if key not in anns:
            raise LogFileError(path, "required key is missing", key=f"anns.{key}", frame_index=index)
    boxes = np.asarray(anns["gt_boxes"], dtype=np.float64)
    num = len(anns["gt_names"])
    if boxes.size == 0 and num == 0:
        return
    if boxes.ndim != 2 or boxes.shape != (num, BOX_DIM):
        raise LogFileError(
            path, f"expected shape ({num}, {BOX_DIM}), got {boxes.shape}", key="anns.gt_boxes", frame_index=index
        )
    velocity = np.asarray(anns["gt_velocity_3d"], dtype=np.float64)
    if velocity.shape != (num, VELOCITY_DIM):
        raise LogFileError(
            path, f"expected shape ({num}, {VELOCITY_DIM}), got {velocity.shape}", key="anns.gt_velocity_3d",
            frame_index=index,
        )
    for key in ("instance_tokens", "track_tokens"):
        if _length(anns[key]) != num:
            raise LogFileError(path, f"expected {num} entries", key=f"anns.{key}", frame_index=index)
    for key, (what, rows) in {"gt_boxes": ("box", boxes), "gt_velocity_3d": ("velocity", velocity)}.items():
        bad_rows = np.flatnonzero(~np.all(np.isfinite(rows), axis=1))
        if len(bad_rows):
            row = int(bad_rows[0])
            raise LogFileError(
                path, f"{what} {row} (track token {anns['track_tokens'][row]!r}) contains NaN or inf: "
                f"{rows[row].tolist()} ({len(bad_rows)} such rows; frame token {token})", key=f"anns.{key}",
                frame_index=index,
            )


def load_logs(paths: Sequence[PathLike]) -> dict[str, list[dict[str, Any]]]:
    """Load several logs keyed by log name (file stem)."""
    return {log_name_of(p): load_log(p) for p in paths}


# ----------------------------------------------------------------------------------------------- sensors


def load_camera_image(path: PathLike, *, token: Optional[str] = None, camera: Optional[str] = None) -> np.ndarray:
    """Decode a camera JPEG to uint8 (H, W, 3) RGB, as the devkit does (`np.array(Image.open(path))`)."""
    path = Path(path)
    if not path.is_file():
        raise SensorFileError(path, "camera image does not exist", token=token, sensor=camera)
    try:
        with Image.open(path) as image:
            if image.mode != "RGB":
                image = image.convert("RGB")
            array = np.array(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SensorFileError(path, f"cannot decode image ({exc})", token=token, sensor=camera) from exc
    return array


_PCD_TYPES = {("F", 4): np.float32, ("F", 8): np.float64, ("U", 1): np.uint8, ("U", 2): np.uint16,
              ("U", 4): np.uint32, ("U", 8): np.uint64, ("I", 1): np.int8, ("I", 2): np.int16,
              ("I", 4): np.int32, ("I", 8): np.int64}


def load_lidar_pcd(path: PathLike, *, token: Optional[str] = None) -> np.ndarray:
    """Read a PCD point cloud (ascii or binary) as float32 (num_fields, n); OpenScene: x, y, z, intensity, ring,
    lidar_id (spec §3, `Lidar.lidar_pc`)."""
    path = Path(path)
    if not path.is_file():
        raise SensorFileError(path, "lidar point cloud does not exist", token=token, sensor="lidar_pc")
    raw = path.read_bytes()
    header: dict[str, list[str]] = {}
    offset = 0
    try:
        while True:
            end = raw.index(b"\n", offset)
            line = raw[offset:end].decode("ascii").strip()
            offset = end + 1
            if not line or line.startswith("#"):
                continue
            key, *values = line.split()
            header[key.upper()] = values
            if key.upper() == "DATA":
                break
        fields = header["FIELDS"]
        sizes = [int(v) for v in header["SIZE"]]
        types = header["TYPE"]
        counts = [int(v) for v in header.get("COUNT", ["1"] * len(fields))]
        num_points = int(header["POINTS"][0])
        data_format = header["DATA"][0].lower()
        if any(c != 1 for c in counts):
            raise ValueError("fields with COUNT > 1 are not supported")
        if data_format == "ascii":
            text = raw[offset:].decode("ascii").split()
            points = np.asarray(text, dtype=np.float64).reshape(num_points, len(fields))
            return points.T.astype(np.float32)
        if data_format != "binary":
            raise ValueError(f"unsupported PCD DATA format {data_format!r}")
        dtype = np.dtype([(name, _PCD_TYPES[(t.upper(), s)]) for name, t, s in zip(fields, types, sizes)])
        records = np.frombuffer(raw, dtype=dtype, count=num_points, offset=offset)
    except (ValueError, KeyError, IndexError, UnicodeDecodeError) as exc:
        raise SensorFileError(path, f"malformed PCD file ({exc})", token=token, sensor="lidar_pc") from exc
    return np.stack([records[name].astype(np.float32) for name in fields])
