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
            # Other agents replay the log: the same tracks as the logged frame at that time.
            assert set(current["anns"]["track_tokens"]) == set(planned_end["anns"]["track_tokens"])
            meta = two_stage.metadata(token)
            assert meta["corresponding_original_scene"] == first and meta["initial_token"] == token
            scene = Scene.from_frame_dicts(frame_dicts, h, two_stage.sensor_blobs_path, SensorConfig.front_three_current())
            assert scene.token == token
            assert scene.get_future_trajectory().poses.shape == (8, 3)
            image = scene.get_agent_input().cameras[-1].cam_f0.image
            assert image.shape == (tiny_config.image_height, tiny_config.image_width, 3)


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
    with pytest.raises(TwoStageDataError, match="synthetic_scenes_attributes.csv"):
        load_two_stage(tmp_path)
    (tmp_path / "synthetic_scenes_attributes.csv").write_text("synthetic_scene_token,log_name\nabc,x\n")
    with pytest.raises(TwoStageDataError, match="missing columns"):
        load_two_stage(tmp_path)
