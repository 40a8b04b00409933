"""Output format: frame dicts and GPKG maps have the schema of the golden (official-format) files."""

from __future__ import annotations

import pickle

import numpy as np
import pyogrio
from pyogrio import raw

from data_pipelines.geometry import quaternion_to_yaw
from data_pipelines.synthetic.map_writer import LOCATIONS
from data_pipelines.types import CAMERA_NAMES

GOLDEN_SCHEMA_LOCATION = "us-ma-boston"  # the golden map where every layer is populated


def _signature(value):
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape[1:] if value.ndim > 1 else value.ndim)
    if isinstance(value, dict):
        return {k: _signature(v) for k, v in value.items()}
    if isinstance(value, list):
        return ("list", _signature(value[0]) if value else None)
    if isinstance(value, tuple):
        return ("tuple",) + tuple(_signature(v) for v in value)
    return type(value).__name__


def _all_frames(root):
    for path in sorted(root.glob("navsim_logs/*/*.pkl")):
        with open(path, "rb") as f:
            yield path, pickle.load(f)


def _golden_signature(golden_frames):
    """Per key, the signature of the first golden frame where the value is not empty / None."""
    out = {}
    for frame in golden_frames:
        for key, value in frame.items():
            if key not in out or out[key] in ("NoneType", ("list", None)):
                out[key] = _signature(value)
    return out


def test_frame_dicts_match_golden_schema(tiny_dataset, golden_frames):
    golden = _golden_signature(golden_frames)
    for path, frames in _all_frames(tiny_dataset.root):
        assert len(frames) == tiny_dataset.config["frames_per_log"]
        for frame in frames:
            assert list(frame) == list(golden_frames[0]), path
            sig = _signature(frame)
            for key in golden:
                if key == "traffic_lights" and not frame["traffic_lights"]:
                    continue  # an empty list carries no element type
                if key in ("sample_prev", "sample_next") and frame[key] is None:
                    continue  # first / last frame of a log
                if key in ("occ_gt_final_path", "flow_gt_final_path"):
                    assert frame[key] is None
                    continue
                assert sig[key] == golden[key], (path, key)
            assert sorted(frame["cams"]) == sorted(CAMERA_NAMES)


def test_pickles_load_under_numpy_1(tiny_dataset):
    # NumPy >= 2 would write `numpy._core` globals that the devkit's NumPy 1.x cannot import.
    import pickletools

    paths = sorted(tiny_dataset.root.rglob("*.pkl"))
    assert any("synthetic_scene_pickles" in str(p) for p in paths)
    for path in paths:
        data = path.read_bytes()
        modules = {arg.split(" ")[0] for op, arg, _ in pickletools.genops(data) if op.name in ("GLOBAL", "STACK_GLOBAL")}
        assert modules <= {"numpy", "numpy.core.multiarray"}, (path, modules)


def test_frame_values_are_consistent(tiny_dataset):
    for _, frames in _all_frames(tiny_dataset.root):
        stamps = np.array([f["timestamp"] for f in frames])
        assert np.all(np.diff(stamps) == 500_000)
        assert len({f["token"] for f in frames}) == len(frames)
        for prev, frame in zip(frames, frames[1:]):
            assert frame["sample_prev"] == prev["token"] and prev["sample_next"] == frame["token"]
        for f in frames:
            assert len(f["token"]) == 16 and int(f["token"], 16) >= 0
            assert f["driving_command"].sum() == 1
            assert all(isinstance(r, str) for r in f["roadblock_ids"]) and f["roadblock_ids"]
            assert np.allclose(f["ego2global"][:3, 3], f["ego2global_translation"])
            assert np.allclose(f["can_bus"][:3], f["ego2global_translation"])
            yaw = quaternion_to_yaw(f["ego2global_rotation"])
            assert np.allclose(f["ego2global"][:2, 0], [np.cos(yaw), np.sin(yaw)])
            assert np.allclose(f["lidar2global"], f["ego2global"] @ f["lidar2ego"])
            anns = f["anns"]
            n = len(anns["gt_names"])
            assert anns["gt_boxes"].shape == (n, 7) and anns["gt_velocity_3d"].shape == (n, 3)
            assert len(anns["track_tokens"]) == n == len(set(anns["track_tokens"]))
            assert set(anns["gt_names"]) <= {"vehicle", "pedestrian", "bicycle", "traffic_cone", "barrier",
                                              "czone_sign", "generic_object"}
            for cam in f["cams"].values():
                assert (tiny_dataset.root / "sensor_blobs").glob(f"*/{cam['data_path']}")


def test_annotations_are_in_the_ego_frame(tiny_dataset):
    # A track seen in two consecutive frames: its global position from either frame's ego pose must agree with
    # its motion (velocity in the ego frame rotated to global, integrated over 0.5 s).
    checked = 0
    for _, frames in _all_frames(tiny_dataset.root):
        for a, b in zip(frames, frames[1:]):
            ga, gb = _global_boxes(a), _global_boxes(b)
            for track in set(ga) & set(gb):
                (pa, va), (pb, _) = ga[track], gb[track]
                if np.linalg.norm(va) > 1.0:
                    assert np.linalg.norm(pb - (pa + 0.5 * va)) < 0.5 * np.linalg.norm(va) * 0.5 + 0.3
                    checked += 1
    assert checked > 10


def _global_boxes(frame):
    yaw = quaternion_to_yaw(frame["ego2global_rotation"])
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s], [s, c]])
    origin = frame["ego2global_translation"][:2]
    anns = frame["anns"]
    return {t: (origin + rot @ box[:2], rot @ vel[:2])
            for t, box, vel in zip(anns["track_tokens"], anns["gt_boxes"], anns["gt_velocity_3d"])}


def _layer_schema(path):
    out = []
    for name, geometry_type in pyogrio.list_layers(path):
        info = pyogrio.read_info(path, layer=name)
        out.append((name, geometry_type, dict(zip(info["fields"], info["dtypes"]))))
    return out


def test_map_layers_match_golden_schema(tiny_dataset, golden_dir):
    golden = _layer_schema(golden_dir / "maps" / GOLDEN_SCHEMA_LOCATION / "9.12.1817" / "map.gpkg")
    all_ids = set()
    for location, spec in LOCATIONS.items():
        path = tiny_dataset.root / "maps" / location / spec["version"] / "map.gpkg"
        ours = _layer_schema(path)
        assert sorted(ours) == sorted(golden), location
        meta = raw.read(path, layer="meta")
        assert dict(zip(*meta[3])) ["projectedCoordSystem"] == f"EPSG:{spec['epsg']}"
        assert pyogrio.read_info(path, layer="lanes_polygons")["crs"] == f"EPSG:{spec['epsg']}"
        for name, _, _ in ours:
            if name == "meta":
                continue
            _, fids, _, _ = raw.read(path, layer=name, return_fids=True)
            assert all_ids.isdisjoint(fids.tolist()), (location, name)
            all_ids.update(fids.tolist())
        lanes = raw.read(path, layer="lanes_polygons", read_geometry=False)
        assert len(lanes[3][0]) > 0
        bounds = pyogrio.read_info(path, layer="lanes_polygons")["total_bounds"]
        assert min(abs(bounds[0]), abs(bounds[1])) > 1e5  # UTM-sized coordinates


def test_layouts_cover_every_kind(tiny_dataset, tiny_config):
    kinds = {inst["kind"] for insts in tiny_dataset.layouts.values() for inst in insts}
    assert kinds == set(tiny_config.layout_kinds)
    for insts in tiny_dataset.layouts.values():
        assert len(insts) == tiny_config.instances_per_location
