"""SceneDataset items and batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_pipelines.errors import UnknownTokenError
from data_pipelines.scene import SensorConfig
from data_pipelines.scene_filter import SceneFilter
from data_pipelines.scene_loader import SceneLoader
from data_pipelines.torch_dataset import SceneDataset, agent_input_nbytes, collate_scenes
from tests.data_pipelines.data_helpers import write_camera_images


@pytest.fixture(scope="module")
def loader(golden_logs_dir):
    return SceneLoader(golden_logs_dir, None, SceneFilter(frame_interval=1, max_scenes=10))


def test_items(loader, golden_trajectories):
    dataset = SceneDataset(loader)
    assert len(dataset) == 10
    item = dataset[4]
    assert item["token"] == loader.tokens[4]
    assert item["target_poses"].shape == (8, 3) and item["target_poses"].dtype == np.float32
    np.testing.assert_allclose(item["target_poses"], golden_trajectories[item["token"]]["human"], atol=1e-4)
    assert len(item["agent_input"].ego_statuses) == 4
    assert item["agent_input"].ego_statuses[0].ego_pose.dtype == np.float32
    assert SceneDataset(loader, num_target_poses=4)[0]["target_poses"].shape == (4, 3)


def test_collate_and_dataloader(loader):
    dataset = SceneDataset(loader, tokens=loader.tokens[:5])
    batches = list(DataLoader(dataset, batch_size=2, collate_fn=collate_scenes))
    assert [len(b["tokens"]) for b in batches] == [2, 2, 1]
    first = batches[0]
    assert first["tokens"] == loader.tokens[:2]
    assert first["target_poses"].shape == (2, 8, 3) and first["target_poses"].dtype == np.float32
    assert len(first["agent_inputs"]) == 2 and not isinstance(first["agent_inputs"], torch.Tensor)
    with pytest.raises(UnknownTokenError):
        SceneDataset(loader, tokens=["nope"])


def test_cameras_and_optional_cache(golden_logs_dir, tmp_path):
    loader = SceneLoader(golden_logs_dir, tmp_path, SceneFilter(max_scenes=2), SensorConfig.front_three_current())
    for token in loader.tokens:
        write_camera_images(tmp_path, [loader.get_scene_frame_dicts(token)[3]], ["CAM_F0", "CAM_L0", "CAM_R0"])
    uncached = SceneDataset(loader)
    assert uncached[0]["agent_input"] is not uncached[0]["agent_input"]
    cached = SceneDataset(loader, cache_agent_inputs=True)
    first = cached[1]["agent_input"]
    assert cached[1]["agent_input"] is first
    assert first.cameras[3].cam_f0.image.dtype == np.uint8 and first.cameras[3].cam_b0.image is None


def test_cache_is_bounded_least_recently_used_first(golden_logs_dir, tmp_path):
    loader = SceneLoader(golden_logs_dir, tmp_path, SceneFilter(max_scenes=3), SensorConfig.front_three_current())
    for token in loader.tokens:
        write_camera_images(tmp_path, [loader.get_scene_frame_dicts(token)[3]], ["CAM_F0", "CAM_L0", "CAM_R0"])
    one_scene = agent_input_nbytes(loader.get_agent_input_from_token(loader.tokens[0]))
    assert one_scene > 0
    dataset = SceneDataset(loader, cache_agent_inputs=True, cache_max_mb=2.5 * one_scene / 2**20)
    first, second = dataset.agent_input(loader.tokens[0]), dataset.agent_input(loader.tokens[1])
    assert dataset.agent_input(loader.tokens[0]) is first  # a hit makes tokens[0] the most recently used
    dataset.agent_input(loader.tokens[2])  # evicts tokens[1], the least recently used
    assert dataset.cache_bytes == 2 * one_scene
    assert dataset.agent_input(loader.tokens[0]) is first
    assert dataset.agent_input(loader.tokens[1]) is not second
    ego = dataset.ego_agent_input(loader.tokens[0])
    assert agent_input_nbytes(ego) == 0
    np.testing.assert_array_equal(ego.ego_statuses[-1].ego_pose, first.ego_statuses[-1].ego_pose)


def _front_camera_mean(item):
    """A picklable transform standing in for decode-side preprocessing (runs in the DataLoader worker)."""
    image = item["agent_input"].cameras[3].cam_f0.image
    return {**item, "front_mean": float(image.mean()), "worker": torch.utils.data.get_worker_info() is not None}


def test_dataloader_workers_decode_and_transform(golden_logs_dir, tmp_path):
    loader = SceneLoader(golden_logs_dir, tmp_path, SceneFilter(max_scenes=4), SensorConfig.front_three_current())
    for token in loader.tokens:
        write_camera_images(tmp_path, [loader.get_scene_frame_dicts(token)[3]], ["CAM_F0", "CAM_L0", "CAM_R0"])
    dataset = SceneDataset(loader, transform=_front_camera_mean)
    in_process = [dataset[i] for i in range(len(dataset))]
    assert not any(item["worker"] for item in in_process)
    batches = list(DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=list))
    from_workers = [item for batch in batches for item in batch]
    assert all(item["worker"] for item in from_workers)
    assert [i["token"] for i in from_workers] == [i["token"] for i in in_process]
    assert [i["front_mean"] for i in from_workers] == [i["front_mean"] for i in in_process]


def test_shards_partition_the_logs(golden_logs_dir):
    full = SceneLoader(golden_logs_dir, None, SceneFilter(frame_interval=1))
    shards = [SceneLoader(golden_logs_dir, None, SceneFilter(frame_interval=1), shard=(i, 3)) for i in range(3)]
    logs = [set(s.get_tokens_list_per_log()) for s in shards]
    assert all(logs) and set.union(*logs) == set(full.get_tokens_list_per_log())
    assert sum(len(s) for s in shards) == len(full) and len(set().union(*(s.tokens for s in shards))) == len(full)
    assert not logs[0] & logs[1] and not logs[1] & logs[2]
    with pytest.raises(Exception, match="shard"):
        SceneLoader(golden_logs_dir, None, SceneFilter(), shard=(3, 3))
