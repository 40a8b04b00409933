"""Source fingerprints of metric caches: what a cache was built from, checked when it is loaded.

A metric cache depends on the scene window's frames (ego states, boxes, route, traffic lights), on the map
file of its location and on the metric version. Each part is hashed separately so that a stale entry can be
reported with what changed. Hashes are of content, not of file times, so that caches stay valid when data
are copied to another machine.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np

from navsim_eval.pdm.constants import (
    FRAMES_PER_STEP,
    V1_OBSERVATION_FRAMES,
    V2_OBSERVATION_FRAMES,
    V2_OBSERVATION_STEPS,
)
from navsim_eval.pdm.objects import SceneRedLights

SCENE, MAP, METRIC = "scene", "map", "metric"
PART_DESCRIPTIONS = {
    SCENE: "the scene window's frames (ego states, boxes, route or red lights)",
    MAP: "the map file",
    METRIC: "the metric version",
}
DIGEST_BYTES = 16
READ_CHUNK_BYTES = 1 << 20
# Future frames each metric version's cache reads: its ground-truth observation (spec §3.5; v2 human
# trajectory, §3.7, reads as many). Frames beyond them do not enter the fingerprint.
FUTURE_FRAMES_USED = {"v1": V1_OBSERVATION_FRAMES, "v2": V2_OBSERVATION_FRAMES}
# Frames whose traffic lights a cache reads, as offsets from the current frame: the current frame (the planner's
# red lights) and, in v2, the frames of the observation's red-light steps (frame k // 5 for k < 41, §3.6). A city
# frame lists thousands of light pairs, so the other frames' lights are not hashed.
LIGHT_FRAMES_USED = {"v1": range(0, 1), "v2": range(0, (V2_OBSERVATION_STEPS - 1) // FRAMES_PER_STEP + 1)}

Fingerprint = dict[str, str]


def _hasher():
    return hashlib.blake2b(digest_size=DIGEST_BYTES)


def _update(hasher, *values) -> None:
    for value in values:
        if isinstance(value, np.ndarray):  # numbers by their float64 (integers: int64) bytes, no text rounding
            dtype = np.int64 if np.issubdtype(value.dtype, np.integer) else np.float64
            array = np.ascontiguousarray(value, dtype=dtype)
            hasher.update(f"a{array.shape}".encode())
            hasher.update(array.tobytes())
        else:
            text = repr(value).encode()
            hasher.update(f"s{len(text)}:".encode())
            hasher.update(text)


def scene_fingerprint(scene, version: str, red_lights: Optional[SceneRedLights] = None) -> str:
    """Hash of what a metric cache reads from a scene: history frames and the version's future frames (their
    traffic lights: red connectors of the frames in `LIGHT_FRAMES_USED`)."""
    hasher = _hasher()
    red_lights = SceneRedLights(scene.frames) if red_lights is None else red_lights
    end = scene.current_frame_index + 1 + FUTURE_FRAMES_USED[version]
    _update(hasher, scene.token, scene.scene_metadata.log_name, scene.current_frame_index)
    for index, frame in enumerate(scene.frames[:end]):
        status = frame.ego_status
        reads_lights = index - scene.current_frame_index in LIGHT_FRAMES_USED[version]
        _update(hasher, str(frame.token), int(frame.timestamp), [str(r) for r in frame.roadblock_ids],
                red_lights.ids(index) if reads_lights else None, np.asarray(status.ego_pose),
                np.asarray(status.ego_velocity), np.asarray(status.ego_acceleration))
        annotations = frame.annotations
        if annotations is None:
            _update(hasher, None)
            continue
        _update(hasher, [str(n) for n in annotations.names], [str(t) for t in annotations.track_tokens],
                np.asarray(annotations.boxes), np.asarray(annotations.velocity_3d))
    return hasher.hexdigest()


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Union[str, Path]) -> str:
    """Content hash of a file, memoised per (path, size, modification time) for this process."""
    path = Path(path)
    stat = os.stat(path)
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        hasher = _hasher()
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(READ_CHUNK_BYTES), b""):
                hasher.update(chunk)
        digest = _FILE_DIGESTS[key] = hasher.hexdigest()
    return digest


def map_fingerprint(location: str, map_path: Optional[Union[str, Path]]) -> str:
    """Map location and content hash of its map file (location only for maps without a file)."""
    return f"{location}:{file_digest(map_path) if map_path is not None else 'no-file'}"


def source_fingerprint(scene, version: str, location: Optional[str] = None,
                       map_path: Optional[Union[str, Path]] = None,
                       red_lights: Optional[SceneRedLights] = None) -> Fingerprint:
    """The parts a cache of `scene` depends on; the map part only when the map location is known."""
    parts = {METRIC: version, SCENE: scene_fingerprint(scene, version, red_lights)}
    if location is not None:
        parts[MAP] = map_fingerprint(location, map_path)
    return parts


def changed_parts(stored: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """Parts of `expected` whose value differs from (or is missing in) `stored`."""
    return [part for part, value in expected.items() if stored.get(part) != value]


def describe_changes(parts: list[str]) -> str:
    return "; ".join(f"{PART_DESCRIPTIONS.get(p, p)} changed" for p in parts)


__all__ = [
    "MAP", "METRIC", "SCENE", "Fingerprint", "changed_parts", "describe_changes", "file_digest",
    "map_fingerprint", "scene_fingerprint", "source_fingerprint",
]
