"""Traffic participants of the synthetic world: path-following vehicles and cyclists (IDM), pedestrians,
static objects; shared car-following and obstacle search used by the agents and the ego expert."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data_pipelines.synthetic.layouts import SIDEWALK_WIDTH_M, LayoutInstance
from data_pipelines.synthetic.world import RED, YELLOW, Path, SignalCycle, path_of, random_continuation

# Object sizes (length, width, height) in metres, typical of nuPlan's annotated classes.
VEHICLE_SIZES = ((4.6, 1.95, 1.6), (4.9, 2.0, 1.75), (4.3, 1.8, 1.5), (5.4, 2.1, 2.0))
BICYCLE_SIZE = (1.8, 0.65, 1.6)
PEDESTRIAN_SIZE = (0.6, 0.6, 1.75)
STATIC_SIZES = {"traffic_cone": (0.45, 0.45, 0.75), "barrier": (0.5, 2.0, 1.0), "czone_sign": (0.3, 0.9, 1.8),
                "generic_object": (0.8, 0.8, 1.1)}
# IDM parameters (Treiber et al., intelligent driver model): max acceleration, comfortable braking,
# time headway, standstill gap; plus the hardest braking any driver applies.
IDM_ACCEL = 1.5
IDM_DECEL = 2.5
IDM_HEADWAY_S = 1.4
IDM_MIN_GAP_M = 2.5
MAX_BRAKE = 7.0
LATERAL_ACCEL_LIMIT = 2.0  # m/s^2, comfortable lateral acceleration that sets the speed in curves
LOOKAHEAD_M = 60.0
CORRIDOR_MARGIN_M = 0.35
PEDESTRIAN_PREDICTION_S = (1.0, 2.0, 3.0)
STOP_LINE_MARGIN_M = 1.0
SPEED_UPDATE_M = 2.0
YELLOW_STOP_DECEL = 3.5  # on yellow, drivers stop when they can with at most this deceleration
# Crossing pedestrians wait on the sidewalk until they start to cross, keeping a passing ego at least
# PEDESTRIAN_PASSING_CLEARANCE_M away (3 ft, the passing distance of US safe-passing laws): their centre stands
# CROSSING_CURB_SETBACK_M (>= that clearance + half a pedestrian - the 0.25 m the ego's side keeps inside its lane,
# simulation.LANE_EDGE_CLEARANCE_M) behind the curb. Junction crossing lines start on the sidewalk centre line
# (mid-block ones farther out), so the waiting position is at most CROSSING_WAIT_DEPTH_M along the line.
PEDESTRIAN_PASSING_CLEARANCE_M = 0.9
CROSSING_CURB_SETBACK_M = 1.0
CROSSING_WAIT_DEPTH_M = SIDEWALK_WIDTH_M / 2.0 - CROSSING_CURB_SETBACK_M


@dataclass
class Snapshot:
    """All objects at one 10 Hz step (ego included), as flat arrays."""

    tracks: list[str]
    kinds: list[str]
    xy: np.ndarray  # (N, 2) box centres
    heading: np.ndarray
    velocity: np.ndarray  # (N, 2) global
    size: np.ndarray  # (N, 3) length, width, height

    def __len__(self) -> int:
        return len(self.tracks)


def idm_acceleration(v: float, v0: float, gap: float, v_lead: float, accel: float = IDM_ACCEL,
                     decel: float = IDM_DECEL, headway: float = IDM_HEADWAY_S, min_gap: float = IDM_MIN_GAP_M) -> float:
    v0 = max(v0, 0.1)
    free = 1.0 - (max(v, 0.0) / v0) ** 4
    if gap == np.inf:
        return accel * free
    desired = min_gap + max(0.0, v * headway + v * (v - v_lead) / (2.0 * np.sqrt(accel * decel)))
    return float(min(max(accel * (free - (desired / max(gap, 0.1)) ** 2), -MAX_BRAKE), accel))


def curve_speed_limit(path: Path, s: float, v_des: float, decel: float = IDM_DECEL,
                      lateral_accel: float = LATERAL_ACCEL_LIMIT) -> float:
    """Speed that lets the driver slow down comfortably for every curve within the next 40 m (at most
    `lateral_accel` in the curves)."""
    ds = np.arange(0.0, 40.0, 2.0)
    kappa = np.abs(path.curvature(s + ds))
    v_curve = np.sqrt(lateral_accel / np.maximum(kappa, 1e-4))
    return float(min(v_des, np.min(np.sqrt(v_curve**2 + 2.0 * decel * ds))))


def find_leader(path: Path, s_front: float, lateral: float, half_width: float, snap: Snapshot, exclude: int,
                max_range: float = LOOKAHEAD_M) -> tuple[float, float]:
    """Gap (m) from our front to the nearest object in our corridor ahead, and its speed along the path.

    Moving pedestrians also count at their constant-velocity predictions (they are about to cross)."""
    if len(snap) == 0:
        return np.inf, 0.0
    here = path.position(s_front)
    h = float(path.heading(s_front))
    rel = snap.xy - here
    ahead = rel[:, 0] * np.cos(h) + rel[:, 1] * np.sin(h)
    mask = (np.abs(rel[:, 0]) < max_range + 5.0) & (np.abs(rel[:, 1]) < max_range + 5.0) & (ahead > -8.0)
    if 0 <= exclude < len(mask):
        mask[exclude] = False
    cand = np.nonzero(mask)[0]
    if len(cand) == 0:
        return np.inf, 0.0
    idx, horizon = [cand], [np.zeros(len(cand))]
    walkers = cand[[snap.kinds[i] == "pedestrian" for i in cand]]
    for dt in PEDESTRIAN_PREDICTION_S:
        idx.append(walkers)
        horizon.append(np.full(len(walkers), dt))
    idx = np.concatenate(idx)
    horizon = np.concatenate(horizon)
    points = snap.xy[idx] + horizon[:, None] * snap.velocity[idx]
    s_obj, lat_obj = path.project(points, s_front - 5.0, s_front + max_range)
    ph = path.heading(s_obj)
    dh = snap.heading[idx] - ph
    hl, hw = snap.size[idx, 0] / 2.0, snap.size[idx, 1] / 2.0
    ext_lat = np.abs(hl * np.sin(dh)) + np.abs(hw * np.cos(dh))
    ext_long = np.abs(hl * np.cos(dh)) + np.abs(hw * np.sin(dh))
    gap = s_obj - ext_long - s_front
    ok = (np.abs(lat_obj - lateral) <= half_width + ext_lat + CORRIDOR_MARGIN_M) & (gap >= -ext_long) & (
        s_obj < path.length - 1e-6) & (s_obj > s_front - 5.0 + 1e-6)
    if not np.any(ok):
        return np.inf, 0.0
    k = np.nonzero(ok)[0][np.argmin(gap[ok])]
    vel = snap.velocity[idx[k]]
    v_along = 0.0 if horizon[k] > 0 else float(vel[0] * np.cos(ph[k]) + vel[1] * np.sin(ph[k]))
    return float(max(gap[k], 0.0)), max(v_along, 0.0)


def signal_gap(stops: list[tuple[float, int]], s_front: float, v: float, cycle: SignalCycle, t: float) -> float:
    """Gap to the first stop line we must respect (red, or yellow when we can still stop comfortably)."""
    for s_stop, group in stops:
        gap = s_stop - STOP_LINE_MARGIN_M - s_front
        if gap < -STOP_LINE_MARGIN_M:
            continue  # already past
        state = cycle.state(group, t)
        if state == RED or (state == YELLOW and v * v / (2.0 * YELLOW_STOP_DECEL) < gap + 1.0):
            return max(gap, 0.0)
        return np.inf
    return np.inf


def stop_lines_on(inst: LayoutInstance, elements: list[int]) -> list[tuple[float, int]]:
    """(arc length of the stop line, signal group) for signalized connectors along a lane sequence."""
    out, s = [], 0.0
    for e in elements:
        line = inst.centerline_of(e)
        if e in inst.connectors and inst.connectors[e].signal_group >= 0:
            out.append((s - STOP_OFFSET_FROM_LANE_END_M, inst.connectors[e].signal_group))
        s += float(np.sum(np.linalg.norm(np.diff(line, axis=0), axis=1)))
    return out


STOP_OFFSET_FROM_LANE_END_M = 4.5  # stop polygons sit upstream of the crosswalk (layouts.build_junction)


@dataclass
class PathAgent:
    """A vehicle or cyclist driving along a lane sequence with IDM."""

    track: str
    kind: str
    path: Path
    s: float  # arc length of the box centre
    v: float
    v_des: float
    size: tuple[float, float, float]
    lateral: float = 0.0
    stops: list[tuple[float, int]] = field(default_factory=list)
    headway: float = IDM_HEADWAY_S
    a: float = 0.0
    active: bool = True
    _pose_cache: tuple = (None, None, None)
    _speed_cache: tuple = (-np.inf, 0.0)  # (arc length, curve-limited desired speed)

    def desired_speed(self) -> float:
        """Curve-limited desired speed, re-evaluated every SPEED_UPDATE_M of travel."""
        if abs(self.s - self._speed_cache[0]) > SPEED_UPDATE_M:
            self._speed_cache = (self.s, curve_speed_limit(self.path, self.s, self.v_des))
        return self._speed_cache[1]

    def pose(self) -> tuple[np.ndarray, float]:
        if self._pose_cache[0] != self.s:
            h = float(self.path.heading(self.s))
            xy = self.path.position(self.s) + self.lateral * np.array([-np.sin(h), np.cos(h)])
            self._pose_cache = (self.s, xy, h)
        return self._pose_cache[1], self._pose_cache[2]

    def advance(self, dt: float, accel: float) -> None:
        self.a = accel
        v_new = max(self.v + accel * dt, 0.0)
        self.s += 0.5 * (self.v + v_new) * dt
        self.v = v_new
        if self.s > self.path.end_of_map - 1.0:
            self.active = False


def step_path_agents(agents: list[PathAgent], dt: float, t: float, snap: Snapshot, cycle: SignalCycle) -> None:
    """One IDM step for every active path agent, with a vectorised leader search.

    Each agent's path ahead is approximated by an arc of its current curvature (lateral deviation
    kappa * x^2 / 2), which is accurate over the look-ahead on the layouts' curve radii."""
    active = [a for a in agents if a.active]
    if not active:
        return
    n = len(active)
    front = np.empty((n, 2))
    heading = np.empty(n)
    kappa = np.empty(n)
    lateral = np.array([a.lateral for a in active])
    half_w = np.array([a.size[1] / 2.0 for a in active])
    for k, a in enumerate(active):
        xy, h = a.pose()
        heading[k] = h
        front[k] = xy + a.size[0] / 2.0 * np.array([np.cos(h), np.sin(h)])
        kappa[k] = a.path.curvature(a.s + 10.0)
    walkers = np.array([kd == "pedestrian" for kd in snap.kinds], dtype=bool)
    obs_idx = [np.arange(len(snap))] + [np.nonzero(walkers)[0]] * len(PEDESTRIAN_PREDICTION_S)
    horizons = [np.zeros(len(snap))] + [np.full(int(walkers.sum()), dt_) for dt_ in PEDESTRIAN_PREDICTION_S]
    obs_idx = np.concatenate(obs_idx)
    horizon = np.concatenate(horizons)
    obs_xy = snap.xy[obs_idx] + horizon[:, None] * snap.velocity[obs_idx]
    c, s_ = np.cos(heading)[:, None], np.sin(heading)[:, None]
    rel_x = obs_xy[None, :, 0] - front[:, None, 0]
    rel_y = obs_xy[None, :, 1] - front[:, None, 1]
    x = rel_x * c + rel_y * s_
    y = -rel_x * s_ + rel_y * c
    dh = snap.heading[obs_idx][None, :] - heading[:, None]
    hl = snap.size[obs_idx, 0][None, :] / 2.0
    hw = snap.size[obs_idx, 1][None, :] / 2.0
    ext_lat = np.abs(hl * np.sin(dh)) + np.abs(hw * np.cos(dh))
    ext_long = np.abs(hl * np.cos(dh)) + np.abs(hw * np.sin(dh))
    y_path = kappa[:, None] * x**2 / 2.0 + lateral[:, None]
    ok = (x > -ext_long) & (x < LOOKAHEAD_M) & (np.abs(y - y_path) <= half_w[:, None] + ext_lat + CORRIDOR_MARGIN_M)
    index_of = {track: i for i, track in enumerate(snap.tracks)}
    self_cols = np.array([index_of.get(a.track, -1) for a in active])
    for k in range(n):
        if self_cols[k] >= 0:
            ok[k, obs_idx == self_cols[k]] = False
    gap = np.where(ok, x - ext_long, np.inf)
    best = np.argmin(gap, axis=1)
    rows = np.arange(n)
    best_gap = gap[rows, best]
    vel = snap.velocity[obs_idx[best]]
    v_lead = np.where(horizon[best] > 0, 0.0, vel[:, 0] * c[:, 0] + vel[:, 1] * s_[:, 0])
    for k, a in enumerate(active):
        g, vl = float(max(best_gap[k], 0.0)), float(max(v_lead[k], 0.0))
        g_sig = signal_gap(a.stops, a.s + a.size[0] / 2.0, a.v, cycle, t)
        if g_sig < g:
            g, vl = g_sig, 0.0
        v0 = a.desired_speed()
        a.advance(dt, idm_acceleration(a.v, v0, g, vl, headway=a.headway))


@dataclass
class Pedestrian:
    """Walks along a polyline (crossing or sidewalk) from `start_time`, then stands at its end."""

    track: str
    path: Path
    s: float
    speed: float
    start_time: float
    size: tuple[float, float, float] = PEDESTRIAN_SIZE
    v: float = 0.0
    active: bool = True

    def pose(self) -> tuple[np.ndarray, float]:
        return self.path.position(self.s), float(self.path.heading(self.s))

    def step(self, dt: float, t: float) -> None:
        moving = t >= self.start_time and self.s < self.path.end_of_map
        s_new = min(self.s + (self.speed * dt if moving else 0.0), self.path.end_of_map)
        # Velocity of the coming step; zero once the walk is over.
        self.v = self.speed if moving and s_new < self.path.end_of_map else 0.0
        self.s = s_new


@dataclass
class StaticObject:
    track: str
    kind: str  # traffic_cone, barrier, czone_sign, generic_object, or a parked "vehicle"
    xy: np.ndarray
    heading: float
    size: tuple[float, float, float]


@dataclass
class Population:
    vehicles: list[PathAgent]
    pedestrians: list[Pedestrian]
    statics: list[StaticObject]


def spawn_population(inst: LayoutInstance, rng: np.random.Generator, density: float, ego_xy: np.ndarray,
                     ego_path: Path, ego_s: float, token_fn, spawn_radius: float = 260.0) -> Population:
    """Vehicles on every lane near the ego, cyclists, crossing and walking pedestrians, static objects."""
    vehicles: list[PathAgent] = []
    pedestrians: list[Pedestrian] = []
    statics: list[StaticObject] = []
    counter = iter(range(10**6))
    new_token = lambda: token_fn(f"track-{next(counter)}")  # noqa: E731
    ego_occupied = []  # (xy) positions to keep free around the ego start
    for k in range(-30, 31, 5):
        ego_occupied.append(ego_path.position(ego_s + k))
    ego_occupied = np.array(ego_occupied)
    lanes = sorted(inst.lanes.values(), key=lambda l: l.id)
    for lane in lanes:
        elements = random_continuation(inst, lane.id, rng)
        path = path_of(inst, elements)
        stops = stop_lines_on(inst, elements)
        lane_len = float(np.sum(np.linalg.norm(np.diff(lane.centerline, axis=0), axis=1)))
        spacing = 45.0 / max(density, 1e-3)
        s = float(rng.uniform(5.0, spacing))
        while s < lane_len - 8.0:
            xy = path.position(s)
            if np.min(np.linalg.norm(ego_occupied - xy, axis=1)) > 12.0 and np.linalg.norm(xy - ego_xy) < spawn_radius:
                size = VEHICLE_SIZES[int(rng.integers(0, len(VEHICLE_SIZES)))]
                v_des = lane.speed_limit * float(rng.uniform(0.75, 1.05))
                vehicles.append(PathAgent(new_token(), "vehicle", path, s, v_des * float(rng.uniform(0.6, 1.0)), v_des,
                                          size, lateral=float(rng.normal(0.0, 0.1)), stops=stops,
                                          headway=float(rng.uniform(1.0, 2.0))))
            s += spacing * float(rng.uniform(0.7, 1.6))
    # Cyclists on the rightmost lane of some roadblocks.
    for rb in sorted(inst.roadblocks.values(), key=lambda r: r.id):
        if rng.random() < 0.35 * density:
            lane = inst.lanes[rb.lane_ids[-1]]
            elements = random_continuation(inst, lane.id, rng)
            path = path_of(inst, elements)
            s = float(rng.uniform(5.0, max(lane_len_of(lane) - 20.0, 6.0)))
            xy = path.position(s)
            if np.min(np.linalg.norm(ego_occupied - xy, axis=1)) > 12.0 and np.linalg.norm(xy - ego_xy) < spawn_radius:
                lateral = -(lane.width / 2.0 - 0.7)
                vehicles.append(PathAgent(new_token(), "bicycle", path, s, 4.0, float(rng.uniform(3.5, 6.0)),
                                          BICYCLE_SIZE, lateral=lateral, stops=stop_lines_on(inst, elements)))
    # Pedestrians crossing the road (crosswalks at junctions, mid-block on straight roads).
    for line in inst.crossing_lines:
        if np.linalg.norm(line.mean(axis=0) - ego_xy) > spawn_radius:
            continue
        for _ in range(int(rng.poisson(1.5 * density))):
            pts = line if rng.random() < 0.5 else line[::-1]
            path = Path(pts, extend=0.0)
            pedestrians.append(Pedestrian(new_token(), path, float(rng.uniform(0.0, CROSSING_WAIT_DEPTH_M)),
                                          float(rng.uniform(1.0, 1.6)),
                                          start_time=float(rng.uniform(0.0, 25.0))))
    # Pedestrians walking on sidewalks.
    for walk in inst.sidewalk_paths:
        path = Path(walk if rng.random() < 0.5 else walk[::-1], extend=0.0)
        for _ in range(int(rng.poisson(2.0 * density))):
            s = float(rng.uniform(0.0, path.length))
            if np.linalg.norm(path.position(s) - ego_xy) < spawn_radius:
                pedestrians.append(Pedestrian(new_token(), path, s, float(rng.uniform(0.9, 1.5)), start_time=0.0))
    # Work zones: a taper of cones across the lane, a barrier and a construction sign.
    for lane_id, s_zone in inst.work_zones:
        lane = inst.lanes[lane_id]
        path = Path(lane.centerline, extend=0.0)
        for k in range(6):
            s = s_zone + 2.5 * k
            lat = lane.width * (0.45 - 0.15 * min(k, 3))
            h = float(path.heading(s))
            xy = path.position(s) + lat * np.array([-np.sin(h), np.cos(h)]) * (-1)
            statics.append(StaticObject(new_token(), "traffic_cone", xy, h, STATIC_SIZES["traffic_cone"]))
        for kind, ds in (("barrier", 18.0), ("czone_sign", -12.0)):
            s = s_zone + ds
            h = float(path.heading(s))
            heading = h + np.pi / 2.0 if kind == "barrier" else h
            statics.append(StaticObject(new_token(), kind, path.position(s), heading, STATIC_SIZES[kind]))
    # Parked cars in carparks.
    for spot in inst.parking_spots:
        if rng.random() < 0.6 * min(density, 1.5):
            size = VEHICLE_SIZES[int(rng.integers(0, len(VEHICLE_SIZES)))]
            statics.append(StaticObject(new_token(), "vehicle", spot[:2].copy(), float(spot[2]), size))
    # Generic objects (bins, boxes) on sidewalks.
    for walk in inst.sidewalk_paths:
        path = Path(walk, extend=0.0)
        for _ in range(int(rng.poisson(1.0 * density))):
            s = float(rng.uniform(0.0, path.length))
            xy = path.position(s)
            if np.linalg.norm(xy - ego_xy) < spawn_radius:
                statics.append(StaticObject(new_token(), "generic_object", xy, float(path.heading(s)),
                                            STATIC_SIZES["generic_object"]))
    return Population(vehicles, pedestrians, statics)


def lane_len_of(lane) -> float:
    return float(np.sum(np.linalg.norm(np.diff(lane.centerline, axis=0), axis=1)))
