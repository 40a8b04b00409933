"""Boxes and traffic lights of one log frame; boxes in global (map) coordinates (spec pdm_score.md §1.3).

Shared by the ground-truth observation of the scorer, the PDM-Closed planner's forecast and the cache
fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from data_pipelines.geometry import wrap_angle
from data_pipelines.types import AGENT_TYPES, STATIC_OBJECT_TYPES, Frame


AGENT_TYPE_SET = frozenset(AGENT_TYPES)
SCORED_TYPE_SET = frozenset(AGENT_TYPES) | frozenset(STATIC_OBJECT_TYPES)


def _of_types(types: list[str], kinds: frozenset) -> np.ndarray:
    """(N,) bool: each type is one of `kinds`."""
    return np.fromiter(map(kinds.__contains__, types), dtype=bool, count=len(types))


@dataclass
class SceneObjects:
    """Boxes of one frame: tokens (track tokens), types, global centre/heading/size, global velocity."""

    tokens: list[str]
    types: list[str]
    x: np.ndarray
    y: np.ndarray
    heading: np.ndarray
    length: np.ndarray
    width: np.ndarray
    vx: np.ndarray
    vy: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def is_agent(self) -> np.ndarray:
        return _of_types(self.types, AGENT_TYPE_SET)

    @property
    def is_scored(self) -> np.ndarray:
        """Boxes of a class the scorer considers: agents and static objects (§1.3)."""
        return _of_types(self.types, SCORED_TYPE_SET)

    def subset(self, index: np.ndarray) -> "SceneObjects":
        index = np.asarray(index, dtype=np.int64)
        return SceneObjects(
            tokens=[self.tokens[i] for i in index], types=[self.types[i] for i in index],
            x=self.x[index], y=self.y[index], heading=self.heading[index], length=self.length[index],
            width=self.width[index], vx=self.vx[index], vy=self.vy[index])


def frame_objects(frame: Frame) -> SceneObjects:
    """Global boxes of a frame: centre R(h)·(x, y) + p, heading wrap(yaw + h); agents' velocity R(h)·(vx, vy),
    static objects' velocity 0 (spec §1.3). Every box of the frame, whatever its class."""
    annotations = frame.annotations
    ego_x, ego_y, ego_h = (float(v) for v in np.asarray(frame.ego_status.ego_pose, dtype=np.float64)[:3])
    if annotations is None or len(annotations.names) == 0:
        empty = np.zeros(0, dtype=np.float64)
        return SceneObjects([], [], empty, empty, empty, empty, empty, empty, empty)
    boxes = np.asarray(annotations.boxes, dtype=np.float64)
    velocity = np.asarray(annotations.velocity_3d, dtype=np.float64)
    cos_h, sin_h = np.cos(ego_h), np.sin(ego_h)
    types = list(map(str, annotations.names))
    agent = _of_types(types, AGENT_TYPE_SET)
    vx = np.where(agent, cos_h * velocity[:, 0] - sin_h * velocity[:, 1], 0.0)
    vy = np.where(agent, sin_h * velocity[:, 0] + cos_h * velocity[:, 1], 0.0)
    return SceneObjects(
        tokens=list(map(str, annotations.track_tokens)),
        types=types,
        x=cos_h * boxes[:, 0] - sin_h * boxes[:, 1] + ego_x,
        y=sin_h * boxes[:, 0] + cos_h * boxes[:, 1] + ego_y,
        heading=np.asarray(wrap_angle(boxes[:, 6] + ego_h), dtype=np.float64),
        length=boxes[:, 3].copy(),
        width=boxes[:, 4].copy(),
        vx=vx,
        vy=vy,
    )


def red_lane_connector_ids(traffic_lights) -> np.ndarray:
    """(N,) int64 ids of the RED lane connectors of a frame's `traffic_lights` pairs, in the frame's order: what
    the scorer reads of them (city maps list every signalised connector in every frame, thousands of pairs)."""
    return np.array([lane for lane, is_red in traffic_lights if is_red], dtype=np.int64)


INT64_MIN, INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def integer_lane_ids(lane_ids: Iterable[str]) -> np.ndarray:
    """int64 values of the lane ids written as integers (str(int(i)) == i): a connector id `c` of the traffic
    lights names one of `lane_ids` exactly when `c` is among these. Other ids match no connector id."""
    numbers = []
    for text in lane_ids:
        try:
            value = int(text)
        except ValueError:
            continue
        if str(value) == text and INT64_MIN <= value <= INT64_MAX:
            numbers.append(value)
    return np.array(numbers, dtype=np.int64)


def red_ids_among(red_ids: np.ndarray, lane_numbers: np.ndarray) -> list[str]:
    """The red connector ids (a frame's, in its order) that are among `lane_numbers` (:func:`integer_lane_ids`),
    as lane id strings: a city frame lists hundreds of red connectors, a route holds a few of them."""
    red_ids = np.asarray(red_ids, dtype=np.int64)
    if len(red_ids) == 0:  # (the lane numbers may then be left uncomputed, None)
        return []
    lanes = np.sort(np.asarray(lane_numbers, dtype=np.int64))
    if len(lanes) == 0:
        return []
    # membership by binary search in the few route lanes (np.isin compares every red id with each lane: ~5x slower)
    among = lanes[np.minimum(np.searchsorted(lanes, red_ids), len(lanes) - 1)] == red_ids
    return list(map(str, red_ids[among].tolist()))


class SceneRedLights:
    """Red lane connector ids per frame of a scene, each frame's light pairs read once: a city frame lists
    thousands, and one cache build asks for the same frames three times (planner, observation, fingerprint)."""

    def __init__(self, frames):
        self._frames = frames
        self._ids: dict[int, np.ndarray] = {}

    def ids(self, frame_index: int) -> np.ndarray:
        """:func:`red_lane_connector_ids` of frame `frame_index`."""
        if frame_index not in self._ids:
            self._ids[frame_index] = red_lane_connector_ids(self._frames[frame_index].traffic_lights)
        return self._ids[frame_index]


__all__ = ["SceneObjects", "SceneRedLights", "frame_objects", "integer_lane_ids", "red_ids_among",
           "red_lane_connector_ids"]
