"""Polyline with progress-based interpolation and projection (spec pdm_score.md §3.4, §3.8)."""

from __future__ import annotations

import numba
import numpy as np
import shapely
from shapely import ops
from shapely.geometry import LineString


# Smallest interpolation distance along a path [m] (spec §3.8: distances clipped to [1e-5, length]).
MIN_INTERPOLATION_DISTANCE = 1e-5


def cumulative_progress(xy: np.ndarray) -> np.ndarray:
    """Cumulative Euclidean distance along the vertices (first entry 0)."""
    delta = np.diff(xy, axis=0)
    steps = np.sqrt((delta * delta).sum(axis=-1))
    return np.cumsum(np.concatenate([[0.0], steps]))


class PDMPath:
    """A discrete path of (x, y, heading) poses.

    Headings are unwrapped; `progress` is the cumulative Euclidean distance between vertices; poses at a
    distance are interpolated linearly in x, y and unwrapped heading (heading wrapped on output).
    """

    def __init__(self, poses: np.ndarray):
        poses = np.array(poses, dtype=np.float64, copy=True).reshape(-1, 3)
        if len(poses) < 2:
            raise ValueError(f"a path needs at least two poses, got {len(poses)}")
        self._raw_poses = poses.copy()
        poses[:, 2] = np.unwrap(poses[:, 2])
        self._poses = poses
        self._progress = cumulative_progress(poses[:, :2])
        self._linestring = shapely.linestrings(poses[:, :2])

    def __reduce__(self):
        return self.__class__, (self._raw_poses,)

    @property
    def poses(self) -> np.ndarray:
        """(N, 3) vertices with unwrapped headings."""
        return self._poses

    @property
    def discrete_path(self) -> np.ndarray:
        """(N, 3) vertices as given (headings not unwrapped)."""
        return self._raw_poses

    @property
    def progress(self) -> np.ndarray:
        return self._progress

    @property
    def length(self) -> float:
        """Path length as the last cumulative progress value."""
        return float(self._progress[-1])

    @property
    def linestring(self) -> LineString:
        return self._linestring

    def project(self, points) -> np.ndarray | float:
        """Arc length of the closest path point to each point (shapely geometry or (..., 2) coordinates)."""
        if isinstance(points, shapely.Geometry):
            return float(shapely.line_locate_point(self._linestring, points))
        xy = np.asarray(points, dtype=np.float64)
        return shapely.line_locate_point(self._linestring, shapely.points(xy))

    def distance(self, points) -> np.ndarray | float:
        """Euclidean distance from each point ((..., 2) coordinates or a geometry) to the polyline."""
        if isinstance(points, shapely.Geometry):
            return float(shapely.distance(self._linestring, points))
        return shapely.distance(self._linestring, shapely.points(np.asarray(points, dtype=np.float64)))

    def interpolate(self, distances) -> np.ndarray:
        """Poses (..., 3) at the given distances (clipped to [1e-5, length]); NaN entries become 0."""
        query = np.minimum(np.maximum(np.asarray(distances, dtype=np.float64), MIN_INTERPOLATION_DISTANCE),
                           self.length)
        flat = query.reshape(-1)
        # Linear interpolation with the left-searched bracket of a sorted table (duplicate progress values allowed).
        upper = np.minimum(np.maximum(np.searchsorted(self._progress, flat), 1), len(self._progress) - 1)
        lower = upper - 1
        x_lo = self._progress[lower]
        y_lo = self._poses[lower]
        span = self._progress[upper] - x_lo
        degenerate = span == 0.0
        if degenerate.any():  # zero-length segment: 0/0 gives NaN, which becomes 0 as in the reference
            slope = np.full_like(y_lo, np.nan)
            ok = ~degenerate
            slope[ok] = (self._poses[upper[ok]] - y_lo[ok]) / span[ok, None]
        else:
            slope = (self._poses[upper] - y_lo) / span[:, None]
        result = slope * (flat - x_lo)[:, None] + y_lo
        result[:, 2] = np.arctan2(np.sin(result[:, 2]), np.cos(result[:, 2]))
        result[np.isnan(result)] = 0.0
        return result.reshape(query.shape + (3,))

    def substring(self, start: float, end: float) -> LineString:
        """The vertices whose progress lies in [start, end] (clipped to the path), or the exact substring
        when fewer than two vertices do."""
        start = float(np.clip(start, 0.0, self.length))
        end = float(np.clip(end, 0.0, self.length))
        inside = (start <= self._progress) & (self._progress <= end)
        if int(inside.sum()) > 1:
            return LineString(self._poses[inside, :2])
        return ops.substring(self._linestring, start, end)

    def offset(self, lateral: float) -> "PDMPath":
        """Parallel path: each vertex moved by `lateral` along heading + pi/2, headings kept (spec §3.8)."""
        shifted = self._raw_poses.copy()
        shifted[:, 0] += lateral * np.cos(self._raw_poses[:, 2] + np.pi / 2.0)
        shifted[:, 1] += lateral * np.sin(self._raw_poses[:, 2] + np.pi / 2.0)
        return PDMPath(shifted)

    def __len__(self) -> int:
        return len(self._poses)


class PathSetInterpolator:
    """Interpolates several paths in one vectorised call, with the semantics of :meth:`PDMPath.interpolate`."""

    def __init__(self, paths: list[PDMPath]):
        sizes = np.array([len(p) for p in paths])
        self._first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._last = self._first + sizes - 1
        self._lengths = np.array([p.length for p in paths])
        # Offsets keep the concatenated progress table sorted; they only serve the bracket search.
        self._offsets = np.concatenate([[0.0], np.cumsum(self._lengths + 1.0)[:-1]])
        self._progress = np.concatenate([p.progress for p in paths])
        self._search_table = np.concatenate([p.progress + o for p, o in zip(paths, self._offsets)])
        self._poses = np.concatenate([p.poses for p in paths])
        # The arrays of `interpolate_pose`, as one tuple for the compiled callers.
        self.tables = (self._first.astype(np.int64), self._last.astype(np.int64), self._lengths, self._offsets,
                       self._progress, self._search_table, self._poses)

    def __call__(self, path_index: np.ndarray, distances: np.ndarray) -> np.ndarray:
        """Poses (N, 3) of path `path_index[i]` at `distances[i]` (clipped to [1e-5, length])."""
        return _interpolate_poses(self.tables, np.ascontiguousarray(path_index, dtype=np.int64).reshape(-1),
                                  np.ascontiguousarray(distances, dtype=np.float64).reshape(-1))


@numba.njit(cache=True)
def interpolate_pose(tables, path, distance, out):  # pragma: no cover - compiled
    """Pose of path `path` at `distance` into out (3,): the bracketing vertices of the concatenated progress
    table, linear in x, y and unwrapped heading, heading wrapped; NaN components (repeated vertices) become 0."""
    first, last, lengths, offsets, progress, search_table, poses = tables
    query = min(max(distance, MIN_INTERPOLATION_DISTANCE), lengths[path])
    upper = np.searchsorted(search_table, query + offsets[path])
    upper = min(max(upper, first[path] + 1), last[path])
    lower = upper - 1
    x_lo = progress[lower]
    span = progress[upper] - x_lo
    for c in range(3):
        slope = (poses[upper, c] - poses[lower, c]) / span if span != 0.0 else np.nan
        out[c] = slope * (query - x_lo) + poses[lower, c]
    out[2] = np.arctan2(np.sin(out[2]), np.cos(out[2]))
    for c in range(3):
        if np.isnan(out[c]):
            out[c] = 0.0


@numba.njit(cache=True)
def _interpolate_poses(tables, path_index, distances):  # pragma: no cover - compiled
    out = np.empty((path_index.shape[0], 3))
    for i in range(path_index.shape[0]):
        interpolate_pose(tables, path_index[i], distances[i], out[i])
    return out
