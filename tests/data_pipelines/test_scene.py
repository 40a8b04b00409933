"""Scenes: targets equal the official human trajectories; agent input frames, dtypes and sensors."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.errors import DataError, SensorFileError
from data_pipelines.geometry import absolute_to_relative_poses, quaternion_to_yaw
from data_pipelines.scene import (
    Scene,
    SensorConfig,
    build_agent_input,
    future_trajectory_from_frame_dicts,
    global_ego_pose,
)
from data_pipelines.scene_filter import SceneFilter, iter_scene_windows
from tests.data_pipelines.data_helpers import write_camera_images

GOLDEN_TOLERANCE_M = 1e-4  # brief: targets must equal the official human trajectories within 1e-4 m
NUM_HISTORY = 4


def _golden_windows(golden_logs):
    """All 140 golden scene windows: token -> frame dicts (interval 1, 4 + 10 frames)."""
    windows = {}
    for frames in golden_logs.values():
        windows.update(dict(iter_scene_windows(frames, SceneFilter(frame_interval=1))))
    return windows


@pytest.fixture(scope="module")
def golden_windows(golden_logs):
    return _golden_windows(golden_logs)


def test_targets_equal_official_human_trajectories(golden_windows, golden_trajectories):
    assert set(golden_windows) == set(golden_trajectories) and len(golden_trajectories) == 140
    for token, entry in golden_trajectories.items():
        scene = Scene.from_frame_dicts(golden_windows[token])
        target = scene.get_future_trajectory()
        human = np.asarray(entry["human"], dtype=np.float64)
        assert target.poses.shape == (8, 3) and target.poses.dtype == np.float64
        assert target.trajectory_sampling.num_poses == 8
        assert target.trajectory_sampling.interval_length == 0.5
        np.testing.assert_allclose(target.poses, human, atol=GOLDEN_TOLERANCE_M, rtol=0, err_msg=token)
        direct = future_trajectory_from_frame_dicts(golden_windows[token])
        np.testing.assert_array_equal(direct.poses, target.poses)


def test_scene_metadata_and_global_frames(golden_windows):
    token, frames = next(iter(golden_windows.items()))
    scene = Scene.from_frame_dicts(frames)
    meta = scene.scene_metadata
    assert scene.token == meta.initial_token == token == frames[3]["token"]
    assert meta.scene_token == frames[3]["scene_token"]  # nuPlan scene token, not the NAVSIM one
    assert meta.map_name == frames[3]["map_location"] and meta.log_name == frames[3]["log_name"]
    assert (meta.num_history_frames, meta.num_future_frames) == (4, 10)
    assert len(scene.frames) == 14 and scene.current_frame.token == token
    for frame, frame_dict in zip(scene.frames, frames):
        status = frame.ego_status
        assert status.in_global_frame
        assert status.ego_pose[0] == frame_dict["ego2global_translation"][0]
        assert status.ego_pose[2] == pytest.approx(quaternion_to_yaw(frame_dict["ego2global_rotation"]))
        np.testing.assert_array_equal(status.ego_velocity, frame_dict["ego_dynamic_state"][:2])
        assert frame.annotations.boxes.shape == (len(frame_dict["anns"]["gt_names"]), 7)
        assert frame.cameras.cam_f0.image is None and frame.lidar.lidar_pc is None


def test_history_trajectory_ends_at_origin(golden_windows):
    scene = Scene.from_frame_dicts(next(iter(golden_windows.values())))
    history = scene.get_history_trajectory()
    assert history.poses.shape == (4, 3)
    np.testing.assert_allclose(history.poses[-1], 0.0, atol=1e-12)
    assert scene.get_history_trajectory(2).poses.shape == (2, 3)
    with pytest.raises(ValueError, match="future"):
        scene.get_future_trajectory(11)


def test_agent_input_is_relative_to_current_rear_axle(golden_windows):
    """Moving scenes: poses relative to frame 3, velocity/acceleration/command as each frame logged."""
    checked = 0
    for frames in list(golden_windows.values())[::10]:
        scene = Scene.from_frame_dicts(frames)
        agent_input = scene.get_agent_input()
        assert len(agent_input.ego_statuses) == NUM_HISTORY
        global_poses = np.stack([global_ego_pose(f) for f in frames[:NUM_HISTORY]])
        expected = absolute_to_relative_poses(global_poses[-1], global_poses)
        for index, status in enumerate(agent_input.ego_statuses):
            assert not status.in_global_frame
            assert status.ego_pose.dtype == np.float64 and status.ego_velocity.dtype == np.float64
            np.testing.assert_allclose(status.ego_pose, expected[index], atol=1e-9)
            np.testing.assert_array_equal(status.ego_velocity, frames[index]["ego_dynamic_state"][:2])
            np.testing.assert_array_equal(status.ego_acceleration, frames[index]["ego_dynamic_state"][2:])
            np.testing.assert_array_equal(status.driving_command, frames[index]["driving_command"])
        np.testing.assert_array_equal(agent_input.ego_statuses[-1].ego_pose, np.zeros(3))
        checked += 1
        loader_style = build_agent_input(frames)
        for status, reference in zip(loader_style.ego_statuses, agent_input.ego_statuses):
            assert status.ego_pose.dtype == np.float32 and status.ego_velocity.dtype == np.float32
            np.testing.assert_allclose(status.ego_pose, reference.ego_pose, atol=1e-4)
    assert checked >= 10


def test_sensor_config_selection():
    config = SensorConfig(cam_f0=True, cam_l0=[3], lidar_pc=[0, 3])
    assert config.get_sensors_at_iteration(3) == ["cam_f0", "cam_l0", "lidar_pc"]
    assert config.get_sensors_at_iteration(1) == ["cam_f0"]
    assert SensorConfig.build_no_sensors().get_sensors_at_iteration(3) == []
    assert len(SensorConfig.build_all_sensors().get_sensors_at_iteration(9)) == 9
    front = SensorConfig.front_three_current()
    assert front.get_sensors_at_iteration(3) == ["cam_f0", "cam_l0", "cam_r0"]
    assert front.get_sensors_at_iteration(2) == []
    with pytest.raises(ValueError, match="cam_b0"):
        SensorConfig(cam_b0="yes")


def test_cameras_loaded_per_sensor_config(golden_windows, tmp_path):
    frames = next(iter(golden_windows.values()))
    written = write_camera_images(tmp_path, frames[:NUM_HISTORY], ["CAM_F0", "CAM_L0", "CAM_R0"])
    config = SensorConfig(cam_f0=[0, 1, 2, 3], cam_l0=[3], cam_r0=[3])
    agent_input = build_agent_input(frames, NUM_HISTORY, tmp_path, config)
    current = agent_input.cameras[3]
    for name in ("cam_f0", "cam_l0", "cam_r0"):
        camera = getattr(current, name)
        assert camera.image.dtype == np.uint8 and camera.image.shape == (16, 24, 3)
        np.testing.assert_array_equal(camera.image, written[(frames[3]["token"], name.upper())])
        assert camera.intrinsics.shape == (3, 3) and camera.sensor2lidar_rotation.shape == (3, 3)
        assert camera.camera_path == frames[3]["cams"][name.upper()]["data_path"]
    assert agent_input.cameras[0].cam_f0.image is not None and agent_input.cameras[0].cam_l0.image is None
    assert current.cam_b0.image is None and current.cam_b0.intrinsics is None
    scene = Scene.from_frame_dicts(frames, NUM_HISTORY, tmp_path, SensorConfig.front_three_current())
    np.testing.assert_array_equal(scene.get_agent_input().cameras[3].cam_l0.image, current.cam_l0.image)


def test_missing_sensor_file_names_path_and_camera(golden_windows, tmp_path):
    frames = next(iter(golden_windows.values()))
    with pytest.raises(SensorFileError, match="CAM_R0") as info:
        Scene.from_frame_dicts(frames, NUM_HISTORY, tmp_path, SensorConfig(cam_r0=[3]))
    assert frames[3]["token"] in str(info.value) and str(tmp_path) in str(info.value)
    with pytest.raises(DataError, match="no sensor_blobs_path"):
        build_agent_input(frames, NUM_HISTORY, None, SensorConfig(cam_f0=True))


def test_window_shorter_than_history_is_rejected(golden_windows):
    frames = next(iter(golden_windows.values()))
    with pytest.raises(ValueError, match="num_history_frames"):
        Scene.from_frame_dicts(frames[:2], NUM_HISTORY)
