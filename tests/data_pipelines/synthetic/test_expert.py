"""The logged expert: lane keeping, plausible dynamics, stopping for red lights; agents do not overlap the ego."""

from __future__ import annotations

import pickle

import numpy as np
from shapely.geometry import Point, Polygon

from data_pipelines.geometry import quaternion_to_yaw
from data_pipelines.synthetic.config import build_config
from data_pipelines.synthetic.expert import EGO_LENGTH, EGO_REAR_AXLE_TO_CENTER, EGO_WIDTH
from data_pipelines.synthetic.generate import build_instances, log_name_for, plan_logs
from data_pipelines.synthetic.log_writer import make_token
from data_pipelines.synthetic.simulation import simulate_log
from data_pipelines.synthetic.world import RED, path_of


def _frames(tiny_dataset):
    for path in sorted(tiny_dataset.root.glob("navsim_logs/*/*.pkl")):
        with open(path, "rb") as f:
            yield pickle.load(f)


def _instance_of(frame, instances):
    ids = set(frame["roadblock_ids"])
    return next(i for i in instances.values() if i.location == frame["map_location"]
                and ids <= {str(r) for r in list(i.roadblocks) + list(i.roadblock_connectors)})


def test_ego_stays_in_its_lanes(tiny_dataset, tiny_instances):
    inside, total = 0, 0
    for frames in _frames(tiny_dataset):
        inst = _instance_of(frames[0], tiny_instances)
        lanes = [inst.lanes[l].polygon for l in inst.lanes] + [c.polygon for c in inst.connectors.values()]
        drivable = [rb.polygon for rb in inst.roadblocks.values()] + [p for _, p in inst.intersections]
        for frame in frames:
            xy = frame["ego2global_translation"][:2]
            yaw = quaternion_to_yaw(frame["ego2global_rotation"])
            centre = xy + EGO_REAR_AXLE_TO_CENTER * np.array([np.cos(yaw), np.sin(yaw)])
            total += 1
            inside += any(p.contains(Point(*centre)) for p in lanes)
            corners = _footprint(centre, yaw)
            assert any(p.buffer(0.3).contains(Point(*c)) for c in corners for p in drivable)
    assert inside / total > 0.95


def _footprint(centre, yaw):
    c, s = np.cos(yaw), np.sin(yaw)
    half = np.array([[EGO_LENGTH / 2, EGO_WIDTH / 2], [EGO_LENGTH / 2, -EGO_WIDTH / 2],
                     [-EGO_LENGTH / 2, -EGO_WIDTH / 2], [-EGO_LENGTH / 2, EGO_WIDTH / 2]])
    return centre + half @ np.array([[c, s], [-s, c]])


def test_dynamics_are_plausible(tiny_dataset):
    for frames in _frames(tiny_dataset):
        v = np.array([f["ego_dynamic_state"][0] for f in frames])
        a = np.array([f["ego_dynamic_state"][2] for f in frames])
        assert np.all(v >= 0) and np.all(v < 25)
        assert np.all(np.abs(a) <= 7.5)
        xy = np.array([f["ego2global_translation"][:2] for f in frames])
        travelled = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        assert np.allclose(travelled, 0.25 * (v[1:] + v[:-1]), atol=0.6)  # positions integrate the logged speed


def test_no_annotated_object_overlaps_the_ego(tiny_dataset):
    for frames in _frames(tiny_dataset):
        for frame in frames:
            ego = Polygon(_footprint(np.array([EGO_REAR_AXLE_TO_CENTER, 0.0]), 0.0))
            for box in frame["anns"]["gt_boxes"]:
                obj = Polygon(_box(box))
                assert ego.intersection(obj).area < 0.5


def _box(box):
    x, y, _, length, width, _, yaw = box
    c, s = np.cos(yaw), np.sin(yaw)
    half = np.array([[length / 2, width / 2], [length / 2, -width / 2], [-length / 2, -width / 2], [-length / 2, width / 2]])
    return np.array([x, y]) + half @ np.array([[c, s], [-s, c]])


def test_expert_stops_at_red_lights():
    cfg = build_config("tiny", {"layout_kinds": ("junction",), "frames_per_log": 30})
    instances = {(i.location, i.index): i for insts in build_instances(cfg).values() for i in insts}
    crossed_on_red = 0
    checked = 0
    for job in plan_logs(cfg):
        inst = instances[(job.location, job.instance)]
        rng = np.random.default_rng(list(job.seed))
        name = log_name_for(job, rng)
        res = simulate_log(inst, cfg, rng, lambda *p: make_token(name, *p))
        connector = inst.connectors[res.route.lane_ids[1]]
        lane_end = float(path_of(inst, res.route.lane_ids[:1], extend=0.0).length)  # the red-light polygon starts here
        path = path_of(inst, res.route.lane_ids)
        s = path.project(res.ego[:, :2])[0] + 4.049  # front bumper
        for k in range(1, len(s)):
            if s[k - 1] < lane_end <= s[k]:
                checked += 1
                crossed_on_red += res.cycle.state(connector.signal_group, k * 0.1) == RED
    assert checked >= 1
    assert crossed_on_red == 0
