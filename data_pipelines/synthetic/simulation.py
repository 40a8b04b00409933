"""10 Hz simulation of one log: the expert ego, traffic, pedestrians, static objects and traffic lights."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data_pipelines.synthetic.agents import (
    IDM_MIN_GAP_M, STOP_LINE_MARGIN_M, PathAgent, Population, Snapshot, spawn_population, step_path_agents, stop_lines_on,
)
from data_pipelines.synthetic.config import SyntheticWorldConfig
from data_pipelines.synthetic.expert import (
    EGO_FRONT_LENGTH, EGO_HEIGHT, EGO_LENGTH, EGO_WIDTH, EgoState, ExpertDriver, ExpertParams, sample_expert_params,
)
from data_pipelines.synthetic.layouts import EgoRoute, LayoutInstance
from data_pipelines.synthetic.world import Path, SignalCycle, path_of

SIM_DT = 0.1  # 10 Hz
MAX_ROUTE_SPEED_MPS = 17.9  # fastest speed limit of the layouts (40 mph)
SPEED_MARGIN = 1.1  # a log drives at most this fraction above the speed limit (the expert caps at 1.15 briefly)
STEPS_PER_FRAME = 5  # logs are written at 2 Hz
WARMUP_S = 4.0
YELLOW_S = 4.0  # amber duration, within the usual 3-6 s
ALL_RED_S = 2.0
LANE_EDGE_CLEARANCE_M = 0.25
JUNCTION_START_GAP_M = 60.0  # the ego starts at least this far before a signalized lane end
EGO_TRACK = "ego"
LANE_CHANGE_FREE_BEHIND_M = 15.0
LANE_CHANGE_FREE_AHEAD_M = 25.0
WORK_ZONE_REACTION_M = 70.0
MIN_START_S_M = 20.0  # logs start at least this far into their first lane (agents spawn behind the ego)
JUNCTION_ARRIVAL_FRACTION = (0.2, 0.6)  # part of the logged time after which the ego reaches the stop line
JUNCTION_START_ITERATIONS = 6  # fixed-point rounds of `junction_start`
JUNCTION_START_TOLERANCE_M = 0.5
# The ego has reached the stop line when its front is this close to it: where it stands when stopping for red
# (the stop-line margin and the IDM standstill gap) plus 1 m for a stop a little short of that.
STOP_ARRIVAL_GAP_M = STOP_LINE_MARGIN_M + IDM_MIN_GAP_M + 1.0
# Junction drives run this much longer than other logs, so that the logged part can start later when red lights
# or traffic ahead hold the ego back (see `junction_log_start`).
JUNCTION_WINDOW_SLACK_S = 8.0
END_MARGIN_S = 5.0  # mapped path for this many seconds of driving is left after the last logged frame
EMPTY_SNAPSHOT = Snapshot([], [], np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2)), np.zeros((0, 3)))
ALWAYS_GREEN = SignalCycle(num_groups=0, green_s=0.0, yellow_s=0.0, all_red_s=0.0, offset_s=0.0)


@dataclass
class SimulationResult:
    instance: LayoutInstance
    route: EgoRoute
    cycle: SignalCycle
    ego: np.ndarray  # (T, 9): x, y, heading, v, a, yaw_rate, lateral_accel, steer, t
    snapshots: list[Snapshot]  # objects (ego excluded) per step
    first_logged_step: int
    lane_ids: list[list[int]] = field(default_factory=list)  # ego lane sequence in use per step

    def logged_steps(self, num_frames: int) -> list[int]:
        return [self.first_logged_step + STEPS_PER_FRAME * j for j in range(num_frames)]


def ego_snapshot_row(st: EgoState) -> tuple:
    c = st.center
    vel = st.v * np.array([np.cos(st.heading), np.sin(st.heading)])
    return EGO_TRACK, "ego", c, st.heading, vel, (EGO_LENGTH, EGO_WIDTH, EGO_HEIGHT)


def snapshot(pop: Population, ego: EgoState | None) -> Snapshot:
    tracks, kinds, xy, heading, vel, size = [], [], [], [], [], []

    def add(row):
        tracks.append(row[0]); kinds.append(row[1]); xy.append(row[2]); heading.append(row[3])  # noqa: E702
        vel.append(row[4]); size.append(row[5])  # noqa: E702

    if ego is not None:
        add(ego_snapshot_row(ego))
    for a in pop.vehicles:
        if a.active:
            p, h = a.pose()
            add((a.track, a.kind, p, h, a.v * np.array([np.cos(h), np.sin(h)]), a.size))
    for p in pop.pedestrians:
        pos, h = p.pose()
        add((p.track, "pedestrian", pos, h, p.v * np.array([np.cos(h), np.sin(h)]), p.size))
    for s in pop.statics:
        add((s.track, s.kind, s.xy, s.heading, np.zeros(2), s.size))
    n = len(tracks)
    return Snapshot(tracks, kinds, np.array(xy).reshape(n, 2), np.array(heading, dtype=np.float64),
                    np.array(vel).reshape(n, 2), np.array(size, dtype=np.float64).reshape(n, 3))


def without_ego(snap: Snapshot) -> Snapshot:
    return Snapshot(snap.tracks[1:], snap.kinds[1:], snap.xy[1:], snap.heading[1:], snap.velocity[1:], snap.size[1:])


@dataclass(frozen=True)
class RouteStart:
    """Where a log starts: its route and either a drawn start arc length or, at junctions, the time the ego's
    front should reach the first stop line (the start follows from how the expert drives, see `junction_start`)."""

    route: EgoRoute
    s_min: float  # earliest start arc length
    s_max: float  # latest start arc length that leaves enough mapped path ahead
    s_start: float | None = None  # roads without a junction
    stop_arrival_s: float | None = None  # junctions: seconds after the simulation starts


def choose_route_and_start(inst: LayoutInstance, rng: np.random.Generator, duration_s: float,
                           logged_s: float) -> RouteStart:
    """A route and its start, leaving enough mapped path ahead for `duration_s` of driving.

    At junctions the movement (left, straight, right) is drawn uniformly and the ego is to reach the stop line a
    random 20-60 % into the logged part (turns and light changes are in most junction logs)."""
    routes = list(inst.routes)
    if inst.connectors:
        turn = str(rng.choice(["left", "straight", "right"]))
        routes = [r for r in routes if len(r.lane_ids) > 1 and inst.connectors[r.lane_ids[1]].turn == turn]
    order = rng.permutation(len(routes))
    for k in order:
        route = routes[int(k)]
        speed = inst.lanes[route.lane_ids[0]].speed_limit
        travel_m = duration_s * speed * SPEED_MARGIN
        path = path_of(inst, route.lane_ids, extend=0.0)
        first_len = float(np.sum(np.linalg.norm(np.diff(inst.centerline_of(route.lane_ids[0]), axis=0), axis=1)))
        junction = len(route.lane_ids) > 1
        hi = min(path.length - travel_m, first_len - (JUNCTION_START_GAP_M if junction else 15.0))
        if hi <= MIN_START_S_M:
            continue
        if junction:
            arrival_s = WARMUP_S + float(rng.uniform(*JUNCTION_ARRIVAL_FRACTION)) * logged_s
            return RouteStart(route, MIN_START_S_M, hi, stop_arrival_s=arrival_s)
        return RouteStart(route, MIN_START_S_M, hi, s_start=float(rng.uniform(MIN_START_S_M, hi)))
    raise RuntimeError(f"layout {inst.kind} #{inst.index} has no route long enough for {duration_s:.0f} s of driving")


def free_drive_distance(path: Path, s_start: float, v_start: float, params: ExpertParams, duration_s: float) -> float:
    """Arc length the expert covers in `duration_s` from `s_start` on an empty road with green lights (its own
    acceleration, speed choice and slowing for curves)."""
    xy = path.position(s_start)
    driver = ExpertDriver(EgoState(x=float(xy[0]), y=float(xy[1]), heading=float(path.heading(s_start)), v=v_start),
                          path, params)
    for k in range(int(round(duration_s / SIM_DT))):
        driver.step(SIM_DT, k * SIM_DT, EMPTY_SNAPSHOT, 0, ALWAYS_GREEN)
    s_end = float(path.project(np.array([[driver.state.x, driver.state.y]]), s_start - 5.0)[0][0])
    return s_end - s_start


def junction_start(path: Path, s_stop: float, arrival_s: float, v_start: float, params: ExpertParams,
                   s_min: float, s_max: float) -> float:
    """Start arc length from which the expert's front reaches the stop line `s_stop` after `arrival_s` seconds on a
    free road (clipped to [s_min, s_max]); "reaches" as in STOP_ARRIVAL_GAP_M.

    Fixed-point iteration s <- s_goal - front - distance(s): the distance depends on the start only through the
    curves ahead, so a few rounds settle it."""
    s_goal = s_stop - STOP_ARRIVAL_GAP_M - EGO_FRONT_LENGTH  # rear axle arc length on arrival
    s = float(np.clip(s_goal - arrival_s * params.v_des, s_min, s_max))
    for _ in range(JUNCTION_START_ITERATIONS):
        covered = free_drive_distance(path, s, v_start, params, arrival_s)
        s_next = float(np.clip(s_goal - covered, s_min, s_max))
        if abs(s_next - s) < JUNCTION_START_TOLERANCE_M:
            return s_next
        s = s_next
    return s


def junction_log_start(path: Path, ego: np.ndarray, s_stop: float, arrival_s: float, logged_steps: int,
                       end_margin_m: float) -> int:
    """First logged step of a junction drive: after the warm-up, and later by as much as the ego actually reached
    the stop line after `arrival_s` (red lights, traffic ahead), at most JUNCTION_WINDOW_SLACK_S later and never so
    late that less than `end_margin_m` of mapped path is left ahead of the last logged step."""
    warmup = int(round(WARMUP_S / SIM_DT))
    s = np.maximum.accumulate(path.project(ego[:, :2])[0])
    reached = np.nonzero(s + EGO_FRONT_LENGTH >= s_stop - STOP_ARRIVAL_GAP_M)[0]
    arrival_step = int(reached[0]) if len(reached) else len(s)
    delay = min(max(arrival_step - int(round(arrival_s / SIM_DT)), 0), int(round(JUNCTION_WINDOW_SLACK_S / SIM_DT)))
    while delay > 0 and s[warmup + delay + logged_steps] > path.end_of_map - end_margin_m:
        delay -= 1
    return warmup + delay


def clear_approach(pop: Population, path: Path, s_start: float, s_stop: float, half_width: float) -> None:
    """Remove the vehicles and cyclists spawned in the ego's lane between it and the stop line: a junction drive
    approaches on a free lane, so that it reaches the stop line when `junction_start` planned and its light changes
    around that time (traffic behind it, on the other lanes, crossing and after the junction stays)."""
    def in_approach(agent: PathAgent) -> bool:
        xy, _ = agent.pose()
        s, lateral = path.project(xy[None], s_start - 5.0, s_stop + 5.0)
        return s_start < float(s[0]) < s_stop and abs(float(lateral[0])) < half_width
    pop.vehicles = [a for a in pop.vehicles if not in_approach(a)]


def _adjacent_lanes(inst: LayoutInstance, lane_id: int) -> list[int]:
    lane = inst.lanes[lane_id]
    rb = inst.roadblocks[lane.roadblock_id]
    return [l for l in rb.lane_ids if abs(inst.lanes[l].index - lane.index) == 1]


def _lane_is_free(path: Path, ego_xy: np.ndarray, snap: Snapshot, half_width: float) -> bool:
    s_ego = float(path.project(ego_xy[None])[0][0])
    if len(snap) <= 1:
        return True
    s, lat = path.project(snap.xy[1:], s_ego - 30.0, s_ego + 40.0)
    near = (np.abs(lat) < half_width + 1.2) & (s > s_ego - LANE_CHANGE_FREE_BEHIND_M) & (s < s_ego + LANE_CHANGE_FREE_AHEAD_M)
    return not bool(np.any(near))


def _signal_cycle(inst: LayoutInstance, route: EgoRoute, arrival_s: float | None,
                  rng: np.random.Generator) -> SignalCycle:
    """Split-phase cycle whose offset makes the ego's light turn green at a random fraction of its free-road arrival
    time at the stop line (so junction logs mix waiting at red, stopping on yellow and driving through on green)."""
    green = float(rng.uniform(6.0, 9.0))
    phase = green + YELLOW_S + ALL_RED_S
    cycle_s = max(inst.signal_groups, 1) * phase
    stops = stop_lines_on(inst, route.lane_ids)
    if stops:
        _, group = stops[0]
        green_at = float(rng.uniform(0.3, 1.2)) * arrival_s + WARMUP_S * float(rng.uniform(0.0, 1.0))
        offset = (group * phase - green_at) % cycle_s
    else:
        offset = float(rng.uniform(0.0, cycle_s))
    return SignalCycle(num_groups=inst.signal_groups, green_s=green, yellow_s=YELLOW_S, all_red_s=ALL_RED_S,
                       offset_s=offset)


def drive_duration_s(cfg: SyntheticWorldConfig) -> float:
    """Simulated seconds of one log (warm-up + logged frames + a margin)."""
    return WARMUP_S + (cfg.frames_per_log - 1) * STEPS_PER_FRAME * SIM_DT + END_MARGIN_S


def required_route_length_m(cfg: SyntheticWorldConfig) -> float:
    return drive_duration_s(cfg) * MAX_ROUTE_SPEED_MPS * SPEED_MARGIN


def simulate_log(inst: LayoutInstance, cfg: SyntheticWorldConfig, rng: np.random.Generator, token_fn) -> SimulationResult:
    """Simulate warm-up + the logged duration at 10 Hz (junction drives up to JUNCTION_WINDOW_SLACK_S more, see
    `junction_log_start`); returns every step up to the last logged one."""
    logged_steps = (cfg.frames_per_log - 1) * STEPS_PER_FRAME
    logged_s = logged_steps * SIM_DT
    start = choose_route_and_start(inst, rng, drive_duration_s(cfg), logged_s)
    junction = start.stop_arrival_s is not None
    total_steps = int(round((WARMUP_S + logged_s + (JUNCTION_WINDOW_SLACK_S if junction else 0.0)) / SIM_DT)) + 1
    route = start.route
    lane = inst.lanes[route.lane_ids[0]]
    # Lateral wander never takes the ego closer than LANE_EDGE_CLEARANCE_M to its lane edges.
    wander = min(cfg.lateral_noise_m, max((lane.width - EGO_WIDTH) / 2.0 - LANE_EDGE_CLEARANCE_M, 0.0))
    params = sample_expert_params(rng, lane.speed_limit, cfg.speed_noise, wander)
    path = path_of(inst, route.lane_ids)
    v_start = params.v_des * float(rng.uniform(0.55, 1.0))
    stops = stop_lines_on(inst, route.lane_ids)
    if junction:
        s_start = junction_start(path, stops[0][0], start.stop_arrival_s, v_start, params, start.s_min, start.s_max)
    else:
        s_start = start.s_start
    xy0 = path.position(s_start)
    h0 = float(path.heading(s_start))
    ego = EgoState(x=float(xy0[0]), y=float(xy0[1]), heading=h0, v=v_start)
    driver = ExpertDriver(ego, path, params, stops=stops)
    single_roadblock = len(route.roadblock_ids) == 1
    adjacent = _adjacent_lanes(inst, lane.id) if single_roadblock else []
    if adjacent and rng.random() < cfg.lane_change_probability:
        params.lane_change_time = float(rng.uniform(WARMUP_S + 1.0, WARMUP_S + 0.7 * logged_s))
        params.lane_change_target = int(adjacent[int(rng.integers(0, len(adjacent)))])
    work_zone = [(lid, s) for lid, s in inst.work_zones if lid == lane.id]
    cycle = _signal_cycle(inst, route, start.stop_arrival_s, rng)
    pop = spawn_population(inst, rng, cfg.agent_density, xy0, path, s_start, token_fn)
    if junction:
        clear_approach(pop, path, s_start, stops[0][0], lane.width / 2.0)
    ego_rows, snaps, lanes_used = [], [], []
    current_lane = lane.id
    changed = False
    for k in range(total_steps):
        t = k * SIM_DT
        snap = snapshot(pop, ego)
        ego_rows.append((ego.x, ego.y, ego.heading, ego.v, ego.a, ego.yaw_rate, ego.lateral_accel, ego.steer, t))
        snaps.append(without_ego(snap))
        lanes_used.append([current_lane] if single_roadblock else list(route.lane_ids))
        # Lane changes: planned ones, and forced ones in front of a work zone.
        want = None
        if not changed and params.lane_change_time is not None and t >= params.lane_change_time:
            want = params.lane_change_target
        if not changed and work_zone and adjacent:
            s_ego = float(driver.path.project(np.array([[ego.x, ego.y]]))[0][0])
            if 0.0 < work_zone[0][1] - s_ego < WORK_ZONE_REACTION_M:
                want = adjacent[0]
        if want is not None:
            new_path = path_of(inst, [want])
            if _lane_is_free(new_path, np.array([ego.x, ego.y]), snap, EGO_WIDTH / 2.0):
                driver.switch_path(new_path, t)
                current_lane, changed = want, True
            elif params.lane_change_time is not None:
                params.lane_change_time = t + 1.0
        driver.step(SIM_DT, t, snap, 0, cycle)
        step_path_agents(pop.vehicles, SIM_DT, t, snap, cycle)
        for ped in pop.pedestrians:
            ped.step(SIM_DT, t)
    ego_rows = np.array(ego_rows, dtype=np.float64)
    first = int(round(WARMUP_S / SIM_DT))
    if junction:
        end_margin_m = END_MARGIN_S * lane.speed_limit * SPEED_MARGIN
        first = junction_log_start(path, ego_rows, stops[0][0], start.stop_arrival_s, logged_steps, end_margin_m)
    end = first + logged_steps + 1
    return SimulationResult(instance=inst, route=route, cycle=cycle, ego=ego_rows[:end], snapshots=snaps[:end],
                            first_logged_step=first, lane_ids=lanes_used[:end])


__all__ = ["SimulationResult", "simulate_log", "snapshot", "SIM_DT", "STEPS_PER_FRAME"]
