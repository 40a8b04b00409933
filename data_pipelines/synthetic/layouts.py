"""Road layouts of the synthetic world: lane-level geometry with nuPlan semantics, before it becomes a GPKG.

Every layout instance lives in its own local frame and is shifted to a UTM origin of its location. Lanes
carry densely sampled (about 1 m) centerlines and boundaries; lane index 0 is the leftmost lane of a
roadblock (as in nuPlan). Ids come from one counter per location, so they are unique across all layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import shapely
from shapely.geometry import Polygon

SAMPLE_SPACING_M = 1.0  # spacing of centerline / boundary vertices
CONNECTOR_SPACING_M = 0.5
STOP_LINE_DEPTH_M = 1.0
CROSSWALK_WIDTH_M = 3.0
SIDEWALK_WIDTH_M = 2.5
# Distance between the outermost lane edge and the intersection box edge. It sets the turn radii: right turns get
# 0.5 x lane width + 4.5 = 6.2-6.5 m, above the ego's smallest rear-axle turning radius (wheel base 3.089 m /
# tan(0.6 rad max steer) = 4.5 m); with 1.5 m they were 3.2-3.5 m, tighter than the ego can drive, and the scorer's
# tracked replay of the logged human turns failed DAC and TTC in several junction logs.
INTERSECTION_MARGIN_M = 4.5
ROUTE_START_MARGIN_M = 60.0  # road beyond the longest drive (the ego starts at least 20 m into a route)
BOUNDARY_TYPE_FID = 2  # nuPlan boundary type used throughout (as in the golden maps)
STOP_POLYGON_TYPE_FID = 2  # stop polygon at a traffic light (as in the golden maps)
INTERSECTION_TYPE_FID = 1  # signalized intersection (as in the golden maps)
LANE_TYPE_FID = 0
LANE_WIDTH_RANGE_M = (3.4, 3.9)  # urban lane widths (US standard lane: 12 ft = 3.66 m)
CURVE_RADIUS_RANGE_M = (80.0, 200.0)  # gentle enough that PDM's tracker (initial steering 0) keeps a logged drive in its lane
TRANSITION_LENGTH_M = 30.0  # length over which curvature ramps between straights and arcs


class IdAllocator:
    """Monotone integer ids, unique within a map file (and across locations by their start value)."""

    def __init__(self, start: int):
        self._next = start

    def __call__(self) -> int:
        value = self._next
        self._next += 1
        return value


@dataclass
class Lane:
    id: int
    roadblock_id: int
    index: int
    centerline: np.ndarray  # (N, 2)
    left: np.ndarray
    right: np.ndarray
    left_boundary_id: int
    right_boundary_id: int
    width: float
    speed_limit: float
    baseline_id: int = 0

    @property
    def polygon(self) -> Polygon:
        return Polygon(np.vstack([self.left, self.right[::-1]]))


@dataclass
class LaneConnector:
    id: int
    roadblock_connector_id: int
    from_lane: int
    to_lane: int
    centerline: np.ndarray
    left: np.ndarray
    right: np.ndarray
    left_boundary_id: int
    right_boundary_id: int
    polygon_id: int
    speed_limit: float  # NaN = none (turning connectors)
    stop_polygon_id: int
    signal_group: int
    turn: str
    baseline_id: int = 0

    @property
    def polygon(self) -> Polygon:
        return Polygon(np.vstack([self.left, self.right[::-1]]))


@dataclass
class Roadblock:
    id: int
    road_segment_id: int
    lane_ids: list[int]
    polygon: Polygon


@dataclass
class RoadblockConnector:
    id: int
    from_roadblock: int
    to_roadblock: int
    intersection_id: int
    lane_connector_ids: list[int]
    polygon: Polygon = None


@dataclass
class EgoRoute:
    """A drivable route: roadblock ids (strings in logs) and the lane / connector sequence the ego follows."""

    roadblock_ids: list[int]
    lane_ids: list[int]  # alternating lanes and lane connectors, in driving order


@dataclass
class LayoutInstance:
    kind: str
    location: str
    index: int
    origin: np.ndarray  # UTM offset of the local frame
    lanes: dict[int, Lane] = field(default_factory=dict)
    connectors: dict[int, LaneConnector] = field(default_factory=dict)
    roadblocks: dict[int, Roadblock] = field(default_factory=dict)
    roadblock_connectors: dict[int, RoadblockConnector] = field(default_factory=dict)
    intersections: list[tuple[int, Polygon]] = field(default_factory=list)
    crosswalks: list[tuple[int, Polygon]] = field(default_factory=list)
    stop_polygons: list[tuple[int, Polygon]] = field(default_factory=list)
    walkways: list[tuple[int, Polygon]] = field(default_factory=list)
    carparks: list[tuple[int, Polygon]] = field(default_factory=list)
    generic_areas: list[tuple[int, Polygon]] = field(default_factory=list)
    boundaries: dict[int, np.ndarray] = field(default_factory=dict)
    routes: list[EgoRoute] = field(default_factory=list)
    # Scenario anchors for agents.
    crossing_lines: list[np.ndarray] = field(default_factory=list)  # (2, 2) pedestrian crossing segments
    sidewalk_paths: list[np.ndarray] = field(default_factory=list)  # polylines pedestrians walk along
    parking_spots: list[np.ndarray] = field(default_factory=list)  # (x, y, heading)
    work_zones: list[tuple[int, float]] = field(default_factory=list)  # (lane id, arc length) of lane obstacles
    signal_groups: int = 0
    params: dict = field(default_factory=dict)

    def successors(self, lane_or_connector: int) -> list[int]:
        if lane_or_connector in self.connectors:
            return [self.connectors[lane_or_connector].to_lane]
        index = self.__dict__.get("_connectors_from")
        if index is None or len(self.__dict__.get("_indexed", ())) != len(self.connectors):
            index = {}
            for c in self.connectors.values():
                index.setdefault(c.from_lane, []).append(c.id)
            self.__dict__["_connectors_from"], self.__dict__["_indexed"] = index, tuple(self.connectors)
        return list(index.get(lane_or_connector, []))

    def centerline_of(self, element: int) -> np.ndarray:
        if element in self.lanes:
            return self.lanes[element].centerline
        return self.connectors[element].centerline

    def roadblock_of(self, element: int) -> int:
        if element in self.lanes:
            return self.lanes[element].roadblock_id
        return self.connectors[element].roadblock_connector_id


# ----------------------------------------------------------------------------------------------------- geometry
def resample(polyline: np.ndarray, spacing: float) -> np.ndarray:
    """Resample a polyline at (about) equal arc-length spacing, keeping both end points."""
    seg = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.ceil(s[-1] / spacing)), 1)
    t = np.linspace(0.0, s[-1], n + 1)
    return np.stack([np.interp(t, s, polyline[:, 0]), np.interp(t, s, polyline[:, 1])], axis=1)


def smooth_polyline(polyline: np.ndarray, window_m: float) -> np.ndarray:
    """Moving-average smoothing (1 m samples, end points kept): turns curvature steps between straights and
    arcs into gradual transitions, like the spiral easements of real roads."""
    n = max(int(window_m / SAMPLE_SPACING_M) | 1, 3)
    half = n // 2
    padded = np.vstack([np.repeat(polyline[:1], half, axis=0) + (polyline[0] - polyline[1]) * np.arange(half, 0, -1)[:, None],
                        polyline,
                        np.repeat(polyline[-1:], half, axis=0) + (polyline[-1] - polyline[-2]) * np.arange(1, half + 1)[:, None]])
    kernel = np.ones(n) / n
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(2)], axis=1)


def left_normals(polyline: np.ndarray) -> np.ndarray:
    tangent = np.gradient(polyline, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def offset(polyline: np.ndarray, distance: float) -> np.ndarray:
    """Parallel polyline `distance` metres to the left (negative: right)."""
    return polyline + distance * left_normals(polyline)


def arc(start: np.ndarray, heading: float, radius: float, angle: float, spacing: float = SAMPLE_SPACING_M) -> np.ndarray:
    """Circular arc from `start` with initial `heading`; positive angle turns left."""
    n = max(int(np.ceil(abs(angle) * radius / spacing)), 2)
    sign = np.sign(angle)
    center = start + sign * radius * np.array([-np.sin(heading), np.cos(heading)])
    phi0 = heading - sign * np.pi / 2.0
    phi = phi0 + np.linspace(0.0, angle, n + 1)
    return center + radius * np.stack([np.cos(phi), np.sin(phi)], axis=1)


def bezier(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float, spacing: float = CONNECTOR_SPACING_M) -> np.ndarray:
    """Cubic Bezier joining two poses (tangent-continuous), sampled at about `spacing`."""
    chord = float(np.linalg.norm(p1 - p0))
    d = 0.4 * chord
    c0 = p0 + d * np.array([np.cos(h0), np.sin(h0)])
    c1 = p1 - d * np.array([np.cos(h1), np.sin(h1)])
    t = np.linspace(0.0, 1.0, 200)[:, None]
    curve = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * c0 + 3 * (1 - t) * t**2 * c1 + t**3 * p1
    return resample(curve, spacing)


def heading_at_end(polyline: np.ndarray) -> float:
    d = polyline[-1] - polyline[-2]
    return float(np.arctan2(d[1], d[0]))


def heading_at_start(polyline: np.ndarray) -> float:
    d = polyline[1] - polyline[0]
    return float(np.arctan2(d[1], d[0]))


# ------------------------------------------------------------------------------------------------- road builder
def _add_roadblock(inst: LayoutInstance, ids: IdAllocator, reference: np.ndarray, num_lanes: int, width: float,
                   speed_limit: float) -> Roadblock:
    """Lanes to the right of `reference` (driving along it); lane 0 touches the reference."""
    rb_id = ids()
    boundary_ids = [ids() for _ in range(num_lanes + 1)]
    edges = [offset(reference, -k * width) for k in range(num_lanes + 1)]
    for k, edge in enumerate(edges):
        inst.boundaries[boundary_ids[k]] = edge
    lane_ids = []
    for k in range(num_lanes):
        lane_id = ids()
        lane_ids.append(lane_id)
        inst.lanes[lane_id] = Lane(
            id=lane_id, roadblock_id=rb_id, index=k, centerline=offset(reference, -(k + 0.5) * width),
            left=edges[k], right=edges[k + 1], left_boundary_id=boundary_ids[k],
            right_boundary_id=boundary_ids[k + 1], width=width, speed_limit=speed_limit,
        )
    polygon = Polygon(np.vstack([edges[0], edges[-1][::-1]]))
    inst.roadblocks[rb_id] = Roadblock(id=rb_id, road_segment_id=ids(), lane_ids=lane_ids, polygon=polygon)
    return inst.roadblocks[rb_id]


def _add_two_way_road(inst: LayoutInstance, ids: IdAllocator, reference: np.ndarray, n_forward: int,
                      n_backward: int, width: float, speed_limit: float) -> tuple[Roadblock, Optional[Roadblock]]:
    reference = resample(reference, SAMPLE_SPACING_M)
    forward = _add_roadblock(inst, ids, reference, n_forward, width, speed_limit)
    backward = _add_roadblock(inst, ids, reference[::-1].copy(), n_backward, width, speed_limit) if n_backward else None
    # Sidewalks (walkways) beside both outer edges.
    right_edge = offset(reference, -n_forward * width)
    left_edge = offset(reference, n_backward * width)
    for edge, sign in ((right_edge, -1.0), (left_edge, 1.0)):
        outer = offset(edge, sign * SIDEWALK_WIDTH_M)
        inst.walkways.append((ids(), Polygon(np.vstack([edge, outer[::-1]]))))
        inst.sidewalk_paths.append(offset(edge, sign * SIDEWALK_WIDTH_M / 2.0))
    return forward, backward


def _single_roadblock_routes(inst: LayoutInstance) -> None:
    for rb in inst.roadblocks.values():
        for lane_id in rb.lane_ids:
            inst.routes.append(EgoRoute(roadblock_ids=[rb.id], lane_ids=[lane_id]))


def _road_params(rng: np.random.Generator, max_forward: int = 3) -> dict:
    return dict(
        n_forward=int(rng.integers(1, max_forward + 1)),
        n_backward=int(rng.integers(1, 3)),
        width=float(np.round(rng.uniform(LANE_WIDTH_RANGE_M[0], LANE_WIDTH_RANGE_M[1]), 2)),
        speed_limit=float(rng.choice([11.2, 13.4, 15.6, 17.9])),  # 25, 30, 35, 40 mph in m/s
    )


def build_straight(inst: LayoutInstance, ids: IdAllocator, rng: np.random.Generator, min_route_m: float) -> None:
    p = _road_params(rng)
    p["length"] = max(float(rng.uniform(500.0, 700.0)), min_route_m + ROUTE_START_MARGIN_M)
    ref = np.array([[0.0, 0.0], [p["length"], 0.0]])
    fwd, _ = _add_two_way_road(inst, ids, ref, p["n_forward"], p["n_backward"], p["width"], p["speed_limit"])
    # Mid-block pedestrian crossing (no crosswalk marking): a line across the whole road.
    x = float(rng.uniform(0.45, 0.75) * p["length"])
    half = (max(p["n_forward"], p["n_backward"]) + 1) * p["width"] + SIDEWALK_WIDTH_M
    inst.crossing_lines.append(np.array([[x, -half], [x, half]]))
    inst.params = p
    _single_roadblock_routes(inst)


def build_curve(inst: LayoutInstance, ids: IdAllocator, rng: np.random.Generator, min_route_m: float) -> None:
    p = _road_params(rng, max_forward=2)
    p.update(
        radius_1=float(rng.uniform(*CURVE_RADIUS_RANGE_M)), angle_1=float(np.deg2rad(rng.uniform(40.0, 90.0))),
        radius_2=float(rng.uniform(*CURVE_RADIUS_RANGE_M)), angle_2=float(np.deg2rad(rng.uniform(40.0, 80.0))),
        first_turn=str(rng.choice(["left", "right"])), lead_in=float(rng.uniform(80.0, 140.0)),
    )
    s1 = 1.0 if p["first_turn"] == "left" else -1.0
    start = np.array([[0.0, 0.0], [p["lead_in"], 0.0]])
    a1 = arc(start[-1], 0.0, p["radius_1"], s1 * p["angle_1"])
    a2 = arc(a1[-1], heading_at_end(a1), p["radius_2"], -s1 * p["angle_2"])
    h = heading_at_end(a2)
    bends = p["lead_in"] + p["radius_1"] * p["angle_1"] + p["radius_2"] * p["angle_2"]
    tail_length = max(250.0, min_route_m + ROUTE_START_MARGIN_M - bends)
    tail = np.array([a2[-1], a2[-1] + tail_length * np.array([np.cos(h), np.sin(h)])])
    ref = smooth_polyline(resample(np.vstack([start[:-1], a1[:-1], a2[:-1], tail]), SAMPLE_SPACING_M),
                          TRANSITION_LENGTH_M)
    _add_two_way_road(inst, ids, ref, p["n_forward"], p["n_backward"], p["width"], p["speed_limit"])
    inst.params = p
    _single_roadblock_routes(inst)


def build_obstacles(inst: LayoutInstance, ids: IdAllocator, rng: np.random.Generator, min_route_m: float) -> None:
    """Straight road with a work zone in a lane, a carpark beside it and generic drivable areas."""
    p = _road_params(rng)
    p["n_forward"] = max(p["n_forward"], 2)
    p["length"] = max(float(rng.uniform(500.0, 650.0)), min_route_m + ROUTE_START_MARGIN_M)
    ref = np.array([[0.0, 0.0], [p["length"], 0.0]])
    fwd, _ = _add_two_way_road(inst, ids, ref, p["n_forward"], p["n_backward"], p["width"], p["speed_limit"])
    road_right = -p["n_forward"] * p["width"]
    # Carpark right beside the road edge (drivable), overlapping the sidewalk strip.
    cx0 = float(rng.uniform(0.35, 0.45) * p["length"])
    depth = float(rng.uniform(25.0, 40.0))
    carpark = Polygon([(cx0, road_right - depth), (cx0 + 60.0, road_right - depth), (cx0 + 60.0, road_right),
                       (cx0, road_right)])
    inst.carparks.append((ids(), carpark))
    for row in range(2):
        for k in range(8):
            x = cx0 + 5.0 + 7.0 * k
            y = road_right - 6.0 - row * 12.0
            inst.parking_spots.append(np.array([x, y, np.pi / 2.0 if row == 0 else -np.pi / 2.0]))
    # Generic drivable areas (e.g. a driveway and a loading zone) further along; not drivable for the scorer.
    gx = cx0 + 120.0
    inst.generic_areas.append((ids(), Polygon([(gx, road_right - 20.0), (gx + 40.0, road_right - 20.0),
                                               (gx + 40.0, road_right), (gx, road_right)])))
    inst.generic_areas.append((ids(), Polygon([(gx + 80.0, road_right - 12.0), (gx + 95.0, road_right - 12.0),
                                               (gx + 95.0, road_right), (gx + 80.0, road_right)])))
    # Work zone in one forward lane (never the only lane).
    zone_lane = fwd.lane_ids[int(rng.integers(0, p["n_forward"]))]
    inst.work_zones.append((zone_lane, float(rng.uniform(0.25, 0.6) * p["length"])))
    inst.params = p
    _single_roadblock_routes(inst)


def build_junction(inst: LayoutInstance, ids: IdAllocator, rng: np.random.Generator, min_route_m: float) -> None:
    """Signalized four-way intersection; arms of equal lane count; split phasing (one group per arm)."""
    n = int(rng.integers(1, 3))
    width = float(np.round(rng.uniform(LANE_WIDTH_RANGE_M[0], LANE_WIDTH_RANGE_M[1]), 2))
    speed = float(rng.choice([11.2, 13.4, 15.6]))
    arm_length = max(float(rng.uniform(200.0, 260.0)), min_route_m / 2.0 + ROUTE_START_MARGIN_M)
    rotation = float(rng.uniform(-0.3, 0.3))
    half = n * width + INTERSECTION_MARGIN_M
    inst.params = dict(n_lanes=n, width=width, speed_limit=speed, arm_length=arm_length, rotation=rotation)
    inbound, outbound = {}, {}
    for a in range(4):
        u = _arm_direction(rotation, a)
        ref = np.array([u * (half + arm_length), u * half])  # driving inwards; inbound lanes on the right
        inbound[a], outbound[a] = _add_two_way_road(inst, ids, ref, n, n, width, speed)
    for connector_id, _, _ in _signalised_intersection(inst, ids, np.zeros(2), rotation, n, width, speed, inbound,
                                                        outbound):
        lc = inst.connectors[connector_id]
        rbc = inst.roadblock_connectors[lc.roadblock_connector_id]
        inst.routes.append(EgoRoute(roadblock_ids=[rbc.from_roadblock, rbc.id, rbc.to_roadblock],
                                    lane_ids=[lc.from_lane, lc.id, lc.to_lane]))
    inst.signal_groups = 4


def _arm_direction(rotation: float, arm: int) -> np.ndarray:
    """Unit vector of arm `arm` (arms ordered counter-clockwise, arm 0 at `rotation`)."""
    theta = rotation + arm * np.pi / 2.0
    return np.array([np.cos(theta), np.sin(theta)])


def _signalised_intersection(inst: LayoutInstance, ids: IdAllocator, center: np.ndarray, rotation: float, n: int,
                             width: float, speed: float, inbound: dict, outbound: dict) -> list[tuple[int, int, int]]:
    """Crosswalks, stop polygons, the intersection box and the lane connectors of a four-way intersection at
    `center` whose arm a has roadblocks inbound[a] / outbound[a] (None for a missing arm). Signal group = arm
    index (split phasing). Returns (connector id, from arm, to arm) of every connector."""
    half = n * width + INTERSECTION_MARGIN_M
    stop_of_lane = {}
    for a in range(4):
        if inbound.get(a) is None:
            continue
        u = _arm_direction(rotation, a)
        normal = np.array([-u[1], u[0]])
        d0, d1 = half + 0.5, half + 0.5 + CROSSWALK_WIDTH_M
        road_half = n * width
        cw = Polygon([center + u * d0 + normal * road_half, center + u * d1 + normal * road_half,
                      center + u * d1 - normal * road_half, center + u * d0 - normal * road_half])
        inst.crosswalks.append((ids(), cw))
        inst.crossing_lines.append(np.array([center + u * (d0 + d1) / 2 + normal * (road_half + SIDEWALK_WIDTH_M / 2),
                                             center + u * (d0 + d1) / 2 - normal * (road_half + SIDEWALK_WIDTH_M / 2)]))
        s0, s1 = half + 0.5 + CROSSWALK_WIDTH_M, half + 0.5 + CROSSWALK_WIDTH_M + STOP_LINE_DEPTH_M
        for lane_id in inbound[a].lane_ids:
            lane = inst.lanes[lane_id]
            sid = ids()
            # Stop line spans the lane between its boundaries at distance s0..s1 from the centre.
            direction = -u
            left_pt = lane.left[-1] - direction * (s0 - half)
            right_pt = lane.right[-1] - direction * (s0 - half)
            poly = Polygon([left_pt, right_pt, right_pt - direction * (s1 - s0), left_pt - direction * (s1 - s0)])
            inst.stop_polygons.append((sid, poly))
            stop_of_lane[lane_id] = sid
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]]) @ np.array(
        [[np.cos(rotation), np.sin(rotation)], [-np.sin(rotation), np.cos(rotation)]])
    intersection_id = ids()
    inst.intersections.append((intersection_id, Polygon(corners + center)))
    movements = {"straight": 2, "left": 3, "right": 1}  # target arm offset (arms ordered counter-clockwise)
    made = []
    for a in range(4):
        for turn, da in movements.items():
            b = (a + da) % 4
            if inbound.get(a) is None or outbound.get(b) is None:
                continue
            if turn == "straight":
                pairs = [(k, k) for k in range(n)]
            elif turn == "left":
                pairs = [(0, 0)]
            else:
                pairs = [(n - 1, n - 1)]
            rbc = RoadblockConnector(id=ids(), from_roadblock=inbound[a].id, to_roadblock=outbound[b].id,
                                     intersection_id=intersection_id, lane_connector_ids=[])
            inst.roadblock_connectors[rbc.id] = rbc
            for i, j in pairs:
                src, dst = inst.lanes[inbound[a].lane_ids[i]], inst.lanes[outbound[b].lane_ids[j]]
                center_line = bezier(src.centerline[-1], heading_at_end(src.centerline), dst.centerline[0],
                                     heading_at_start(dst.centerline))
                lc = LaneConnector(
                    id=ids(), roadblock_connector_id=rbc.id, from_lane=src.id, to_lane=dst.id,
                    centerline=center_line, left=offset(center_line, width / 2.0),
                    right=offset(center_line, -width / 2.0), left_boundary_id=ids(), right_boundary_id=ids(),
                    polygon_id=ids(), speed_limit=speed if turn == "straight" else np.nan,
                    stop_polygon_id=stop_of_lane[src.id], signal_group=a, turn=turn,
                )
                inst.boundaries[lc.left_boundary_id] = lc.left
                inst.boundaries[lc.right_boundary_id] = lc.right
                inst.connectors[lc.id] = lc
                rbc.lane_connector_ids.append(lc.id)
                made.append((lc.id, a, b))
            union = shapely.union_all([inst.connectors[c].polygon for c in rbc.lane_connector_ids])
            rbc.polygon = union if union.geom_type == "Polygon" else union.convex_hull
    return made


GRID_BLOCKS = 10
"""Intersections per side of the grid town: 10 x 10 signalised intersections, 2 lanes each way give 880 lanes
and 1,600 lane connectors (a city-scale map for the realistic preset)."""
GRID_LANES_PER_DIRECTION = 2
GRID_BLOCK_LENGTH_M = 110.0  # road between two intersection boxes (a short urban block)
GRID_EDGE_ROAD_M = 120.0  # road leaving the grid at its border


def build_grid_town(inst: LayoutInstance, ids: IdAllocator, rng: np.random.Generator, min_route_m: float) -> None:
    """A city grid of GRID_BLOCKS x GRID_BLOCKS signalised four-way intersections joined by two-way roads.

    Every intersection is one of the four-way junctions above (crosswalks, stop lines, straight / left / right
    connectors, split phasing with one signal group per arm direction, in phase across the town). Routes start
    on each inbound lane, take one movement and continue straight until they are `min_route_m` long or leave
    the grid."""
    n = GRID_LANES_PER_DIRECTION
    width = float(np.round(rng.uniform(LANE_WIDTH_RANGE_M[0], LANE_WIDTH_RANGE_M[1]), 2))
    speed = float(rng.choice([11.2, 13.4]))
    half = n * width + INTERSECTION_MARGIN_M
    spacing = GRID_BLOCK_LENGTH_M + 2.0 * half
    k = GRID_BLOCKS
    inst.params = dict(blocks=k, n_lanes=n, width=width, speed_limit=speed, block_length=GRID_BLOCK_LENGTH_M)
    centers = {(i, j): np.array([i * spacing, j * spacing]) for i in range(k) for j in range(k)}
    step = {0: (1, 0), 1: (0, 1), 2: (-1, 0), 3: (0, -1)}  # arm a of (i, j) leads to (i, j) + step[a]
    inbound: dict = {key: {} for key in centers}
    outbound: dict = {key: {} for key in centers}
    for (i, j), c in centers.items():
        for a in range(4):
            u = _arm_direction(0.0, a)
            neighbour = (i + step[a][0], j + step[a][1])
            if neighbour in centers:
                if a in (0, 1):  # one road per neighbouring pair, from this box edge to the neighbour's
                    ref = np.array([c + u * half, centers[neighbour] - u * half])
                    forward, backward = _add_two_way_road(inst, ids, ref, n, n, width, speed)
                    outbound[(i, j)][a], inbound[neighbour][(a + 2) % 4] = forward, forward
                    inbound[(i, j)][a], outbound[neighbour][(a + 2) % 4] = backward, backward
            else:  # road leaving the town
                ref = np.array([c + u * (half + GRID_EDGE_ROAD_M), c + u * half])
                inbound[(i, j)][a], outbound[(i, j)][a] = _add_two_way_road(inst, ids, ref, n, n, width, speed)
    for key, c in centers.items():
        _signalised_intersection(inst, ids, c, 0.0, n, width, speed, inbound[key], outbound[key])
    _grid_routes(inst, min_route_m)
    inst.signal_groups = 4


def _grid_routes(inst: LayoutInstance, min_route_m: float) -> None:
    straight_after: dict[int, dict[int, int]] = {}  # lane -> {lane index: straight connector}
    for lc in inst.connectors.values():
        if lc.turn == "straight":
            straight_after.setdefault(lc.from_lane, {})[inst.lanes[lc.from_lane].index] = lc.id
    length = {lane_id: float(np.sum(np.linalg.norm(np.diff(lane.centerline, axis=0), axis=1)))
              for lane_id, lane in inst.lanes.items()}
    for lc in inst.connectors.values():
        lanes = [lc.from_lane, lc.id, lc.to_lane]
        total = length[lc.from_lane] + length[lc.to_lane]
        while total < min_route_m and lanes[-1] in straight_after:
            nxt = inst.connectors[straight_after[lanes[-1]][inst.lanes[lanes[-1]].index]]
            lanes += [nxt.id, nxt.to_lane]
            total += length[nxt.to_lane]
        inst.routes.append(EgoRoute(roadblock_ids=[inst.roadblock_of(e) for e in lanes], lane_ids=lanes))


BUILDERS = {"straight": build_straight, "junction": build_junction, "curve": build_curve, "obstacles": build_obstacles,
            "grid": build_grid_town}


def build_instance(kind: str, location: str, index: int, origin: np.ndarray, ids: IdAllocator,
                   rng: np.random.Generator, min_route_m: float = 450.0) -> LayoutInstance:
    """Build one layout instance in local coordinates, then shift everything to `origin` (UTM metres).

    Roads are made long enough that every ego route offers at least `min_route_m` of driving."""
    inst = LayoutInstance(kind=kind, location=location, index=index, origin=np.asarray(origin, dtype=np.float64))
    BUILDERS[kind](inst, ids, rng, min_route_m)
    _translate(inst, inst.origin)
    return inst


def _translate(inst: LayoutInstance, origin: np.ndarray) -> None:
    move = lambda a: a + origin  # noqa: E731
    move_poly = lambda p: shapely.transform(p, lambda c: c + origin)  # noqa: E731
    for lane in inst.lanes.values():
        lane.centerline, lane.left, lane.right = move(lane.centerline), move(lane.left), move(lane.right)
    for lc in inst.connectors.values():
        lc.centerline, lc.left, lc.right = move(lc.centerline), move(lc.left), move(lc.right)
    for rb in inst.roadblocks.values():
        rb.polygon = move_poly(rb.polygon)
    for rbc in inst.roadblock_connectors.values():
        rbc.polygon = move_poly(rbc.polygon)
    for name in ("intersections", "crosswalks", "stop_polygons", "walkways", "carparks", "generic_areas"):
        setattr(inst, name, [(i, move_poly(p)) for i, p in getattr(inst, name)])
    inst.boundaries = {k: move(v) for k, v in inst.boundaries.items()}
    inst.crossing_lines = [move(c) for c in inst.crossing_lines]
    inst.sidewalk_paths = [move(c) for c in inst.sidewalk_paths]
    inst.parking_spots = [np.array([s[0] + origin[0], s[1] + origin[1], s[2]]) for s in inst.parking_spots]
