"""The camera renderer and the camera rig written to the logs."""

from __future__ import annotations

import pickle

import numpy as np
from PIL import Image

from data_pipelines.camera_geometry import PinholeCamera
from data_pipelines.synthetic.renderer import (
    ASPHALT, Box3D, CameraRenderer, camera_rig, object_boxes, pinhole, rasterize_ground,
)


def _renderers(inst, names=("CAM_F0", "CAM_B0"), width=128, height=72):
    texture = rasterize_ground(inst, 0.25)
    rig = camera_rig(width, height)
    return {n: CameraRenderer(pinhole(rig[n], width, height), texture, width, height) for n in names}, rig


def _road_pose(inst):
    lane = next(iter(inst.lanes.values()))
    p0, p1 = lane.centerline[10], lane.centerline[11]
    return np.array([p0[0], p0[1], np.arctan2(p1[1] - p0[1], p1[0] - p0[0])])


def test_object_ahead_appears_in_front_camera_only(tiny_instances):
    inst = next(i for i in tiny_instances.values() if i.kind == "straight")
    renderers, rig = _renderers(inst)
    pose = _road_pose(inst)
    box = object_boxes("vehicle", np.array([15.0, 0.0]), 0.0, np.array([4.6, 1.95, 1.6]), 1)
    for name, renderer in renderers.items():
        empty = np.asarray(renderer.render(pose, []), dtype=np.int32)
        with_box = np.asarray(renderer.render(pose, box), dtype=np.int32)
        changed = np.abs(with_box - empty).sum(axis=-1) > 30
        if name == "CAM_F0":
            uv, valid = renderer.camera.project_ego_points(np.array([[15.0 - 4.6 / 2, 0.0, 0.5]]))
            assert valid[0]
            u, v = np.floor(uv[0]).astype(int)
            assert changed[v, u], "the vehicle's rear face must cover the pixel its centre projects to"
            assert changed.sum() > 20
        else:
            assert not changed.any()


def test_visible_faces_are_the_ones_facing_the_camera(tiny_instances):
    # A traffic-light head 12 m ahead, 1.5 m up, facing us with a red "back" face and a green "front" face:
    # only red may show.
    inst = next(i for i in tiny_instances.values() if i.kind == "straight")
    renderers, _ = _renderers(inst, ("CAM_F0",))
    head = Box3D(np.array([14.0, 0.0, 1.6]), np.array([0.5, 1.5, 1.5]), 0.0, (30, 30, 30),
                 face_colors={"back": (255, 30, 30), "front": (40, 255, 80)})
    img = np.asarray(renderers["CAM_F0"].render(_road_pose(inst), [head]), dtype=np.int32)
    red = (img[..., 0] > 200) & (img[..., 1] < 80)
    green = (img[..., 1] > 200) & (img[..., 0] < 80)
    assert red.sum() > 10 and green.sum() == 0
    # Seen from behind (box turned around), the green face shows instead.
    turned = Box3D(head.center, head.size, np.pi, head.color, head.face_colors)
    img = np.asarray(renderers["CAM_F0"].render(_road_pose(inst), [turned]), dtype=np.int32)
    assert ((img[..., 1] > 200) & (img[..., 0] < 80)).sum() > 10 and ((img[..., 0] > 200) & (img[..., 1] < 80)).sum() == 0


def test_road_is_below_the_horizon(tiny_instances):
    inst = next(i for i in tiny_instances.values() if i.kind == "straight")
    renderers, _ = _renderers(inst, ("CAM_F0",))
    img = np.asarray(renderers["CAM_F0"].render(_road_pose(inst), []), dtype=np.int32)
    bottom_centre = img[-3, 64]
    assert np.abs(bottom_centre - np.array(ASPHALT)).max() < 12
    assert img[2, 64, 2] > img[2, 64, 0]  # sky is blue-ish


def test_logged_extrinsics_match_the_renderer(tiny_dataset):
    path = sorted(tiny_dataset.root.glob("navsim_logs/synthetic_test/*.pkl"))[0]
    with open(path, "rb") as f:
        frame = pickle.load(f)[0]
    w, h = tiny_dataset.config["image_width"], tiny_dataset.config["image_height"]
    rig = camera_rig(w, h)
    for name in ("CAM_F0", "CAM_L0", "CAM_R0"):
        logged = PinholeCamera.from_frame(frame, name, w, h)
        used = pinhole(rig[name], w, h)
        assert np.allclose(logged.camera_to_ego, used.camera_to_ego)
        image = Image.open(tiny_dataset.root / "sensor_blobs" / "synthetic_test" / frame["cams"][name]["data_path"])
        assert image.size == (w, h) and image.mode == "RGB"
    # The three front cameras look forward-left, forward, forward-right.
    yaws = {n: np.arctan2(*PinholeCamera.from_frame(frame, n).camera_to_ego[[1, 0], 2]) for n in ("CAM_L0", "CAM_F0", "CAM_R0")}
    assert yaws["CAM_L0"] > 0.5 and abs(yaws["CAM_F0"]) < 1e-9 and yaws["CAM_R0"] < -0.5


def test_box_corners():
    box = Box3D(np.array([1.0, 2.0, 0.5]), np.array([4.0, 2.0, 1.0]), np.pi / 2, (0, 0, 0))
    corners = box.corners()
    assert np.allclose(corners.mean(axis=0), [1.0, 2.0, 0.5])
    assert np.allclose(np.ptp(corners, axis=0), [2.0, 4.0, 1.0])
