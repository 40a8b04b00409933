"""Synthetic merged lidar sweeps: a spinning multi-beam lidar ray-cast against the ground and the annotated boxes,
written as binary PCD files the way OpenScene's ``MergedPointCloud/<id>.pcd`` files are read.

Readers: the devkit's ``LidarPointCloud.from_buffer(bytes, "pcd")`` (nuplan-devkit
``nuplan/database/utils/pointclouds/pointcloud.py``: a header with exactly the keys VERSION, FIELDS, SIZE, TYPE,
COUNT, WIDTH, HEIGHT, VIEWPOINT, POINTS, DATA; binary data; fields x, y, z, intensity, ring, lidar_info read as
(6, n) float32) and the project's ``data_pipelines.log_reader.load_lidar_pcd``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_pipelines.synthetic.renderer import LIDAR2EGO_TRANSLATION

PCD_FIELDS = ("x", "y", "z", "intensity", "ring", "lidar_info")
NUM_BEAMS = 32  # a 32-beam roof lidar (a synthetic choice; nuPlan merges five lidars)
ELEVATION_RANGE_DEG = (-25.0, 3.0)
AZIMUTH_STEPS = 1024
MAX_RANGE_M = 80.0
GROUND_INTENSITY = 12.0  # asphalt returns are weak
OBJECT_INTENSITY = 60.0
LIDAR_ID = 0.0


def _beam_directions() -> np.ndarray:
    """(NUM_BEAMS * AZIMUTH_STEPS, 3) unit ray directions in the lidar frame (= ego axes), beam-major."""
    elevation = np.deg2rad(np.linspace(*ELEVATION_RANGE_DEG, NUM_BEAMS))[:, None]
    azimuth = np.linspace(-np.pi, np.pi, AZIMUTH_STEPS, endpoint=False)[None, :]
    dirs = np.stack(np.broadcast_arrays(np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                        np.sin(elevation)), axis=-1)
    return dirs.reshape(-1, 3)


_DIRECTIONS = _beam_directions()
_RINGS = np.repeat(np.arange(NUM_BEAMS, dtype=np.float32), AZIMUTH_STEPS)


def sweep(boxes: np.ndarray) -> np.ndarray:
    """(6, n) float32 points (x, y, z, intensity, ring, lidar_info) in the lidar frame.

    `boxes` are the frame's annotation boxes (N, 7): x, y, z (centre), length, width, height, yaw in the ego
    frame. Every ray returns its nearest hit on the ground plane or a box within MAX_RANGE_M, or nothing."""
    origin = LIDAR2EGO_TRANSLATION.astype(np.float64)
    dirs = _DIRECTIONS
    hit_t = np.full(len(dirs), np.inf)
    intensity = np.full(len(dirs), GROUND_INTENSITY)
    down = dirs[:, 2] < -1e-6
    hit_t[down] = -origin[2] / dirs[down, 2]
    for x, y, z, length, width, height, yaw in np.asarray(boxes, dtype=np.float64).reshape(-1, 7):
        c, s = np.cos(yaw), np.sin(yaw)
        rel = origin - np.array([x, y, z])
        o = np.array([c * rel[0] + s * rel[1], -s * rel[0] + c * rel[1], rel[2]])  # origin in the box frame
        d = np.stack([c * dirs[:, 0] + s * dirs[:, 1], -s * dirs[:, 0] + c * dirs[:, 1], dirs[:, 2]], axis=1)
        half = np.array([length, width, height]) / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-half - o) / d, (half - o) / d
        near = np.nanmax(np.minimum(t1, t2), axis=1)
        far = np.nanmin(np.maximum(t1, t2), axis=1)
        hits = (near <= far) & (near > 0.0) & (near < hit_t)
        hit_t[hits] = near[hits]
        intensity[hits] = OBJECT_INTENSITY
    keep = hit_t <= MAX_RANGE_M
    points = dirs[keep] * hit_t[keep, None] + origin - LIDAR2EGO_TRANSLATION  # lidar frame (axes = ego axes)
    return np.stack([points[:, 0], points[:, 1], points[:, 2], intensity[keep], _RINGS[keep],
                     np.full(int(keep.sum()), LIDAR_ID)]).astype(np.float32)


def write_pcd(path: Path, points: np.ndarray) -> None:
    """Binary PCD v0.7 with the OpenScene merged-cloud fields (float32 each)."""
    points = np.asarray(points, dtype=np.float32)
    if points.shape[0] != len(PCD_FIELDS):
        raise ValueError(f"expected ({len(PCD_FIELDS)}, n) points, got {points.shape}")
    n = points.shape[1]
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\n"
        "VERSION 0.7\n"
        f"FIELDS {' '.join(PCD_FIELDS)}\n"
        f"SIZE {' '.join(['4'] * len(PCD_FIELDS))}\n"
        f"TYPE {' '.join(['F'] * len(PCD_FIELDS))}\n"
        f"COUNT {' '.join(['1'] * len(PCD_FIELDS))}\n"
        f"WIDTH {n}\n"
        "HEIGHT 1\n"
        "VIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {n}\n"
        "DATA binary\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode("ascii") + np.ascontiguousarray(points.T).tobytes())
