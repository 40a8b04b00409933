"""SceneLoader on the golden logs: tokens, filters across logs, agent inputs, bad input."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

from data_pipelines.errors import LogFileError, SensorFileError, SplitError, UnknownTokenError
from data_pipelines.paths import DataPaths
from data_pipelines.scene import SensorConfig
from data_pipelines.scene_filter import SceneFilter, write_split_yaml
from data_pipelines.scene_loader import SceneLoader
from tests.data_pipelines.data_helpers import write_camera_images, write_log


@pytest.fixture(scope="module")
def loader(golden_logs_dir):
    return SceneLoader(golden_logs_dir, None, SceneFilter(frame_interval=1))


def test_tokens_match_golden_scenes(loader, golden_scenes):
    assert len(loader) == 140
    per_log = loader.get_tokens_list_per_log()
    assert per_log == {name: entry["tokens"] for name, entry in golden_scenes["logs"].items()}
    assert loader.tokens == [t for name in sorted(per_log) for t in per_log[name]]
    token = loader.tokens[10]
    assert token in loader and loader.get_log_name(token) in per_log


def test_default_filter_gives_non_overlapping_windows(golden_logs_dir, golden_scenes):
    loader = SceneLoader(golden_logs_dir)  # interval None: 20 frames hold one 14-frame window
    assert sorted(loader.tokens) == sorted(e["tokens"][0] for e in golden_scenes["logs"].values())


def test_max_scenes_stops_across_logs(golden_logs_dir, loader):
    limited = SceneLoader(golden_logs_dir, None, SceneFilter(frame_interval=1, max_scenes=9))
    assert limited.tokens == loader.tokens[:9]
    assert len(limited.get_tokens_list_per_log()) == 2


def test_log_names_and_tokens(golden_logs_dir, loader, caplog):
    per_log = loader.get_tokens_list_per_log()
    names = sorted(per_log)[3:5]
    by_log = SceneLoader(golden_logs_dir, None, SceneFilter(frame_interval=1, log_names=names + ["missing_log"]))
    assert by_log.tokens == per_log[names[0]] + per_log[names[1]]
    assert by_log.missing_log_names == ["missing_log"]
    wanted = [loader.tokens[5], loader.tokens[77], "ffffffffffffffff"]
    with caplog.at_level(logging.WARNING, logger="data_pipelines.scene_loader"):
        by_token = SceneLoader(golden_logs_dir, None, SceneFilter(frame_interval=1, tokens=wanted))
    assert by_token.tokens == wanted[:2]
    assert by_token.missing_tokens == ["ffffffffffffffff"] and "ffffffffffffffff" in caplog.text
    with pytest.raises(SplitError, match="tokens"):
        SceneLoader(golden_logs_dir, None, SceneFilter(frame_interval=1, tokens=wanted), strict=True)


def test_agent_input_from_token_is_float32_and_matches_scene(loader):
    token = loader.tokens[33]
    agent_input = loader.get_agent_input_from_token(token)
    scene_input = loader.get_scene_from_token(token).get_agent_input()
    assert len(agent_input.ego_statuses) == 4
    for status, reference in zip(agent_input.ego_statuses, scene_input.ego_statuses):
        for name in ("ego_pose", "ego_velocity", "ego_acceleration"):
            assert getattr(status, name).dtype == np.float32
            assert getattr(reference, name).dtype == np.float64
            np.testing.assert_allclose(getattr(status, name), getattr(reference, name), atol=1e-4)


def test_scene_from_token_and_map_provider(golden_logs_dir, loader):
    token = loader.tokens[0]
    scene = loader.get_scene_from_token(token)
    assert scene.token == token and scene.map_api is None
    requested = []
    with_maps = SceneLoader(golden_logs_dir, None, SceneFilter(max_scenes=1), map_provider=requested.append)
    with_maps.get_scene_from_token(with_maps.tokens[0])
    assert requested == [scene.scene_metadata.map_name]
    sentinel = object()
    assert loader.get_scene_from_token(token, map_api=sentinel).map_api is sentinel


def test_sensors_from_blobs(golden_logs_dir, golden_logs, tmp_path):
    token_loader = SceneLoader(golden_logs_dir, tmp_path, SceneFilter(max_scenes=1),
                               SensorConfig.front_three_current())
    frames = token_loader.get_scene_frame_dicts(token_loader.tokens[0])
    write_camera_images(tmp_path, [frames[3]], ["CAM_F0", "CAM_L0", "CAM_R0"])
    cameras = token_loader.get_agent_input_from_token(token_loader.tokens[0]).cameras
    assert cameras[3].cam_f0.image.shape == (16, 24, 3) and cameras[2].cam_f0.image is None
    bare = token_loader.get_scene_from_token(token_loader.tokens[0], sensor_config=SensorConfig.build_no_sensors())
    assert bare.current_frame.cameras.cam_f0.image is None


def test_missing_sensor_files_are_found_before_any_scene_is_read(golden_logs_dir, tmp_path):
    sensors = SceneLoader(golden_logs_dir, tmp_path, SceneFilter(max_scenes=2), SensorConfig.front_three_current())
    frames = [sensors.get_scene_frame_dicts(t)[3] for t in sensors.tokens]  # the current frames (4 history)
    write_camera_images(tmp_path, frames, ["CAM_F0", "CAM_L0", "CAM_R0"])
    sensors.check_sensor_files()  # every file the config reads exists
    missing = tmp_path / frames[1]["cams"]["CAM_L0"]["data_path"]
    missing.unlink()
    assert sensors.missing_sensor_files() == [(frames[1]["token"], "CAM_L0", missing)]
    with pytest.raises(SensorFileError, match="CAM_L0") as info:
        sensors.check_sensor_files()
    assert info.value.path == missing and info.value.token == frames[1]["token"] and "1 sensor file" in str(info.value)


def test_unknown_token(loader):
    with pytest.raises(UnknownTokenError, match="'0000000000000000'"):
        loader.get_scene_from_token("0000000000000000")
    with pytest.raises(UnknownTokenError):
        loader.get_agent_input_from_token("0000000000000000")


def test_no_scenes_is_an_error(golden_logs_dir, tmp_path):
    with pytest.raises(SplitError, match="no scenes selected"):
        SceneLoader(golden_logs_dir, None, SceneFilter(tokens=["nothing"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SplitError, match="0 log files"):
        SceneLoader(tmp_path / "empty")
    with pytest.raises(LogFileError, match="does not exist"):
        SceneLoader(tmp_path / "absent")


def test_corrupt_log_in_folder_names_the_file(golden_logs, tmp_path):
    name, frames = next(iter(golden_logs.items()))
    write_log(tmp_path / f"{name}.pkl", frames)
    broken = copy.deepcopy(frames)
    del broken[7]["ego_dynamic_state"]
    write_log(tmp_path / "zz_broken.pkl", broken)
    with pytest.raises(LogFileError, match="zz_broken.pkl, frame 7, key 'ego_dynamic_state'"):
        SceneLoader(tmp_path)
    assert len(SceneLoader(tmp_path, None, SceneFilter(log_names=[name]))) == 1  # not read when filtered out


def test_from_split_with_data_paths(golden_dir, tmp_path, loader):
    scene_filter = SceneFilter(frame_interval=1, tokens=loader.tokens[:3])
    split_path = write_split_yaml(tmp_path, "tiny", scene_filter, "synthetic_public")
    split_loader = SceneLoader.from_split(split_path, DataPaths.from_env(golden_dir, environ={}))
    assert split_loader.tokens == loader.tokens[:3]
    assert split_loader.sensor_blobs_path == golden_dir / "sensor_blobs" / "synthetic_public"


@pytest.fixture()
def logs_with_one_bad(golden_logs_dir, golden_logs, tmp_path):
    """Three golden logs; the second has a NaN ego position in frame 5, the third is not a pickle."""
    names = sorted(golden_logs)[:3]
    folder = tmp_path / "logs"
    write_log(folder / f"{names[0]}.pkl", golden_logs[names[0]])
    frames = copy.deepcopy(golden_logs[names[1]])
    frames[5]["ego2global_translation"] = np.array([np.nan, 0.0, 0.0])
    write_log(folder / f"{names[1]}.pkl", frames)
    (folder / f"{names[2]}.pkl").write_bytes(b"not a pickle")
    return folder, names


def test_an_unreadable_log_is_an_error_by_default(logs_with_one_bad):
    folder, names = logs_with_one_bad
    with pytest.raises(LogFileError, match=rf"{names[1]}\.pkl, frame 5, key 'ego2global_translation'"):
        SceneLoader(folder, None, SceneFilter(frame_interval=1))


def test_unreadable_logs_can_be_recorded_and_the_rest_loaded(logs_with_one_bad, loader):
    folder, names = logs_with_one_bad
    per_log = loader.get_tokens_list_per_log()
    wanted = per_log[names[0]][:2] + per_log[names[1]][:2] + per_log[names[2]][:1]
    recording = SceneLoader(folder, None, SceneFilter(frame_interval=1, tokens=wanted), record_unreadable_logs=True)
    assert recording.tokens == per_log[names[0]][:2]
    assert sorted(recording.unreadable_logs) == names[1:]
    assert recording.unreadable_tokens[:2] == per_log[names[1]][:2]  # read without validation
    assert recording.get_log_name(per_log[names[1]][0]) == names[1]
    with pytest.raises(LogFileError, match=rf"{names[1]}\.pkl, frame 5"):
        recording.get_scene_frame_dicts(per_log[names[1]][0])
    lost = per_log[names[2]][0]  # its log is no pickle: the token is attributed to the unreadable logs
    with pytest.raises(LogFileError, match=rf"scene {lost} is in none of the readable logs; unreadable: .*"
                                           rf"{names[2]}\.pkl: cannot unpickle"):
        recording.get_agent_input_from_token(lost)
    assert recording.missing_tokens == []
