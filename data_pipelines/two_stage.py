"""Two-stage (NAVSIM v2 pseudo closed loop) stage-2 scenes in the devkit's on-disk format, both ways.

Layout of a two-stage folder (``$OPENSCENE_DATA_ROOT/<split>``, e.g. ``navhard_two_stage/``)::

    <root>/synthetic_scene_pickles/<token>.pkl      one stage-2 scene, as the devkit's ``Scene.save_to_disk`` writes it
    <root>/sensor_blobs/<log_name>/CAM_*/<id>.jpg   its camera images (``data_path`` is relative to this folder)
    <root>/synthetic_scenes_attributes.csv          per-scene attributes (not read by the devkit; optional here)

A scene pickle is ``{"scene_metadata": {...}, "frames": [...], "extended_traffic_light_data": ...,
"extended_detections_tracks": ...}`` (navsim@main ``navsim/common/dataclasses.py``):

* ``scene_metadata``: exactly the devkit's ``SceneMetadata`` fields (:data:`METADATA_FIELDS`). For a stage-2 scene
  ``corresponding_original_scene`` is the token of the logged frame at the same time (the last frame of its
  stage-1 window), which the devkit's loader matches against the stage-1 windows it loaded.
* each frame: ``token``, ``timestamp``, ``roadblock_ids``, ``traffic_lights``, ``annotations`` (the
  ``Annotations`` fields: boxes, names, velocity_3d, instance_tokens, track_tokens), ``ego_status`` (the
  ``EgoStatus`` fields, global frame), ``lidar_path`` (None without a point cloud) and ``camera_dict``
  ({``cam_f0`` ...: {data_path, sensor2lidar_rotation, sensor2lidar_translation, cam_intrinsic, distortion}},
  ``{}`` for a camera the scene does not carry).

Which stage-1 scene a stage-2 scene continues is not in the pickle: the devkit's two-stage split YAML lists it
(``reactive_all_mapping``, see :mod:`data_pipelines.scene_filter`). Without a split, the project's attributes CSV
(column ``first_stage_token``) provides it. The reader turns every stage-2 frame back into an OpenScene frame dict,
so ``Scene.from_frame_dicts`` and ``build_agent_input`` read stage-1 and stage-2 scenes alike.
"""

from __future__ import annotations

import csv
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from data_pipelines.errors import DataError, LogFileError, PathLike, UnknownTokenError
from data_pipelines.geometry import quaternion_to_yaw, yaw_to_quaternion
from data_pipelines.log_reader import validate_frame
from data_pipelines.safe_pickle import LOG_PICKLE, UnsafePickleError, restricted_load
from data_pipelines.scene_filter import Split, TwoStageLink
from data_pipelines.types import CAMERA_NAMES

ATTRIBUTES_CSV = "synthetic_scenes_attributes.csv"
SCENE_PICKLE_DIR = "synthetic_scene_pickles"
SENSOR_DIR = "sensor_blobs"
METADATA_FIELDS = ("log_name", "scene_token", "map_name", "initial_token", "num_history_frames", "num_future_frames",
                   "corresponding_original_scene", "corresponding_original_initial_token")
"""The devkit's ``SceneMetadata`` fields; its loader calls ``SceneMetadata(**scene_metadata)``, so no others."""
REQUIRED_METADATA_FIELDS = METADATA_FIELDS[:6]
FRAME_FIELDS = ("token", "timestamp", "roadblock_ids", "traffic_lights", "annotations", "ego_status", "lidar_path",
                "camera_dict")
SCENE_FIELDS = ("scene_metadata", "frames", "extended_traffic_light_data", "extended_detections_tracks")
ANNOTATION_KEYS = {"boxes": "gt_boxes", "names": "gt_names", "velocity_3d": "gt_velocity_3d",
                   "instance_tokens": "instance_tokens", "track_tokens": "track_tokens"}
"""devkit ``Annotations`` field -> OpenScene ``anns`` key."""
CAMERA_ENTRY_KEYS = ("data_path", "sensor2lidar_rotation", "sensor2lidar_translation", "cam_intrinsic", "distortion")
DEVKIT_FIELDS = {"ego2global_translation": "ego_status.ego_pose", "ego2global_rotation": "ego_status.ego_pose",
                 "ego_dynamic_state": "ego_status.ego_velocity/ego_acceleration",
                 "driving_command": "ego_status.driving_command", "log_name": "scene_metadata.log_name",
                 "scene_token": "scene_metadata.scene_token", "map_location": "scene_metadata.map_name"}
"""OpenScene frame key -> the stage-2 pickle field it is read from (named in validation errors)."""
CSV_COLUMNS = ("synthetic_scene_token", "first_stage_token", "log_name", "map_name", "lateral_offset_m",
               "longitudinal_offset_m", "heading_offset_rad", "initial_x", "initial_y", "initial_heading")
"""The project's attributes CSV (the devkit does not read this file; the official CSV's columns are not used)."""
OFFSET_COLUMNS = ("lateral_offset_m", "longitudinal_offset_m", "heading_offset_rad")
FRAME_CACHE_SIZE = 64  # stage-2 scenes whose frames stay decoded


class TwoStageDataError(DataError):
    """The two-stage folder, a scene pickle, its metadata or the stage-1 links are missing or malformed."""

    def __init__(self, path: PathLike, reason: str, *, token: str | None = None, field: str | None = None):
        self.path = Path(path)
        self.token = token
        self.field = field
        where = f"two-stage data {self.path}" + (f" (scene {token})" if token else "")
        where += f", field {field!r}" if field else ""
        super().__init__(f"{where}: {reason}")


# ------------------------------------------------------------------------ OpenScene frames <-> devkit frames


def _camera_field(key: str) -> str:
    return key.lower()


def devkit_frame(frame: dict[str, Any], cameras: Sequence[str], lidar: bool) -> dict[str, Any]:
    """One OpenScene frame dict as the devkit's ``save_to_disk`` stores a frame (global ego status).

    ``cameras`` (OpenScene keys) get calibration entries, every other camera ``{}``; ``lidar_path`` is kept only
    when ``lidar`` is true (the devkit writes None for a frame without a loaded point cloud).
    """
    translation = np.asarray(frame["ego2global_translation"], dtype=np.float64)
    dynamic = np.asarray(frame["ego_dynamic_state"], dtype=np.float64)
    anns = frame.get("anns")
    if anns is None:
        raise DataError(f"frame {frame['token']}: stage-2 scenes need annotations ('anns')")
    camera_dict: dict[str, dict] = {}
    for key in CAMERA_NAMES:
        entry = frame["cams"].get(key) if key in cameras else None
        camera_dict[_camera_field(key)] = {k: entry[k] for k in CAMERA_ENTRY_KEYS} if entry is not None else {}
    return {
        "token": frame["token"],
        "timestamp": int(frame["timestamp"]),
        "roadblock_ids": list(frame["roadblock_ids"]),
        "traffic_lights": list(frame["traffic_lights"]),
        "annotations": {name: anns[key] for name, key in ANNOTATION_KEYS.items()},
        "ego_status": {
            "ego_pose": np.array([translation[0], translation[1], quaternion_to_yaw(frame["ego2global_rotation"])],
                                 dtype=np.float64),
            "ego_velocity": dynamic[:2].astype(np.float32),
            "ego_acceleration": dynamic[2:4].astype(np.float32),
            "driving_command": np.asarray(frame["driving_command"]),
            "in_global_frame": True,
        },
        "lidar_path": frame.get("lidar_path") if lidar else None,
        "camera_dict": camera_dict,
    }


def scene_pickle_dict(metadata: dict[str, Any], frames: Sequence[dict[str, Any]], cameras_per_frame: Sequence[Sequence[str]],
                      lidar_per_frame: Sequence[bool]) -> dict[str, Any]:
    """The dict the devkit's ``Scene.save_to_disk`` pickles, from OpenScene frame dicts and devkit metadata."""
    unknown = set(metadata) - set(METADATA_FIELDS)
    missing = [k for k in REQUIRED_METADATA_FIELDS if k not in metadata]
    if unknown or missing:
        raise DataError(f"stage-2 scene metadata: unknown fields {sorted(unknown)}, missing {missing}")
    return {
        "scene_metadata": {k: metadata.get(k) for k in METADATA_FIELDS},
        "frames": [devkit_frame(f, c, l) for f, c, l in zip(frames, cameras_per_frame, lidar_per_frame)],
        "extended_traffic_light_data": None,  # the scene's own future frames cover the scoring horizon
        "extended_detections_tracks": None,
    }


def openscene_frame(frame: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """A devkit stage-2 frame as an OpenScene frame dict (the keys the project's scene builders read)."""
    status = frame["ego_status"]
    pose = np.asarray(status["ego_pose"], dtype=np.float64)
    annotations = frame["annotations"]
    cams = {}
    for name, entry in frame["camera_dict"].items():
        if entry:  # {} = a camera this scene does not carry
            cams[name.upper()] = dict(entry)
    return {
        "token": frame["token"],
        "timestamp": int(frame["timestamp"]),
        "log_name": metadata["log_name"],
        "scene_token": metadata["scene_token"],
        "map_location": metadata["map_name"],
        "roadblock_ids": list(frame["roadblock_ids"]),
        "traffic_lights": list(frame["traffic_lights"]),
        "ego2global_translation": np.array([pose[0], pose[1], 0.0]),
        "ego2global_rotation": yaw_to_quaternion(float(pose[2])),
        "ego_dynamic_state": [*np.asarray(status["ego_velocity"], dtype=np.float64)[:2],
                              *np.asarray(status["ego_acceleration"], dtype=np.float64)[:2]],
        "driving_command": np.asarray(status["driving_command"]),
        "lidar_path": frame.get("lidar_path"),
        "cams": cams,
        "anns": None if annotations is None else {key: annotations[name] for name, key in ANNOTATION_KEYS.items()},
    }


def _devkit_field(key: str) -> str:
    """The stage-2 pickle field an OpenScene frame key (as named by ``validate_frame``) comes from."""
    head, _, rest = key.partition(".")
    if head == "anns" and rest:
        return "annotations." + {v: k for k, v in ANNOTATION_KEYS.items()}.get(rest, rest)
    if head == "cams" and rest:
        camera, _, entry = rest.partition(".")
        return f"camera_dict.{_camera_field(camera)}" + (f".{entry}" if entry else "")
    return DEVKIT_FIELDS.get(key, key)


def scene_frames(data: dict[str, Any], path: PathLike, token: Optional[str] = None) -> list[dict[str, Any]]:
    """The OpenScene frame dicts of a structurally valid scene pickle, each checked by the log reader's
    ``validate_frame`` (finite poses, velocities, boxes, calibration; the cameras it carries): an error names
    the file, scene, frame and the pickle's field."""
    metadata = data["scene_metadata"]
    frames = []
    for index, frame in enumerate(data["frames"]):
        try:
            pose = frame["ego_status"]["ego_pose"]
            if np.shape(pose) != (3,):
                raise ValueError(f"ego_status.ego_pose must be (x, y, heading), got {pose!r}")
            converted = openscene_frame(frame, metadata)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise TwoStageDataError(path, f"frame {index} cannot be read ({type(err).__name__}: {err})", token=token,
                                    field="frames") from err
        try:
            validate_frame(converted, path, index, cameras=[c for c in CAMERA_NAMES if c in converted["cams"]])
        except LogFileError as err:
            raise TwoStageDataError(path, f"frame {index}: {err.reason}", token=token,
                                    field=_devkit_field(err.key) if err.key else None) from err
        frames.append(converted)
    return frames


def validate_scene_pickle(data: Any, path: PathLike, token: Optional[str] = None) -> None:
    """Raise TwoStageDataError naming the file, token and field when `data` is not a devkit scene pickle."""
    if not isinstance(data, dict):
        raise TwoStageDataError(path, f"expected a dict, got {type(data).__name__}", token=token)
    for key in ("scene_metadata", "frames"):
        if key not in data:
            raise TwoStageDataError(path, "missing key", token=token, field=key)
    metadata = data["scene_metadata"]
    if not isinstance(metadata, dict):
        raise TwoStageDataError(path, "expected a dict", token=token, field="scene_metadata")
    unknown = sorted(set(metadata) - set(METADATA_FIELDS))
    if unknown:
        raise TwoStageDataError(path, "not a field of the devkit's SceneMetadata", token=token,
                                field=f"scene_metadata.{unknown[0]}")
    for key in REQUIRED_METADATA_FIELDS:
        if key not in metadata:
            raise TwoStageDataError(path, "missing", token=token, field=f"scene_metadata.{key}")
    frames = data["frames"]
    if not isinstance(frames, list) or len(frames) < int(metadata["num_history_frames"]):
        raise TwoStageDataError(path, f"expected at least num_history_frames={metadata['num_history_frames']} frames",
                                token=token, field="frames")
    for index, frame in enumerate(frames):
        missing = [k for k in FRAME_FIELDS if not isinstance(frame, dict) or k not in frame]
        if missing:
            raise TwoStageDataError(path, f"frame {index} lacks the key", token=token, field=f"frames.{missing[0]}")


def read_scene_pickle(path: PathLike, token: Optional[str] = None) -> dict[str, Any]:
    """Load and validate one devkit scene pickle (its structure and every frame's values)."""
    return read_scene(path, token)[0]


def read_scene(path: PathLike, token: Optional[str] = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(pickle dict, its frames as validated OpenScene frame dicts) of one devkit scene pickle."""
    path = Path(path)
    if not path.is_file():
        raise TwoStageDataError(path, "scene pickle is missing", token=token)
    try:
        data = restricted_load(path, LOG_PICKLE)  # numpy arrays and plain containers only
    except UnsafePickleError as err:
        raise TwoStageDataError(path, err.reason, token=token) from err
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise TwoStageDataError(path, f"cannot unpickle: {err}", token=token) from err
    validate_scene_pickle(data, path, token)
    return data, scene_frames(data, path, token)


# ------------------------------------------------------------------------------------------------ index


@dataclass(frozen=True)
class StageTwoScene:
    """One stage-2 scene: where it starts, its stage-1 origin and (when recorded) how it was perturbed."""

    token: str
    first_stage_token: str
    log_name: str
    map_name: str
    initial_pose: np.ndarray  # (3,) global x, y, heading of the rear axle at the stage-2 current frame
    offsets: Optional[tuple[float, float, float]] = None  # lateral m, longitudinal m, heading rad (project CSV only)


@dataclass
class TwoStageData:
    """Stage-2 scenes of a two-stage folder, grouped by the stage-1 scene whose plan they continue."""

    root: Path
    scenes: dict[str, StageTwoScene]
    first_stage_tokens: list[str]
    second_stage: dict[str, list[str]]
    links: list[TwoStageLink] = field(default_factory=list)
    num_history_frames: int = 4
    _frames: "OrderedDict[str, list[dict]]" = field(default_factory=OrderedDict, repr=False)
    _metadata: dict[str, dict] = field(default_factory=dict, repr=False)

    @property
    def sensor_blobs_path(self) -> Path:
        return self.root / SENSOR_DIR

    @property
    def second_stage_tokens_all(self) -> list[str]:
        return [t for first in self.first_stage_tokens for t in self.second_stage[first]]

    def second_stage_tokens(self, first_stage_token: str) -> list[str]:
        if first_stage_token not in self.second_stage:
            raise UnknownTokenError(first_stage_token, f"the stage-1 tokens of {self.root}")
        return list(self.second_stage[first_stage_token])

    def scene(self, token: str) -> StageTwoScene:
        if token not in self.scenes:
            raise UnknownTokenError(token, f"the stage-2 scenes of {self.root}")
        return self.scenes[token]

    def initial_pose(self, token: str) -> np.ndarray:
        return self.scene(token).initial_pose.copy()

    def pickle_path(self, token: str) -> Path:
        return self.root / SCENE_PICKLE_DIR / f"{token}.pkl"

    def frame_dicts(self, token: str) -> list[dict[str, Any]]:
        """OpenScene frame dicts of a stage-2 window (history + future) for ``Scene.from_frame_dicts``."""
        self.scene(token)
        if token in self._frames:
            self._frames.move_to_end(token)
            return self._frames[token]
        data, frames = read_scene(self.pickle_path(token), token)
        self._metadata[token] = dict(data["scene_metadata"])
        self._frames[token] = frames
        if len(self._frames) > FRAME_CACHE_SIZE:
            self._frames.popitem(last=False)
        return frames

    def metadata(self, token: str) -> dict[str, Any]:
        """The scene's devkit ``SceneMetadata`` fields."""
        if token not in self._metadata:
            self.frame_dicts(token)
        return dict(self._metadata[token])


def _read_attributes(csv_path: Path) -> dict[str, dict[str, str]]:
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        if "synthetic_scene_token" not in (reader.fieldnames or []):
            raise TwoStageDataError(csv_path, "no synthetic_scene_token column", field="synthetic_scene_token")
        return {row["synthetic_scene_token"]: row for row in reader}


def _float_or_none(row: dict[str, str], columns: Sequence[str], csv_path: Path, token: str):
    if not all(row.get(c) not in (None, "") for c in columns):
        return None
    try:
        return tuple(float(row[c]) for c in columns)
    except ValueError as err:
        raise TwoStageDataError(csv_path, str(err), token=token) from err


def _links_from_csv(attributes: dict[str, dict[str, str]], csv_path: Path) -> list[TwoStageLink]:
    by_first: dict[str, list[str]] = {}
    for token, row in attributes.items():
        first = row.get("first_stage_token")
        if not first:
            raise TwoStageDataError(csv_path, "no stage-1 token (pass the two-stage split, whose reactive_all_mapping "
                                    "links the scenes)", token=token, field="first_stage_token")
        by_first.setdefault(first, []).append(token)
    return [TwoStageLink(first, None, tuple((t,) for t in seconds)) for first, seconds in by_first.items()]


def load_two_stage(root: PathLike, split: Optional[Split] = None) -> TwoStageData:
    """Index the stage-2 scenes of a two-stage folder.

    Links come from `split` (its ``reactive_all_mapping`` / ``two_stage_mapping`` / ``all_mapping``) when it has
    them, otherwise from the project's attributes CSV. A linked stage-2 token without a scene pickle raises
    TwoStageDataError naming the token and file. The scene pickles' metadata and current ego pose are read once.
    """
    root = Path(root)
    pickles = root / SCENE_PICKLE_DIR
    if not pickles.is_dir():
        raise TwoStageDataError(pickles, "folder of stage-2 scene pickles is missing")
    csv_path = root / ATTRIBUTES_CSV
    attributes = _read_attributes(csv_path) if csv_path.is_file() else {}
    links = split.stage_two_links() if split is not None else None
    if links is None:
        if not attributes:
            raise TwoStageDataError(csv_path, "no stage-1 links: pass the two-stage split (reactive_all_mapping) or "
                                    "provide the attributes CSV")
        links = _links_from_csv(attributes, csv_path)
    second_stage: dict[str, list[str]] = {}
    first_tokens: list[str] = []
    for link in links:
        for first, seconds in ((link.first_stage_token, link.second_stage_tokens),
                               (link.previous_token, link.previous_second_stage_tokens)):
            if first is None or not seconds:
                continue
            if first not in second_stage:
                first_tokens.append(first)
                second_stage[first] = []
            second_stage[first].extend(t for t in seconds if t not in second_stage[first])
    missing = [t for first in first_tokens for t in second_stage[first] if not (pickles / f"{t}.pkl").is_file()]
    if missing:
        raise TwoStageDataError(pickles / f"{missing[0]}.pkl", f"scene pickle is missing ({len(missing)} linked "
                                f"stage-2 scene(s) have none, e.g. {missing[:3]})", token=missing[0])
    scenes: dict[str, StageTwoScene] = {}
    num_history = None
    for first in first_tokens:
        for token in second_stage[first]:
            data = read_scene_pickle(pickles / f"{token}.pkl", token)
            metadata = data["scene_metadata"]
            current = data["frames"][int(metadata["num_history_frames"]) - 1]
            row = attributes.get(token, {})
            scenes[token] = StageTwoScene(
                token=token, first_stage_token=first, log_name=str(metadata["log_name"]),
                map_name=str(metadata["map_name"]),
                initial_pose=np.asarray(current["ego_status"]["ego_pose"], dtype=np.float64).copy(),
                offsets=_float_or_none(row, OFFSET_COLUMNS, csv_path, token),
            )
            if num_history is not None and int(metadata["num_history_frames"]) != num_history:
                raise TwoStageDataError(pickles / f"{token}.pkl", f"num_history_frames differs from the other scenes "
                                        f"({metadata['num_history_frames']} != {num_history})", token=token,
                                        field="scene_metadata.num_history_frames")
            num_history = int(metadata["num_history_frames"])
    return TwoStageData(root=root, scenes=scenes, first_stage_tokens=first_tokens, second_stage=second_stage,
                        links=list(links), num_history_frames=num_history or 4)


def missing_first_stage_tokens(data: TwoStageData, available: Sequence[str]) -> list[str]:
    """Stage-1 tokens the two-stage data links to but `available` (the stage-1 scenes loaded) lacks."""
    have = set(available)
    return [t for t in data.first_stage_tokens if t not in have]
