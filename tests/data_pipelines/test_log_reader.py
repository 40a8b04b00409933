"""Log pickles and sensor blobs: golden logs read, broken input raises errors naming the file and key."""

from __future__ import annotations

import copy
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from data_pipelines.errors import LogFileError, SensorFileError
from data_pipelines.log_reader import (
    REQUIRED_FRAME_KEYS,
    find_log_files,
    load_camera_image,
    load_lidar_pcd,
    load_log,
    log_name_of,
)
from data_pipelines.types import CAMERA_NAMES
from tests.data_pipelines.data_helpers import write_log


def test_find_log_files_is_sorted_and_recursive(golden_logs_dir, tmp_path):
    files = find_log_files(golden_logs_dir)
    assert len(files) == 20 and files == sorted(files)
    nested = tmp_path / "a" / "b" / "x.pkl"
    write_log(nested, [])
    (tmp_path / "notes.txt").write_text("not a log")
    assert find_log_files(tmp_path) == [nested]
    with pytest.raises(LogFileError, match="does not exist"):
        find_log_files(tmp_path / "missing")


def test_golden_logs_load_with_devkit_keys(golden_logs, golden_scenes):
    assert set(golden_logs) == set(golden_scenes["logs"])
    for log_name, frames in golden_logs.items():
        assert len(frames) == 20
        timestamps = [f["timestamp"] for f in frames]
        assert np.all(np.diff(timestamps) == 500_000)  # 2 Hz, microseconds
        for frame in frames:
            assert frame["log_name"] == log_name
            assert set(REQUIRED_FRAME_KEYS) <= set(frame)
            assert set(CAMERA_NAMES) <= set(frame["cams"])
            assert frame["map_location"] == golden_scenes["logs"][log_name]["location"]


def test_log_name_is_the_file_stem():
    assert log_name_of("x/2021.05.12.22.00.38_veh-35_01008_01518.pkl") == "2021.05.12.22.00.38_veh-35_01008_01518"


@pytest.fixture()
def one_log(golden_logs):
    return copy.deepcopy(next(iter(golden_logs.values())))


def test_missing_file(tmp_path):
    with pytest.raises(LogFileError, match="does not exist") as info:
        load_log(tmp_path / "nope.pkl")
    assert info.value.path == tmp_path / "nope.pkl"


@pytest.mark.parametrize(
    "payload",
    [b"this is not a pickle", b"", pickle.dumps([{"token": "a"}])[:-5]],
    ids=["garbage", "empty", "truncated"],
)
def test_corrupt_pickles(tmp_path, payload):
    path = tmp_path / "bad.pkl"
    path.write_bytes(payload)
    with pytest.raises(LogFileError, match="cannot unpickle") as info:
        load_log(path)
    assert str(path) in str(info.value)


def test_wrong_top_level_type(tmp_path):
    path = write_log(tmp_path / "dict.pkl", {"token": "abc"})
    with pytest.raises(LogFileError, match="expected a list of frame dicts, got dict"):
        load_log(path)


def test_empty_log(tmp_path):
    with pytest.raises(LogFileError, match="no frames"):
        load_log(write_log(tmp_path / "empty.pkl", []))


def test_frame_not_a_dict(tmp_path, one_log):
    one_log[2] = ["not", "a", "dict"]
    with pytest.raises(LogFileError, match="frame 2: frame is a list"):
        load_log(write_log(tmp_path / "x.pkl", one_log))


@pytest.mark.parametrize("key", ["token", "ego2global_rotation", "ego_dynamic_state", "cams", "roadblock_ids"])
def test_missing_required_key(tmp_path, one_log, key):
    del one_log[5][key]
    with pytest.raises(LogFileError) as info:
        load_log(write_log(tmp_path / "x.pkl", one_log))
    assert info.value.key == key and info.value.frame_index == 5
    assert str(tmp_path / "x.pkl") in str(info.value) and f"'{key}'" in str(info.value)


def test_missing_camera_and_camera_field(tmp_path, one_log):
    del one_log[0]["cams"]["CAM_B0"]
    with pytest.raises(LogFileError, match="cams.CAM_B0"):
        load_log(write_log(tmp_path / "a.pkl", one_log))
    one_log[0]["cams"]["CAM_B0"] = dict(one_log[0]["cams"]["CAM_F0"])
    del one_log[0]["cams"]["CAM_F0"]["data_path"]
    with pytest.raises(LogFileError, match="cams.CAM_F0.data_path"):
        load_log(write_log(tmp_path / "b.pkl", one_log))


def test_malformed_values(tmp_path, one_log):
    frames = copy.deepcopy(one_log)
    frames[1]["ego2global_rotation"] = np.array([1.0, 0.0, 0.0])
    with pytest.raises(LogFileError, match="expected 4 numbers") as info:
        load_log(write_log(tmp_path / "a.pkl", frames))
    assert info.value.key == "ego2global_rotation"
    frames = copy.deepcopy(one_log)
    frames[1]["token"] = 1234
    with pytest.raises(LogFileError, match="expected a string"):
        load_log(write_log(tmp_path / "b.pkl", frames))
    frames = copy.deepcopy(one_log)
    frames[1]["timestamp"] = 1.5
    with pytest.raises(LogFileError, match="timestamp"):
        load_log(write_log(tmp_path / "c.pkl", frames))


def test_annotations_optional_but_validated(tmp_path, one_log):
    frames = copy.deepcopy(one_log)
    for frame in frames:
        del frame["anns"]
    assert len(load_log(write_log(tmp_path / "private.pkl", frames))) == 20
    frames = copy.deepcopy(one_log)
    frames[4]["anns"]["gt_boxes"] = frames[4]["anns"]["gt_boxes"][:, :6]
    with pytest.raises(LogFileError, match="anns.gt_boxes"):
        load_log(write_log(tmp_path / "bad.pkl", frames))
    frames = copy.deepcopy(one_log)
    del frames[4]["anns"]["track_tokens"]
    with pytest.raises(LogFileError, match="anns.track_tokens"):
        load_log(write_log(tmp_path / "bad2.pkl", frames))


def test_camera_image_is_uint8_rgb(tmp_path):
    pixels = np.zeros((10, 20, 3), dtype=np.uint8)
    pixels[:, :10, 0] = 255
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = load_camera_image(tmp_path / "a.png")
    assert image.dtype == np.uint8 and image.shape == (10, 20, 3)
    np.testing.assert_array_equal(image, pixels)
    Image.fromarray(pixels[..., 0]).save(tmp_path / "gray.jpg")
    assert load_camera_image(tmp_path / "gray.jpg").shape == (10, 20, 3)


def test_camera_image_errors(tmp_path):
    with pytest.raises(SensorFileError, match="does not exist") as info:
        load_camera_image(tmp_path / "x.jpg", token="t1", camera="CAM_F0")
    assert "CAM_F0" in str(info.value) and "t1" in str(info.value)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(SensorFileError, match="cannot decode"):
        load_camera_image(tmp_path / "bad.jpg")


PCD_FIELDS = ("x", "y", "z", "intensity", "ring", "lidar_id")


def _pcd_header(num_points: int, data: str, types: str = "F F F F F F") -> bytes:
    return (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        f"FIELDS {' '.join(PCD_FIELDS)}\nSIZE 4 4 4 4 4 4\nTYPE {types}\nCOUNT 1 1 1 1 1 1\n"
        f"WIDTH {num_points}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {num_points}\nDATA {data}\n"
    ).encode("ascii")


def test_lidar_pcd_binary_and_ascii(tmp_path):
    points = np.arange(18, dtype=np.float32).reshape(3, 6) * 0.5
    binary = tmp_path / "b.pcd"
    binary.write_bytes(_pcd_header(3, "binary") + points.tobytes())
    cloud = load_lidar_pcd(binary)
    assert cloud.dtype == np.float32 and cloud.shape == (6, 3)
    np.testing.assert_array_equal(cloud, points.T)
    ascii_file = tmp_path / "a.pcd"
    rows = "\n".join(" ".join(str(v) for v in row) for row in points)
    ascii_file.write_bytes(_pcd_header(3, "ascii") + rows.encode())
    np.testing.assert_allclose(load_lidar_pcd(ascii_file), points.T)


def test_lidar_pcd_errors(tmp_path):
    with pytest.raises(SensorFileError, match="does not exist"):
        load_lidar_pcd(tmp_path / "none.pcd")
    broken = tmp_path / "broken.pcd"
    broken.write_bytes(_pcd_header(3, "binary") + struct.pack("<f", 1.0))
    with pytest.raises(SensorFileError, match="malformed PCD"):
        load_lidar_pcd(broken)


@pytest.mark.parametrize("key, position", [
    ("ego2global_translation", 0), ("ego2global_rotation", 2), ("ego_dynamic_state", 1),
])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_ego_values_name_file_frame_and_key(tmp_path, one_log, key, position, bad):
    frames = copy.deepcopy(one_log)
    value = np.array(frames[3][key], dtype=np.float64)
    value[position] = bad
    frames[3][key] = value
    with pytest.raises(LogFileError, match=rf"bad\.pkl, frame 3, key '{key}': contains NaN or inf.*"
                                           rf"frame token {frames[3]['token']}") as info:
        load_log(write_log(tmp_path / "bad.pkl", frames))
    assert (info.value.frame_index, info.value.key) == (3, key)


def test_zero_quaternion_is_rejected(tmp_path, one_log):
    frames = copy.deepcopy(one_log)
    frames[0]["ego2global_rotation"] = np.zeros(4)
    with pytest.raises(LogFileError, match=r"frame 0, key 'ego2global_rotation': quaternion is all zeros"):
        load_log(write_log(tmp_path / "bad.pkl", frames))


def test_non_finite_annotation_box_names_the_box(tmp_path, one_log):
    frames = copy.deepcopy(one_log)
    index = next(i for i, frame in enumerate(frames) if len(frame["anns"]["gt_names"]) > 1)
    boxes = np.array(frames[index]["anns"]["gt_boxes"], dtype=np.float64)
    boxes[1, 6] = np.nan
    frames[index]["anns"]["gt_boxes"] = boxes
    track = frames[index]["anns"]["track_tokens"][1]
    with pytest.raises(LogFileError, match=rf"frame {index}, key 'anns.gt_boxes': box 1 \(track token '{track}'\) "
                                           r"contains NaN or inf"):
        load_log(write_log(tmp_path / "bad.pkl", frames))


def test_non_finite_object_velocity_names_the_object(tmp_path, one_log):
    frames = copy.deepcopy(one_log)
    index = next(i for i, frame in enumerate(frames) if len(frame["anns"]["gt_names"]) > 2)
    velocity = np.array(frames[index]["anns"]["gt_velocity_3d"], dtype=np.float64)
    velocity[2, 0] = np.inf
    frames[index]["anns"]["gt_velocity_3d"] = velocity
    track = frames[index]["anns"]["track_tokens"][2]
    with pytest.raises(LogFileError, match=rf"bad\.pkl, frame {index}, key 'anns.gt_velocity_3d': velocity 2 "
                                           rf"\(track token '{track}'\) contains NaN or inf") as info:
        load_log(write_log(tmp_path / "bad.pkl", frames))
    assert (info.value.frame_index, info.value.key) == (index, "anns.gt_velocity_3d")


@pytest.mark.parametrize("key, damage", [
    ("driving_command", lambda frame: frame.update(driving_command=np.array([0.0, np.nan, 0.0, 0.0]))),
    ("cams.CAM_L0.cam_intrinsic", lambda frame: frame["cams"]["CAM_L0"].update(
        cam_intrinsic=np.full((3, 3), np.nan))),
    ("cams.CAM_B0.sensor2lidar_translation", lambda frame: frame["cams"]["CAM_B0"].update(
        sensor2lidar_translation=np.array([0.0, np.inf, 1.0]))),
    ("cams.CAM_F0.distortion", lambda frame: frame["cams"]["CAM_F0"].update(distortion=["a", "b"])),
    ("traffic_lights", lambda frame: frame.update(traffic_lights=[(float("nan"), True)])),
])
def test_other_numeric_fields_must_be_finite(tmp_path, one_log, key, damage):
    frames = copy.deepcopy(one_log)
    damage(frames[5])
    with pytest.raises(LogFileError, match=rf"bad\.pkl, frame 5, key '{key}'") as info:
        load_log(write_log(tmp_path / "bad.pkl", frames))
    assert (info.value.frame_index, info.value.key) == (5, key)
