"""Splits: devkit YAMLs, disjoint logs, every token loadable by the scene loader, maps loadable."""

from __future__ import annotations

import pytest

from data_pipelines.maps.nuplan_map import load_map
from data_pipelines.scene import SensorConfig
from data_pipelines.scene_filter import load_split
from data_pipelines.scene_loader import SceneLoader
from data_pipelines.synthetic.map_writer import LOCATIONS


@pytest.fixture(scope="module")
def splits(tiny_dataset):
    return {name: load_split(path) for name, path in tiny_dataset.splits.items()}


def test_splits_are_disjoint_and_non_empty(splits):
    assert {"synthetic_train", "synthetic_test", "synthetic_test_two_stage"} <= set(splits)
    one_stage = {name: s for name, s in splits.items() if not s.is_two_stage}
    logs = {name: set(s.scene_filter.log_names) for name, s in one_stage.items()}
    for name in logs:
        assert logs[name], name
        for other in logs:
            if other != name:
                assert logs[name].isdisjoint(logs[other]), (name, other)
    for s in one_stage.values():
        f = s.scene_filter
        assert (f.num_history_frames, f.num_future_frames, f.frame_interval) == (4, 10, 1)
    # The two-stage split (as navhard_two_stage): test logs only, 4 + 8 frames, its stage-1 tokens are test scenes.
    two_stage = splits["synthetic_test_two_stage"]
    assert two_stage.data_split == splits["synthetic_test"].data_split
    assert set(two_stage.scene_filter.log_names) <= logs["synthetic_test"]
    assert set(two_stage.scene_filter.tokens) <= set(splits["synthetic_test"].scene_filter.tokens)
    assert (two_stage.scene_filter.num_history_frames, two_stage.scene_filter.num_future_frames) == (4, 8)


def test_scene_loader_loads_every_split_token(tiny_dataset, splits):
    for name, split in splits.items():
        root = tiny_dataset.root
        loader = SceneLoader(root / "navsim_logs" / split.data_split, root / "sensor_blobs" / split.data_split,
                             split.scene_filter, sensor_config=SensorConfig.build_no_sensors())
        assert sorted(loader.tokens) == sorted(split.scene_filter.tokens), name
        for token in loader.tokens:
            scene = loader.get_scene_from_token(token)
            assert scene.get_future_trajectory().poses.shape == (8, 3)
        cams = SceneLoader(root / "navsim_logs" / split.data_split, root / "sensor_blobs" / split.data_split,
                           split.scene_filter, sensor_config=SensorConfig.front_three_current())
        agent_input = cams.get_agent_input_from_token(cams.tokens[0])
        image = agent_input.cameras[-1].cam_f0.image
        assert image.shape == (tiny_dataset.config["image_height"], tiny_dataset.config["image_width"], 3)


def test_map_reader_loads_every_location(tiny_dataset, tiny_instances):
    for location in LOCATIONS:
        nuplan_map = load_map(tiny_dataset.root / "maps", location)
        assert nuplan_map is not None
    # Every route roadblock of every log exists in its location's map.
    import pickle

    for path in sorted(tiny_dataset.root.glob("navsim_logs/*/*.pkl")):
        with open(path, "rb") as f:
            frame = pickle.load(f)[0]
        ids = {str(k) for inst in tiny_instances.values() if inst.location == frame["map_location"]
               for k in list(inst.roadblocks) + list(inst.roadblock_connectors)}
        assert set(frame["roadblock_ids"]) <= ids
