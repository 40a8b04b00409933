"""Runtime view of a layout instance: polyline paths, lane graph walks, traffic-light cycles, driving command."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
from shapely.geometry import Point

from data_pipelines.geometry import wrap_angle
from data_pipelines.synthetic.layouts import LayoutInstance
from data_pipelines.types import DRIVING_COMMANDS

PATH_EXTENSION_M = 200.0
CURVATURE_HALF_WINDOW_M = 2.0  # straight extension past a path's last vertex so nobody runs off its end
# Driving command as OpenScene's producer computes it (navsim_data.md §3).
COMMAND_LOOKAHEAD_M = 20.0
COMMAND_LATERAL_THRESHOLD_M = 2.0
COMMAND_LEFT, COMMAND_FORWARD, COMMAND_RIGHT, COMMAND_UNKNOWN = (
    DRIVING_COMMANDS.index(name) for name in ("left", "forward", "right", "unknown"))


class Path:
    """Polyline with arc length; positions, headings and projections by arc length."""

    def __init__(self, points: np.ndarray, extend: float = PATH_EXTENSION_M):
        pts = _dedupe(np.asarray(points, dtype=np.float64))
        if extend > 0:
            d = pts[-1] - pts[-2]
            d /= np.linalg.norm(d)
            pts = np.vstack([pts, pts[-1] + extend * d])
        self.points = pts
        seg = np.diff(pts, axis=0)
        self.seg_len = np.linalg.norm(seg, axis=1)
        self.s = np.concatenate([[0.0], np.cumsum(self.seg_len)])
        self.seg_heading = np.arctan2(seg[:, 1], seg[:, 0])
        self.length = float(self.s[-1])
        self.end_of_map = self.length - extend  # arc length where the mapped part ends
        self._mids = (self.s[:-1] + self.s[1:]) / 2.0
        self._unwrapped = np.unwrap(self.seg_heading)
        # Curvature per vertex, as the heading change over +-CURVATURE_HALF_WINDOW_M.
        lo = np.interp(self.s - CURVATURE_HALF_WINDOW_M, self._mids, self._unwrapped)
        hi = np.interp(self.s + CURVATURE_HALF_WINDOW_M, self._mids, self._unwrapped)
        self._kappa = (hi - lo) / (2.0 * CURVATURE_HALF_WINDOW_M)
        # Plain-float copies for the scalar fast paths (agents query one arc length at a time).
        self._s_list = self.s.tolist()
        self._x_list = self.points[:, 0].tolist()
        self._y_list = self.points[:, 1].tolist()
        self._mids_list = self._mids.tolist()
        self._unwrapped_list = self._unwrapped.tolist()

    def position(self, s: np.ndarray | float) -> np.ndarray:
        if np.ndim(s) == 0:
            s = min(max(float(s), 0.0), self.length)
            i = min(max(bisect.bisect_right(self._s_list, s) - 1, 0), len(self._s_list) - 2)
            s0, s1 = self._s_list[i], self._s_list[i + 1]
            u = (s - s0) / (s1 - s0) if s1 > s0 else 0.0
            return np.array([self._x_list[i] + u * (self._x_list[i + 1] - self._x_list[i]),
                             self._y_list[i] + u * (self._y_list[i + 1] - self._y_list[i])])
        s = np.clip(s, 0.0, self.length)
        return np.stack([np.interp(s, self.s, self.points[:, 0]), np.interp(s, self.s, self.points[:, 1])], axis=-1)

    def heading(self, s: np.ndarray | float) -> np.ndarray:
        """Heading, interpolated between segment headings around vertices (smooth for dense polylines)."""
        if np.ndim(s) == 0:
            mids, values = self._mids_list, self._unwrapped_list
            s = float(s)
            if s <= mids[0]:
                h = values[0]
            elif s >= mids[-1]:
                h = values[-1]
            else:
                i = bisect.bisect_right(mids, s) - 1
                u = (s - mids[i]) / (mids[i + 1] - mids[i])
                h = values[i] + u * (values[i + 1] - values[i])
            return math.atan2(math.sin(h), math.cos(h))
        return wrap_angle(np.interp(s, self._mids, self._unwrapped))

    def curvature(self, s: np.ndarray | float) -> np.ndarray:
        """Signed curvature (1/m, left positive) at arc length(s)."""
        return np.interp(s, self.s, self._kappa)

    def project(self, xy: np.ndarray, s_lo: float = 0.0, s_hi: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Arc length and signed lateral offset (left positive) of points (M, 2), searching segments in [s_lo, s_hi]."""
        xy = np.atleast_2d(xy)
        i0 = max(int(np.searchsorted(self.s, s_lo, side="right")) - 1, 0)
        i1 = len(self.seg_len) if s_hi is None else min(int(np.searchsorted(self.s, s_hi)) + 1, len(self.seg_len))
        a = self.points[i0:i1]
        d = self.points[i0 + 1:i1 + 1] - a
        L2 = np.maximum((d**2).sum(axis=1), 1e-12)
        rel = xy[:, None, :] - a[None, :, :]
        t = np.clip((rel * d[None]).sum(axis=2) / L2[None], 0.0, 1.0)
        closest = a[None] + t[..., None] * d[None]
        dist2 = ((xy[:, None, :] - closest) ** 2).sum(axis=2)
        k = np.argmin(dist2, axis=1)
        rows = np.arange(len(xy))
        s = self.s[i0 + k] + t[rows, k] * self.seg_len[i0 + k]
        dd = d[k]
        r = rel[rows, k]
        cross = dd[:, 0] * r[:, 1] - dd[:, 1] * r[:, 0]
        lateral = np.sign(cross) * np.sqrt(dist2[rows, k])
        return s, lateral


def _dedupe(points: np.ndarray) -> np.ndarray:
    keep = np.concatenate([[True], np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-6])
    return points[keep]


def path_of(inst: LayoutInstance, elements: list[int], extend: float = PATH_EXTENSION_M) -> Path:
    return Path(np.vstack([inst.centerline_of(e) for e in elements]), extend=extend)


def random_continuation(inst: LayoutInstance, start_lane: int, rng: np.random.Generator, max_elements: int = 5) -> list[int]:
    """A lane / connector sequence starting at `start_lane`, following random successors."""
    seq = [start_lane]
    while len(seq) < max_elements:
        nxt = inst.successors(seq[-1])
        if not nxt:
            break
        seq.append(nxt[int(rng.integers(0, len(nxt)))])
    return seq


# ------------------------------------------------------------------------------------------------ traffic lights
GREEN, YELLOW, RED = "green", "yellow", "red"


@dataclass(frozen=True)
class SignalCycle:
    """Split phasing: groups 0..n-1 get green one after another (green, yellow, all-red)."""

    num_groups: int
    green_s: float
    yellow_s: float
    all_red_s: float
    offset_s: float

    @property
    def phase_s(self) -> float:
        return self.green_s + self.yellow_s + self.all_red_s

    def state(self, group: int, t: float) -> str:
        if self.num_groups == 0:
            return GREEN
        cycle = self.phase_s * self.num_groups
        local = (t + self.offset_s) % cycle - group * self.phase_s
        if 0.0 <= local < self.green_s:
            return GREEN
        if self.green_s <= local < self.green_s + self.yellow_s:
            return YELLOW
        return RED

    def time_to_green(self, group: int, t: float) -> float:
        cycle = self.phase_s * self.num_groups
        local = ((t + self.offset_s) % cycle - group * self.phase_s) % cycle
        return 0.0 if local < self.green_s else cycle - local


def traffic_light_entries(inst: LayoutInstance, cycle: SignalCycle, t: float) -> list[tuple[int, bool]]:
    """OpenScene `traffic_lights`: (lane_connector_id, is_red) for every signalized connector (spec §3)."""
    return [(int(c.id), cycle.state(c.signal_group, t) == RED)
            for c in sorted(inst.connectors.values(), key=lambda c: c.id) if c.signal_group >= 0]


# ----------------------------------------------------------------------------------------------- driving command
def _route_elements(inst: LayoutInstance, roadblock_ids: list[int]) -> list[int]:
    out = []
    for rb in roadblock_ids:
        if rb in inst.roadblocks:
            out += inst.roadblocks[rb].lane_ids
        elif rb in inst.roadblock_connectors:
            out += inst.roadblock_connectors[rb].lane_connector_ids
    return out


def current_route_element(inst: LayoutInstance, roadblock_ids: list[int], xy: np.ndarray, heading: float) -> int | None:
    """On-route lane or connector under the ego with the best heading match (nearest one otherwise)."""
    best, best_key = None, None
    point = Point(float(xy[0]), float(xy[1]))
    for e in _route_elements(inst, roadblock_ids):
        polygon = inst.lanes[e].polygon if e in inst.lanes else inst.connectors[e].polygon
        line = inst.centerline_of(e)
        k = int(np.argmin(np.linalg.norm(line - xy, axis=1)))
        k2 = min(k + 1, len(line) - 1)
        k1 = k2 - 1
        h = np.arctan2(line[k2, 1] - line[k1, 1], line[k2, 0] - line[k1, 0])
        herr = abs(float(wrap_angle(h - heading)))
        key = (0 if polygon.contains(point) else 1, round(herr, 6) if herr < np.pi / 4 else 10.0,
               float(polygon.distance(point)))
        if best_key is None or key < best_key:
            best, best_key = e, key
    return best


def route_centerline(inst: LayoutInstance, roadblock_ids: list[int], start: int) -> np.ndarray:
    """Centerline from `start` following successors that stay on the route (at most 30 elements)."""
    on_route = set(_route_elements(inst, roadblock_ids))
    seq = [start]
    while len(seq) < 30:
        nxt = [e for e in inst.successors(seq[-1]) if e in on_route and e not in seq]
        if not nxt:
            break
        # Prefer the successor whose roadblock comes next on the route.
        rb_order = {rb: i for i, rb in enumerate(roadblock_ids)}
        nxt.sort(key=lambda e: (rb_order.get(inst.roadblock_of(e), 99), e))
        seq.append(nxt[0])
    return np.vstack([inst.centerline_of(e) for e in seq])


def driving_command(inst: LayoutInstance, roadblock_ids: list[int], xy: np.ndarray, heading: float) -> np.ndarray:
    """One-hot (left, forward, right, unknown): lateral offset of the route centerline 20 m ahead (spec §3)."""
    command = np.zeros(4, dtype=np.int64)
    start = current_route_element(inst, roadblock_ids, xy, heading) if roadblock_ids else None
    if start is None:
        command[COMMAND_UNKNOWN] = 1
        return command
    path = Path(route_centerline(inst, roadblock_ids, start), extend=0.0)
    s, _ = path.project(np.asarray(xy)[None])
    s0 = float(s[0])
    origin = path.position(s0)
    h0 = float(path.heading(s0))
    target = path.position(min(s0 + COMMAND_LOOKAHEAD_M, path.length))
    d = target - origin
    lateral = -np.sin(h0) * d[0] + np.cos(h0) * d[1]
    if lateral >= COMMAND_LATERAL_THRESHOLD_M:
        command[COMMAND_LEFT] = 1
    elif lateral <= -COMMAND_LATERAL_THRESHOLD_M:
        command[COMMAND_RIGHT] = 1
    else:
        command[COMMAND_FORWARD] = 1
    return command
