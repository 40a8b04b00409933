"""Reader of two-stage (NAVSIM v2 pseudo closed loop) scene data written by the synthetic world.

Layout of a two-stage root (modelled on NAVSIM v2's `navhard_two_stage/`)::

    <root>/synthetic_scenes_attributes.csv           one row per stage-2 scene (columns below)
    <root>/synthetic_scene_pickles/<token>.pkl      {"scene_metadata": {...}, "frames": [OpenScene frame dicts]}
    <root>/sensor_blobs/<log_name>/CAM_*/<id>.jpg   camera images of the stage-2 frames (data_path is relative here)

CSV columns: synthetic_scene_token, corresponding_original_scene_token, log_name, map_name, lateral_offset_m,
longitudinal_offset_m, heading_offset_rad, initial_x, initial_y, initial_heading. Stage-1 scenes are ordinary
scenes of the test split (their tokens are the `corresponding_original_scene_token` values).
"""

from __future__ import annotations

import csv
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_pipelines.errors import DataError, PathLike, UnknownTokenError
from data_pipelines.safe_pickle import LOG_PICKLE, UnsafePickleError, restricted_load

ATTRIBUTES_CSV = "synthetic_scenes_attributes.csv"
SCENE_PICKLE_DIR = "synthetic_scene_pickles"
SENSOR_DIR = "sensor_blobs"
REQUIRED_COLUMNS = ("synthetic_scene_token", "corresponding_original_scene_token", "log_name", "map_name",
                    "initial_x", "initial_y", "initial_heading")
OFFSET_COLUMNS = ("lateral_offset_m", "longitudinal_offset_m", "heading_offset_rad")


class TwoStageDataError(DataError):
    """The two-stage folder, its attributes CSV or a scene pickle is missing or malformed."""

    def __init__(self, path: PathLike, reason: str, *, token: str | None = None):
        self.path = Path(path)
        self.token = token
        where = f"two-stage data {self.path}" + (f" (scene {token})" if token else "")
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class StageTwoScene:
    """One stage-2 scene: its stage-1 origin, where it starts and how it was perturbed."""

    token: str
    first_stage_token: str
    log_name: str
    map_name: str
    initial_pose: np.ndarray  # (3,) global x, y, heading of the rear axle at the stage-2 current frame
    offsets: tuple[float, float, float]  # lateral m, longitudinal m, heading rad (in the logged ego frame)


@dataclass
class TwoStageData:
    root: Path
    scenes: dict[str, StageTwoScene]
    first_stage_tokens: list[str]
    second_stage: dict[str, list[str]]
    num_history_frames: int = 4
    _cache: dict[str, dict] = field(default_factory=dict, repr=False)

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

    def _load(self, token: str) -> dict:
        self.scene(token)
        if token not in self._cache:
            path = self.root / SCENE_PICKLE_DIR / f"{token}.pkl"
            if not path.is_file():
                raise TwoStageDataError(path, "scene pickle is missing", token=token)
            try:
                data = restricted_load(path, LOG_PICKLE)
            except UnsafePickleError as err:
                raise TwoStageDataError(path, err.reason, token=token) from err
            except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
                raise TwoStageDataError(path, f"cannot unpickle: {err}", token=token) from err
            if not isinstance(data, dict) or "frames" not in data or "scene_metadata" not in data:
                raise TwoStageDataError(path, "expected a dict with 'scene_metadata' and 'frames'", token=token)
            self._cache[token] = data
        return self._cache[token]

    def frame_dicts(self, token: str) -> list[dict[str, Any]]:
        """OpenScene frame dicts of a stage-2 window (history + future) for `Scene.from_frame_dicts`."""
        return self._load(token)["frames"]

    def metadata(self, token: str) -> dict[str, Any]:
        return dict(self._load(token)["scene_metadata"])


def load_two_stage(root: PathLike) -> TwoStageData:
    """Index a two-stage folder from its attributes CSV (scene pickles are read lazily)."""
    root = Path(root)
    csv_path = root / ATTRIBUTES_CSV
    if not csv_path.is_file():
        raise TwoStageDataError(csv_path, "attributes CSV is missing")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TwoStageDataError(csv_path, f"missing columns {missing}")
        rows = list(reader)
    scenes: dict[str, StageTwoScene] = {}
    first_tokens: list[str] = []
    second: dict[str, list[str]] = {}
    for line, row in enumerate(rows, start=2):
        token, first = row["synthetic_scene_token"], row["corresponding_original_scene_token"]
        try:
            pose = np.array([float(row["initial_x"]), float(row["initial_y"]), float(row["initial_heading"])])
            offsets = tuple(float(row[c]) if row.get(c) not in (None, "") else 0.0 for c in OFFSET_COLUMNS)
        except ValueError as err:
            raise TwoStageDataError(csv_path, f"line {line}: {err}", token=token) from err
        if token in scenes:
            raise TwoStageDataError(csv_path, f"line {line}: duplicate stage-2 token", token=token)
        scenes[token] = StageTwoScene(token, first, row["log_name"], row["map_name"], pose, offsets)
        if first not in second:
            first_tokens.append(first)
            second[first] = []
        second[first].append(token)
    return TwoStageData(root=root, scenes=scenes, first_stage_tokens=first_tokens, second_stage=second)
