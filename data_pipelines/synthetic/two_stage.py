"""Second-stage (NAVSIM v2 pseudo closed loop) scenes for test logs.

For a stage-1 scene with current frame c, the first-stage plan ends 4 s later (frame c + 8). Each stage-2 scene
starts from the logged ego pose at that time, perturbed by lateral / longitudinal / heading offsets. Its 4 history
frames show the ego approaching the perturbed state (offsets ramped in); in its future frames the expert drives
on from the perturbed state while every other agent replays the log.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from data_pipelines.geometry import wrap_angle
from data_pipelines.synthetic.agents import Snapshot, stop_lines_on
from data_pipelines.synthetic.config import SyntheticWorldConfig
from data_pipelines.synthetic.expert import (
    EGO_LENGTH, EGO_REAR_AXLE_TO_CENTER, EGO_WIDTH, EgoState, ExpertDriver, ExpertParams,
)
from data_pipelines.synthetic.log_writer import (
    FrameRenderer, annotations, dump_pickle, ego_frame_state, frame_command, frame_dict, lights, make_token,
    signal_states,
)
from data_pipelines.synthetic.simulation import SIM_DT, STEPS_PER_FRAME, SimulationResult, ego_snapshot_row
from data_pipelines.synthetic.world import path_of

STAGE_TWO_TOKEN_LENGTH = 17  # NAVSIM v2 synthetic scene tokens have 17 characters (navsim_data.md §6)
PLAN_HORIZON_FRAMES = 8  # the stage-1 plan covers 4 s = 8 frames
SCENE_PICKLE_DIR = "synthetic_scene_pickles"
ATTRIBUTES_CSV = "synthetic_scenes_attributes.csv"
SENSOR_DIR = "sensor_blobs"
CSV_COLUMNS = ("synthetic_scene_token", "corresponding_original_scene_token", "log_name", "map_name",
               "lateral_offset_m", "longitudinal_offset_m", "heading_offset_rad", "initial_x", "initial_y",
               "initial_heading")


@dataclass
class StageTwoRecord:
    token: str
    stage_one_token: str
    log_name: str
    map_name: str
    offsets: tuple[float, float, float]
    initial_pose: tuple[float, float, float]

    def csv_row(self) -> list[str]:
        return [self.token, self.stage_one_token, self.log_name, self.map_name,
                *(repr(float(v)) for v in self.offsets), *(repr(float(v)) for v in self.initial_pose)]


def _with_ego(snap: Snapshot, ego: EgoState) -> Snapshot:
    track, kind, xy, heading, vel, size = ego_snapshot_row(ego)
    return Snapshot([track] + snap.tracks, [kind] + snap.kinds, np.vstack([xy[None], snap.xy]),
                    np.concatenate([[heading], snap.heading]), np.vstack([vel[None], snap.velocity]),
                    np.vstack([np.array(size)[None], snap.size]))


def _offset_pose(row: np.ndarray, lat: float, lon: float, dh: float, weight: float) -> np.ndarray:
    """Logged pose shifted by the full longitudinal offset (a time shift) and `weight` of the lateral / heading
    offsets, all in that pose's own frame."""
    x, y, h = row[:3]
    c, s = np.cos(h), np.sin(h)
    lat_w = weight * lat
    return np.array([x + c * lon - s * lat_w, y + s * lon + c * lat_w, wrap_angle(h + weight * dh)])


def drivable_area(inst) -> "shapely.Geometry":
    """Union of what PDM's DAC treats as drivable: roadblocks, roadblock connectors, intersections, carparks."""
    polygons = [rb.polygon for rb in inst.roadblocks.values()] + [
        rbc.polygon for rbc in inst.roadblock_connectors.values()] + [p for _, p in inst.intersections] + [
        p for _, p in inst.carparks]
    return shapely.union_all(polygons)


def footprint_is_drivable(pose: np.ndarray, area) -> bool:
    c, s = np.cos(pose[2]), np.sin(pose[2])
    centre = pose[:2] + EGO_REAR_AXLE_TO_CENTER * np.array([c, s])
    half_l, half_w = EGO_LENGTH / 2.0, EGO_WIDTH / 2.0
    corners = [centre + a * np.array([c, s]) + b * np.array([-s, c]) for a in (half_l, -half_l) for b in (half_w, -half_w)]
    return bool(all(area.contains(shapely.Point(*p)) for p in corners))


def drivable_offsets(row: np.ndarray, lat: float, lon: float, dh: float, area) -> tuple[float, float, float]:
    """The requested offsets, or the lateral offset mirrored (then dropped) when the perturbed ego would not be
    fully on drivable ground (a perturbation should stay a plausible start)."""
    for candidate in (lat, -lat, 0.0):
        if footprint_is_drivable(_offset_pose(row, candidate, lon, dh, 1.0), area):
            return candidate, lon, dh
    return 0.0, lon, dh


def stage_one_frames(cfg: SyntheticWorldConfig, num_frames: int, rng: np.random.Generator) -> list[int]:
    """Current-frame indices of the stage-1 scenes that get stage-2 scenes (enough log left for replay)."""
    first = cfg.num_history_frames - 1
    last = num_frames - 1 - PLAN_HORIZON_FRAMES - cfg.num_future_frames
    candidates = list(range(first, last + 1))
    if not candidates or cfg.two_stage_scenes_per_log == 0:
        return []
    k = min(cfg.two_stage_scenes_per_log, len(candidates))
    return sorted(int(c) for c in rng.choice(candidates, size=k, replace=False))


def write_stage_two(cfg: SyntheticWorldConfig, res: SimulationResult, log_name: str, stage_one_tokens: dict[int, str],
                    timestamps: list[int], out_dir: Path, renderer: FrameRenderer, rng: np.random.Generator) -> list[StageTwoRecord]:
    """Simulate and write every stage-2 scene of one log; returns their CSV records."""
    inst = res.instance
    route = res.route.roadblock_ids
    route_str = [str(r) for r in route]
    steps = res.logged_steps(len(timestamps))
    records = []
    offsets = list(itertools.product(cfg.two_stage_lateral_offsets_m, cfg.two_stage_longitudinal_offsets_m,
                                     cfg.two_stage_heading_offsets_rad))
    h = cfg.num_history_frames
    area = drivable_area(inst)
    for c, stage_one_token in stage_one_tokens.items():
        start_frame = c + PLAN_HORIZON_FRAMES
        k_start = steps[start_frame]
        for requested in offsets:
            lat, lon, dh = drivable_offsets(res.ego[k_start], *requested, area)
            token = make_token("stage2", log_name, stage_one_token, *requested, length=STAGE_TWO_TOKEN_LENGTH)
            frame_tokens = [make_token("stage2-frame", token, j, length=STAGE_TWO_TOKEN_LENGTH)
                            for j in range(h + cfg.num_future_frames)]
            frame_tokens[h - 1] = token
            # History: logged ego with the perturbation ramped in (weight 1 at the current frame).
            ego_rows = []
            for j in range(h):
                k = k_start - (h - 1 - j) * STEPS_PER_FRAME
                weight = (j + 1) / h
                pose = _offset_pose(res.ego[k], lat, lon, dh, weight)
                row = res.ego[k].copy()
                row[:3] = pose
                ego_rows.append(row)
            # Future: the expert drives on from the perturbed state; other agents replay the log.
            cur = ego_rows[-1]
            state = EgoState(x=float(cur[0]), y=float(cur[1]), heading=float(cur[2]), v=float(cur[3]), a=float(cur[4]))
            lanes = res.lane_ids[k_start]
            params = ExpertParams(v_des=max(float(np.max(res.ego[:, 3])), 1.0), headway=1.5,
                                  lateral_amplitudes=(0.0, 0.0), lateral_periods=(10.0, 5.0), lateral_phases=(0.0, 0.0))
            driver = ExpertDriver(state, path_of(inst, lanes), params, stops=stop_lines_on(inst, lanes))
            for j in range(cfg.num_future_frames):
                for sub in range(STEPS_PER_FRAME):
                    k = k_start + j * STEPS_PER_FRAME + sub
                    driver.step(SIM_DT, k * SIM_DT, _with_ego(res.snapshots[k], state), 0, res.cycle)
                ego_rows.append(np.array([state.x, state.y, state.heading, state.v, state.a, state.yaw_rate,
                                          state.lateral_accel, state.steer, 0.0]))
            frames = []
            sensor_root = out_dir / SENSOR_DIR
            for j, row in enumerate(ego_rows):
                k = k_start + (j - (h - 1)) * STEPS_PER_FRAME
                t = k * SIM_DT
                ego = ego_frame_state(row)
                snap = res.snapshots[k]
                ftoken = frame_tokens[j]
                if j < h:
                    cams = renderer.write(sensor_root, log_name, ftoken, ego, snap, signal_states(res.cycle, t))
                else:
                    cams = renderer.write_blank(sensor_root, log_name)
                frames.append(frame_dict(
                    token=ftoken, frame_idx=start_frame - (h - 1) + j, timestamp=timestamps[start_frame - (h - 1) + j],
                    log_name=log_name, log_token=make_token("log", log_name), scene_token=make_token("scene2", token),
                    location=inst.location, roadblock_ids=route_str, ego=ego, traffic_lights=lights(inst, res.cycle, t),
                    command=frame_command(inst, route, ego), cams=cams,
                    prev_token=frame_tokens[j - 1] if j > 0 else None,
                    next_token=frame_tokens[j + 1] if j + 1 < len(frame_tokens) else None,
                    anns=annotations(ego, snap, cfg.annotation_radius_m, ftoken),
                ))
            metadata = {
                "log_name": log_name, "scene_token": make_token("scene2", token), "map_name": inst.location,
                "initial_token": token, "num_history_frames": h, "num_future_frames": cfg.num_future_frames,
                "corresponding_original_scene": stage_one_token,
                "corresponding_original_initial_token": stage_one_token,
                "offsets": {"lateral_m": float(lat), "longitudinal_m": float(lon), "heading_rad": float(dh)},
            }
            pkl_dir = out_dir / SCENE_PICKLE_DIR
            pkl_dir.mkdir(parents=True, exist_ok=True)
            dump_pickle({"scene_metadata": metadata, "frames": frames}, pkl_dir / f"{token}.pkl")
            p = ego_rows[h - 1]
            records.append(StageTwoRecord(token, stage_one_token, log_name, inst.location, (lat, lon, dh),
                                          (float(p[0]), float(p[1]), float(p[2]))))
    return records


__all__ = ["write_stage_two", "stage_one_frames", "StageTwoRecord", "CSV_COLUMNS", "ATTRIBUTES_CSV",
           "SCENE_PICKLE_DIR", "SENSOR_DIR"]
