"""Two-stage data: reader round trip, links to stage-1 scenes, perturbed starts, loadable scenes."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

from data_pipelines.errors import UnknownTokenError
from data_pipelines.geometry import quaternion_to_yaw
from data_pipelines.scene import Scene, SensorConfig
from data_pipelines.scene_filter import load_split
from data_pipelines.two_stage import TwoStageDataError, load_two_stage


@pytest.fixture(scope="module")
def two_stage(tiny_dataset):
    assert tiny_dataset.two_stage_root is not None
    return load_two_stage(tiny_dataset.two_stage_root)


@pytest.fixture(scope="module")
def two_stage_split(tiny_dataset):
    return load_split(tiny_dataset.splits["synthetic_test_two_stage"])


def _logged_frames(tiny_dataset):
    out = {}
    for path in sorted(tiny_dataset.root.glob("navsim_logs/synthetic_test/*.pkl")):
        with open(path, "rb") as f:
            frames = pickle.load(f)
        for j, frame in enumerate(frames):
            out[frame["token"]] = (frames, j)
    return out


def test_reader_round_trip(tiny_dataset, tiny_config, two_stage):
    test_tokens = set(load_split(tiny_dataset.splits["synthetic_test"]).scene_filter.tokens)
    grid = list(itertools.product(tiny_config.two_stage_lateral_offsets_m, tiny_config.two_stage_longitudinal_offsets_m,
                                  tiny_config.two_stage_heading_offsets_rad))
    assert two_stage.first_stage_tokens and set(two_stage.first_stage_tokens) <= test_tokens
    assert len(two_stage.scenes) == tiny_dataset.num_stage_two_scenes == len(two_stage.first_stage_tokens) * len(grid)
    logged = _logged_frames(tiny_dataset)
    for first in two_stage.first_stage_tokens:
        seconds = two_stage.second_stage_tokens(first)
        assert len(seconds) == len(grid)
        frames, c = logged[first]
        planned_end = frames[c + 8]  # where a 4 s first-stage plan ends
        for token in seconds:
            assert len(token) == 17
            frame_dicts = two_stage.frame_dicts(token)
            h = two_stage.num_history_frames
            assert len(frame_dicts) == h + tiny_config.num_future_frames
            current = frame_dicts[h - 1]
            assert current["token"] == token
            pose = two_stage.initial_pose(token)
            assert np.allclose(pose[:2], current["ego2global_translation"][:2])
            # The start is the logged pose 4 s later, shifted by the scene's offsets in that pose's frame.
            lat, lon, dh = two_stage.scene(token).offsets
            yaw = quaternion_to_yaw(planned_end["ego2global_rotation"])
            expected = planned_end["ego2global_translation"][:2] + np.array(
                [np.cos(yaw) * lon - np.sin(yaw) * lat, np.sin(yaw) * lon + np.cos(yaw) * lat])
            assert np.allclose(pose[:2], expected, atol=1e-6)
            assert current["timestamp"] == planned_end["timestamp"]
            # Other agents replay the log: the same tracks as the logged frame at that time, annotated within the
            # radius around this scene's own ego, which is hypot(lat, lon) from the logged one: only tracks that
            # close to the radius may be in one frame and not the other.
            inner = tiny_config.annotation_radius_m - float(np.hypot(lat, lon)) - 1e-6
            stage_two, logged_tracks = _track_distances(current), _track_distances(planned_end)
            assert all(t in stage_two for t, d in logged_tracks.items() if d <= inner)
            assert all(d >= inner for t, d in stage_two.items() if t not in logged_tracks)
            meta = two_stage.metadata(token)
            assert meta["corresponding_original_scene"] == planned_end["token"] and meta["initial_token"] == token
            scene = Scene.from_frame_dicts(frame_dicts, h, two_stage.sensor_blobs_path, SensorConfig.front_three_current())
            assert scene.token == token
            assert scene.get_future_trajectory().poses.shape == (8, 3)
            image = scene.get_agent_input().cameras[-1].cam_f0.image
            assert image.shape == (tiny_config.image_height, tiny_config.image_width, 3)


def _track_distances(frame: dict) -> dict:
    """{track token: distance of its box from the frame's ego} (boxes are in the ego frame)."""
    boxes = np.asarray(frame["anns"]["gt_boxes"], dtype=np.float64).reshape(-1, 7)
    return dict(zip(frame["anns"]["track_tokens"], np.hypot(boxes[:, 0], boxes[:, 1])))


def test_split_links_match_the_attributes_csv(tiny_dataset, two_stage, two_stage_split):
    """The devkit-shaped split (reactive_all_mapping) and the project's CSV give the same stage-1 -> stage-2 links;
    the split's stage-1 scenes are each chosen scene and its previous frame."""
    from_split = load_two_stage(tiny_dataset.two_stage_root, two_stage_split)
    assert from_split.second_stage == {first: two_stage.second_stage[first] for first in from_split.first_stage_tokens}
    assert set(from_split.first_stage_tokens) == set(two_stage.first_stage_tokens)
    logged = _logged_frames(tiny_dataset)
    for link in two_stage_split.reactive_all_mapping:
        frames, c = logged[link.first_stage_token]
        assert frames[c - 1]["token"] == link.previous_token
        assert len(link.second_stage_pairs) == 1 and all(len(pair) == 2 for pair in link.second_stage_pairs)
    scene_filter = two_stage_split.scene_filter
    assert scene_filter.include_synthetic_scenes and scene_filter.num_future_frames == 8
    assert set(scene_filter.reactive_synthetic_initial_tokens) == set(two_stage.scenes)
    assert set(scene_filter.tokens) == set(two_stage.first_stage_tokens)


def _devkit_scene_metadata_cls():
    """A stand-in with the field names of navsim@main SceneMetadata (the devkit calls SceneMetadata(**metadata))."""
    from dataclasses import make_dataclass

    names = ["log_name", "scene_token", "map_name", "initial_token", "num_history_frames", "num_future_frames"]
    optional = [("corresponding_original_scene", str, None), ("corresponding_original_initial_token", str, None)]
    return make_dataclass("SceneMetadata", [(n, object) for n in names] + optional)


def test_scene_pickles_follow_the_devkit_loader(tiny_dataset, two_stage_split):
    """What navsim@main's SceneLoader(include_synthetic_scenes=True) does with the folder: build SceneMetadata,
    EgoStatus and Annotations from the pickle's dicts by keyword, key the scene by its file stem = initial_token,
    and keep it when its corresponding_original_scene is the last frame of a loaded stage-1 window."""
    from data_pipelines.scene_filter import iter_scene_windows
    from data_pipelines.two_stage import ANNOTATION_KEYS, METADATA_FIELDS, SCENE_PICKLE_DIR

    scene_metadata_cls = _devkit_scene_metadata_cls()
    scene_filter = two_stage_split.scene_filter
    final_frame_tokens = set()
    for path in sorted(tiny_dataset.root.glob("navsim_logs/synthetic_test/*.pkl")):
        if path.stem not in scene_filter.log_names:
            continue
        with open(path, "rb") as f:
            frames = pickle.load(f)
        final_frame_tokens |= {w[-1]["token"] for _, w in iter_scene_windows(frames, scene_filter)}
    pickles = sorted((tiny_dataset.two_stage_root / SCENE_PICKLE_DIR).glob("*.pkl"))
    assert pickles
    for path in pickles:
        with open(path, "rb") as f:
            data = pickle.load(f)
        assert set(data) == {"scene_metadata", "frames", "extended_traffic_light_data", "extended_detections_tracks"}
        assert tuple(data["scene_metadata"]) == METADATA_FIELDS
        metadata = scene_metadata_cls(**data["scene_metadata"])
        assert metadata.initial_token == path.stem == metadata.scene_token
        assert metadata.corresponding_original_scene in final_frame_tokens
        assert metadata.initial_token in scene_filter.reactive_synthetic_initial_tokens
        for index, frame in enumerate(data["frames"]):
            assert set(frame) == {"token", "timestamp", "roadblock_ids", "traffic_lights", "annotations",
                                  "ego_status", "lidar_path", "camera_dict"}
            assert set(frame["ego_status"]) == {"ego_pose", "ego_velocity", "ego_acceleration", "driving_command",
                                                "in_global_frame"}
            assert frame["ego_status"]["in_global_frame"] is True
            assert frame["ego_status"]["ego_pose"].dtype == np.float64
            assert frame["ego_status"]["ego_velocity"].dtype == np.float32
            assert set(frame["annotations"]) == set(ANNOTATION_KEYS)
            assert len({len(v) for v in frame["annotations"].values()}) == 1  # Annotations.__post_init__
            assert set(frame["camera_dict"]) == {"cam_f0", "cam_l0", "cam_l1", "cam_l2", "cam_r0", "cam_r1",
                                                 "cam_r2", "cam_b0"}
            for name, entry in frame["camera_dict"].items():
                if entry:
                    assert index < metadata.num_history_frames
                    assert set(entry) == {"data_path", "sensor2lidar_rotation", "sensor2lidar_translation",
                                          "cam_intrinsic", "distortion"}
                    assert (tiny_dataset.two_stage_root / "sensor_blobs" / entry["data_path"]).is_file()
            assert frame["lidar_path"] is None  # no point clouds in this preset


def test_history_approaches_the_perturbed_state(two_stage):
    token = two_stage.second_stage_tokens_all[0]
    scene = Scene.from_frame_dicts(two_stage.frame_dicts(token), two_stage.num_history_frames)
    history = scene.get_history_trajectory().poses
    assert np.allclose(history[-1], 0.0)
    assert np.all(np.diff(history[:, 0]) > 0) or np.allclose(history[:, 0], 0.0)  # driving towards the start


def test_reader_errors(two_stage, tmp_path):
    with pytest.raises(UnknownTokenError):
        two_stage.frame_dicts("0" * 17)
    with pytest.raises(UnknownTokenError):
        two_stage.second_stage_tokens("f" * 16)
    with pytest.raises(TwoStageDataError, match="synthetic_scene_pickles"):
        load_two_stage(tmp_path)
    (tmp_path / "synthetic_scene_pickles").mkdir()
    with pytest.raises(TwoStageDataError, match="no stage-1 links"):
        load_two_stage(tmp_path)
    (tmp_path / "synthetic_scenes_attributes.csv").write_text("synthetic_scene_token,log_name\nabc,x\n")
    with pytest.raises(TwoStageDataError, match="no stage-1 token") as info:
        load_two_stage(tmp_path)
    assert info.value.field == "first_stage_token" and info.value.token == "abc"
