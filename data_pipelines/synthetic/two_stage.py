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
from data_pipelines.scene_filter import TwoStageLink
from data_pipelines.synthetic.agents import Snapshot, stop_lines_on
from data_pipelines.synthetic.config import SyntheticWorldConfig
from data_pipelines.synthetic.expert import (
    EGO_LENGTH, EGO_REAR_AXLE_TO_CENTER, EGO_WIDTH, EgoState, ExpertDriver, ExpertParams,
)
from data_pipelines.synthetic.lidar import sweep, write_pcd
from data_pipelines.synthetic.log_writer import (
    FrameRenderer, annotations, dump_pickle, ego_frame_state, frame_command, frame_dict, lights, make_token,
    signal_states,
)
from data_pipelines.synthetic.simulation import SIM_DT, STEPS_PER_FRAME, SimulationResult, ego_snapshot_row
from data_pipelines.synthetic.world import path_of
from data_pipelines.two_stage import SCENE_PICKLE_DIR, SENSOR_DIR, scene_pickle_dict

STAGE_TWO_TOKEN_LENGTH = 17  # NAVSIM v2 synthetic scene tokens have 17 characters (navsim_data.md §6)
PLAN_HORIZON_FRAMES = 8  # the stage-1 plan covers 4 s = 8 frames (navhard_two_stage: num_future_frames 8)


@dataclass
class StageTwoRecord:
    """One written stage-2 scene (a row of the attributes CSV)."""

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
    """Current-frame indices c of the stage-1 scenes that get stage-2 scenes. The previous frame c - 1 gets its own
    (the devkit pairs both in ``reactive_all_mapping``), so c - 1 needs a full history and c enough log for replay."""
    first = cfg.num_history_frames
    last = num_frames - 1 - PLAN_HORIZON_FRAMES - cfg.num_future_frames
    candidates = list(range(first, last + 1))
    if not candidates or cfg.two_stage_scenes_per_log == 0:
        return []
    k = min(cfg.two_stage_scenes_per_log, len(candidates))
    return sorted(int(c) for c in rng.choice(candidates, size=k, replace=False))


def _simulate_stage_two(cfg: SyntheticWorldConfig, res: SimulationResult, start_frame: int,
                        offsets: tuple[float, float, float]) -> list[np.ndarray]:
    """Ego rows of the history (perturbation ramped in) and future (expert from the perturbed state) frames."""
    inst = res.instance
    steps = res.logged_steps(start_frame + 1 + cfg.num_future_frames)
    k_start = steps[start_frame]
    lat, lon, dh = offsets
    h = cfg.num_history_frames
    ego_rows = []
    for j in range(h):  # logged ego with the perturbation ramped in (weight 1 at the current frame)
        k = k_start - (h - 1 - j) * STEPS_PER_FRAME
        row = res.ego[k].copy()
        row[:3] = _offset_pose(res.ego[k], lat, lon, dh, (j + 1) / h)
        ego_rows.append(row)
    cur = ego_rows[-1]
    state = EgoState(x=float(cur[0]), y=float(cur[1]), heading=float(cur[2]), v=float(cur[3]), a=float(cur[4]))
    lanes = res.lane_ids[k_start]
    params = ExpertParams(v_des=max(float(np.max(res.ego[:, 3])), 1.0), headway=1.5,
                          lateral_amplitudes=(0.0, 0.0), lateral_periods=(10.0, 5.0), lateral_phases=(0.0, 0.0))
    driver = ExpertDriver(state, path_of(inst, lanes), params, stops=stop_lines_on(inst, lanes))
    for j in range(cfg.num_future_frames):  # other agents replay the log
        for sub in range(STEPS_PER_FRAME):
            k = k_start + j * STEPS_PER_FRAME + sub
            driver.step(SIM_DT, k * SIM_DT, _with_ego(res.snapshots[k], state), 0, res.cycle)
        ego_rows.append(np.array([state.x, state.y, state.heading, state.v, state.a, state.yaw_rate,
                                  state.lateral_accel, state.steer, 0.0]))
    return ego_rows


def _write_scene(cfg: SyntheticWorldConfig, res: SimulationResult, log_name: str, stage_one_token: str,
                 start_frame: int, requested: tuple[float, float, float], logged_tokens: list[str],
                 timestamps: list[int], out_dir: Path, renderer: FrameRenderer, area) -> StageTwoRecord:
    inst = res.instance
    route = res.route.roadblock_ids
    h = cfg.num_history_frames
    k_start = res.logged_steps(start_frame + 1)[start_frame]
    offsets = drivable_offsets(res.ego[k_start], *requested, area)
    token = make_token("stage2", log_name, stage_one_token, *requested, length=STAGE_TWO_TOKEN_LENGTH)
    frame_tokens = [make_token("stage2-frame", token, j, length=STAGE_TWO_TOKEN_LENGTH)
                    for j in range(h + cfg.num_future_frames)]
    frame_tokens[h - 1] = token
    frames, cameras, lidar = [], [], []
    sensor_root = out_dir / SENSOR_DIR
    ego_rows = _simulate_stage_two(cfg, res, start_frame, offsets)
    for j, row in enumerate(ego_rows):
        k = k_start + (j - (h - 1)) * STEPS_PER_FRAME
        t = k * SIM_DT
        ego = ego_frame_state(row)
        snap = res.snapshots[k]
        if j < h:  # history frames are rendered; future frames carry no cameras
            cams = renderer.write(sensor_root, log_name, frame_tokens[j], ego, snap, signal_states(res.cycle, t))
            cameras.append(renderer.rendered)
        else:
            cams = {}
            cameras.append(())
        lidar.append(cfg.lidar and j < h)
        frames.append(frame_dict(
            token=frame_tokens[j], frame_idx=start_frame - (h - 1) + j, timestamp=timestamps[start_frame - (h - 1) + j],
            log_name=log_name, log_token=make_token("log", log_name), scene_token=token,
            location=inst.location, roadblock_ids=[str(r) for r in route], ego=ego,
            traffic_lights=lights(inst, res.cycle, t), command=frame_command(inst, route, ego), cams=cams,
            prev_token=frame_tokens[j - 1] if j > 0 else None,
            next_token=frame_tokens[j + 1] if j + 1 < len(frame_tokens) else None,
            anns=annotations(ego, snap, cfg.annotation_radius_m, frame_tokens[j]),
        ))
    for frame, with_lidar in zip(frames, lidar):
        if with_lidar:
            write_pcd(sensor_root / frame["lidar_path"], sweep(frame["anns"]["gt_boxes"]))
    # The logged frame at the stage-2 start time: the last frame of the stage-1 window (4 + 8 frames), which the
    # devkit's loader matches against `corresponding_original_scene`; it is also that original scene's token.
    original = logged_tokens[start_frame]
    metadata = {
        "log_name": log_name, "scene_token": token, "map_name": inst.location, "initial_token": token,
        "num_history_frames": h, "num_future_frames": cfg.num_future_frames,
        "corresponding_original_scene": original, "corresponding_original_initial_token": original,
    }
    pkl_dir = out_dir / SCENE_PICKLE_DIR
    pkl_dir.mkdir(parents=True, exist_ok=True)
    dump_pickle(scene_pickle_dict(metadata, frames, cameras, lidar), pkl_dir / f"{token}.pkl")
    start = ego_rows[h - 1]
    pose = (float(start[0]), float(start[1]), float(start[2]))
    return StageTwoRecord(token, stage_one_token, log_name, inst.location, offsets, pose)


def write_stage_two(cfg: SyntheticWorldConfig, res: SimulationResult, log_name: str, chosen: list[int],
                    logged_tokens: list[str], timestamps: list[int], out_dir: Path,
                    renderer: FrameRenderer) -> tuple[list[StageTwoRecord], list[TwoStageLink]]:
    """Simulate and write the stage-2 scenes of the stage-1 scenes at frames `chosen` and of their previous
    frames; returns the CSV records and one devkit ``reactive_all_mapping`` link per chosen scene."""
    offsets = list(itertools.product(cfg.two_stage_lateral_offsets_m, cfg.two_stage_longitudinal_offsets_m,
                                     cfg.two_stage_heading_offsets_rad))
    area = drivable_area(res.instance)
    records, links = [], []
    for c in chosen:
        pairs = []
        for requested in offsets:
            now, previous = (_write_scene(cfg, res, log_name, logged_tokens[f], f + PLAN_HORIZON_FRAMES, requested,
                                          logged_tokens, timestamps, out_dir, renderer, area) for f in (c, c - 1))
            records += [now, previous]
            pairs.append((now.token, previous.token))
        links.append(TwoStageLink(logged_tokens[c], logged_tokens[c - 1], tuple(pairs)))
    return records, links


__all__ = ["write_stage_two", "stage_one_frames", "StageTwoRecord", "PLAN_HORIZON_FRAMES"]
