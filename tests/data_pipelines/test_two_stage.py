"""Stage-2 scenes in the devkit's format: a fixture written the way navsim@main's ``Scene.save_to_disk`` lays out
its pickle (built here by hand from a golden log window), read back by the project's reader, and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from data_pipelines.errors import DataError
from data_pipelines.geometry import quaternion_to_yaw
from data_pipelines.scene import Scene, SensorConfig
from data_pipelines.scene_filter import Split, TwoStageLink, load_split, write_split_yaml, SceneFilter
from data_pipelines.two_stage import TwoStageDataError, load_two_stage, missing_first_stage_tokens

HISTORY = 4
STAGE_TWO_TOKEN = "0123456789abcdef0"
PREVIOUS_STAGE_TWO_TOKEN = "0123456789abcdef1"


def _saved_frame(frame: dict, with_front_camera: bool) -> dict:
    """A frame as save_to_disk stores it: Frame fields with asdict'ed annotations / ego status, camera_dict keyed by
    the Cameras field names ({} for a camera without image)."""
    anns = frame["anns"]
    camera_dict = {name: {} for name in ("cam_f0", "cam_l0", "cam_l1", "cam_l2", "cam_r0", "cam_r1", "cam_r2",
                                         "cam_b0")}
    if with_front_camera:
        cam = frame["cams"]["CAM_F0"]
        camera_dict["cam_f0"] = {"data_path": cam["data_path"], "sensor2lidar_rotation": cam["sensor2lidar_rotation"],
                                 "sensor2lidar_translation": cam["sensor2lidar_translation"],
                                 "cam_intrinsic": cam["cam_intrinsic"], "distortion": cam["distortion"]}
    dynamic = frame["ego_dynamic_state"]
    return {
        "token": frame["token"],
        "timestamp": frame["timestamp"],
        "roadblock_ids": frame["roadblock_ids"],
        "traffic_lights": frame["traffic_lights"],
        "annotations": {"boxes": anns["gt_boxes"], "names": anns["gt_names"], "velocity_3d": anns["gt_velocity_3d"],
                        "instance_tokens": anns["instance_tokens"], "track_tokens": anns["track_tokens"]},
        "ego_status": {
            "ego_pose": np.array([frame["ego2global_translation"][0], frame["ego2global_translation"][1],
                                  quaternion_to_yaw(frame["ego2global_rotation"])], dtype=np.float64),
            "ego_velocity": np.array(dynamic[:2], dtype=np.float32),
            "ego_acceleration": np.array(dynamic[2:], dtype=np.float32),
            "driving_command": frame["driving_command"],
            "in_global_frame": True,
        },
        "lidar_path": None,
        "camera_dict": camera_dict,
    }


@pytest.fixture()
def devkit_folder(tmp_path, golden_logs):
    """<root>/navhard_like_two_stage/synthetic_scene_pickles/<token>.pkl from a 14-frame golden window whose
    current frame is relabelled as a stage-2 scene, plus a split YAML linking it."""
    log_name, frames = next(iter(golden_logs.items()))
    window = [dict(f) for f in frames[:14]]
    window[HISTORY - 1] = dict(window[HISTORY - 1], token=STAGE_TWO_TOKEN)
    metadata = {"log_name": log_name, "scene_token": STAGE_TWO_TOKEN, "map_name": window[3]["map_location"],
                "initial_token": STAGE_TWO_TOKEN, "num_history_frames": HISTORY, "num_future_frames": 10,
                "corresponding_original_scene": frames[3]["token"],
                "corresponding_original_initial_token": frames[3]["token"]}
    scene = {"scene_metadata": metadata,
             "frames": [_saved_frame(f, with_front_camera=i < HISTORY) for i, f in enumerate(window)],
             "extended_traffic_light_data": None, "extended_detections_tracks": None}
    root = tmp_path / "navhard_like_two_stage"
    (root / "synthetic_scene_pickles").mkdir(parents=True)
    with open(root / "synthetic_scene_pickles" / f"{STAGE_TWO_TOKEN}.pkl", "wb") as f:
        pickle.dump(scene, f, protocol=pickle.HIGHEST_PROTOCOL)
    link = TwoStageLink(frames[3]["token"], frames[2]["token"], ((STAGE_TWO_TOKEN,),))
    split_path = write_split_yaml(tmp_path / "splits", "navhard_like_two_stage",
                                  SceneFilter(num_future_frames=8, frame_interval=1, include_synthetic_scenes=True,
                                              reactive_synthetic_initial_tokens=[STAGE_TWO_TOKEN]),
                                  "synthetic_public", reactive_all_mapping=[link])
    return root, load_split(split_path), window


def test_reads_a_devkit_scene_pickle(devkit_folder, golden_logs_dir):
    root, split, window = devkit_folder
    data = load_two_stage(root, split)
    assert data.first_stage_tokens == [split.reactive_all_mapping[0].first_stage_token]
    assert data.second_stage_tokens(data.first_stage_tokens[0]) == [STAGE_TWO_TOKEN]
    assert data.scene(STAGE_TWO_TOKEN).offsets is None  # not recorded outside the project's CSV
    assert data.metadata(STAGE_TWO_TOKEN)["corresponding_original_scene"] == split.reactive_all_mapping[0].first_stage_token
    stage_two = Scene.from_frame_dicts(data.frame_dicts(STAGE_TWO_TOKEN), data.num_history_frames)
    logged = Scene.from_frame_dicts(window, HISTORY)
    assert stage_two.token == STAGE_TWO_TOKEN and stage_two.scene_metadata.log_name == logged.scene_metadata.log_name
    np.testing.assert_allclose(stage_two.get_future_trajectory().poses, logged.get_future_trajectory().poses,
                               atol=1e-9)
    np.testing.assert_allclose(data.initial_pose(STAGE_TWO_TOKEN), logged.current_frame.ego_status.ego_pose)
    for ours, theirs in zip(stage_two.frames, logged.frames):
        np.testing.assert_allclose(ours.annotations.boxes, theirs.annotations.boxes)
        assert ours.annotations.track_tokens == theirs.annotations.track_tokens
        assert ours.traffic_lights == theirs.traffic_lights
        np.testing.assert_allclose(ours.ego_status.ego_velocity, theirs.ego_status.ego_velocity, rtol=1e-6)


def test_camera_the_scene_does_not_carry_is_a_clear_error(devkit_folder, golden_logs_dir):
    root, split, _ = devkit_folder
    data = load_two_stage(root, split)
    with pytest.raises(DataError, match="CAM_B0") as info:
        Scene.from_frame_dicts(data.frame_dicts(STAGE_TWO_TOKEN), HISTORY, golden_logs_dir,
                               SensorConfig(cam_b0=[HISTORY - 1]))
    assert STAGE_TWO_TOKEN in str(info.value)
    with pytest.raises(DataError, match="lidar"):
        Scene.from_frame_dicts(data.frame_dicts(STAGE_TWO_TOKEN), HISTORY, golden_logs_dir,
                               SensorConfig(lidar_pc=[HISTORY - 1]))


def test_metadata_outside_the_devkit_fields_is_rejected(devkit_folder):
    root, split, _ = devkit_folder
    path = root / "synthetic_scene_pickles" / f"{STAGE_TWO_TOKEN}.pkl"
    with open(path, "rb") as f:
        scene = pickle.load(f)
    scene["scene_metadata"]["offsets"] = {"lateral_m": 1.0}  # the devkit's SceneMetadata(**...) would fail
    with open(path, "wb") as f:
        pickle.dump(scene, f)
    with pytest.raises(TwoStageDataError, match="SceneMetadata") as info:
        load_two_stage(root, split)
    assert info.value.field == "scene_metadata.offsets" and info.value.token == STAGE_TWO_TOKEN


def test_linked_scene_without_pickle_names_the_token(devkit_folder):
    root, split, _ = devkit_folder
    link = split.reactive_all_mapping[0]
    broken = Split(split.name, split.data_split, split.scene_filter, reactive_all_mapping=[
        TwoStageLink(link.first_stage_token, link.previous_token, ((STAGE_TWO_TOKEN, PREVIOUS_STAGE_TWO_TOKEN),))])
    with pytest.raises(TwoStageDataError, match="scene pickle is missing") as info:
        load_two_stage(root, broken)
    assert info.value.token == PREVIOUS_STAGE_TWO_TOKEN


def test_missing_first_stage_tokens(devkit_folder):
    root, split, _ = devkit_folder
    data = load_two_stage(root, split)
    assert missing_first_stage_tokens(data, data.first_stage_tokens) == []
    assert missing_first_stage_tokens(data, []) == data.first_stage_tokens


def _damage_frame(root, frame_index: int, damage) -> None:
    path = root / "synthetic_scene_pickles" / f"{STAGE_TWO_TOKEN}.pkl"
    with open(path, "rb") as f:
        scene = pickle.load(f)
    damage(scene["frames"][frame_index])
    with open(path, "wb") as f:
        pickle.dump(scene, f)


@pytest.mark.parametrize("frame_index, field, damage", [
    (HISTORY - 1, "ego_status.ego_pose", lambda frame: frame["ego_status"]["ego_pose"].__setitem__(2, np.nan)),
    (6, "ego_status.ego_pose", lambda frame: frame["ego_status"]["ego_pose"].__setitem__(0, np.inf)),
    (2, "ego_status.ego_velocity/ego_acceleration",
     lambda frame: frame["ego_status"].update(ego_velocity=np.array([np.nan, 0.0], dtype=np.float32))),
    (8, "annotations.velocity_3d", lambda frame: frame["annotations"].update(
        velocity_3d=np.full_like(np.asarray(frame["annotations"]["velocity_3d"], dtype=np.float64), np.nan))),
    (9, "annotations.boxes", lambda frame: frame["annotations"].update(
        boxes=np.full_like(np.asarray(frame["annotations"]["boxes"], dtype=np.float64), np.inf))),
    (0, "camera_dict.cam_f0.cam_intrinsic",
     lambda frame: frame["camera_dict"]["cam_f0"].update(cam_intrinsic=np.full((3, 3), np.nan))),
])
def test_stage_two_frames_get_the_log_validation(devkit_folder, frame_index, field, damage):
    root, split, _ = devkit_folder
    _damage_frame(root, frame_index, damage)
    with pytest.raises(TwoStageDataError, match=rf"{STAGE_TWO_TOKEN}\.pkl \(scene {STAGE_TWO_TOKEN}\), field "
                                                rf"'{field}': frame {frame_index}: .*NaN or inf") as info:
        load_two_stage(root, split)
    assert (info.value.field, info.value.token) == (field, STAGE_TWO_TOKEN)
