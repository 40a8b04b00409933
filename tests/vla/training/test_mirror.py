"""vla.training.mirror: scenes reflected left to right, and the dataset wrapper that adds them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from data_pipelines.configuration import ConfigError, load_config
from data_pipelines.types import DRIVING_COMMANDS, AgentInput, Camera, Cameras, EgoStatus, Lidar
from vla.configuration_dipole import BevSettings
from vla.modeling_dipole import BEV_TARGET_KEY
from vla.training import TrainConfig
from vla.training.data import SceneBatcher, item_ego_inputs, item_targets, item_tokens
from vla.training.mirror import (MIRROR_TOKEN_SUFFIX, MirroredItems, mirror_agent_input, mirror_item,
                                 mirror_poses)
from vla.training.stages.il import ImitationStage, turn_command_repeats

from tests.vla.training.helpers import generate_tiny_world, make_items, split_items


def one_hot(command: str) -> np.ndarray:
    return np.eye(len(DRIVING_COMMANDS))[DRIVING_COMMANDS.index(command)]


def turning_input(rng: np.random.Generator) -> AgentInput:
    """Two frames of a left turn with distinct left / front / right images and a lidar sweep."""
    status = [EgoStatus(ego_pose=np.array([-2.0, -0.3, -0.1]), ego_velocity=np.array([5.0, 0.2]),
                        ego_acceleration=np.array([0.5, -0.4]), driving_command=one_hot("left")),
              EgoStatus(ego_pose=np.zeros(3), ego_velocity=np.array([5.0, 0.4]),
                        ego_acceleration=np.array([0.3, 0.6]), driving_command=one_hot("left"))]
    cameras = []
    for _ in status:
        cams = {name: Camera(image=rng.integers(0, 255, size=(4, 6, 3), dtype=np.uint8), intrinsics=np.eye(3) * k,
                             camera_path=name)
                for k, name in enumerate(("cam_l0", "cam_f0", "cam_r0"), start=1)}
        cameras.append(Cameras(**cams))
    lidars = [Lidar(rng.normal(size=(6, 5))) for _ in status]
    return AgentInput(ego_statuses=status, cameras=cameras, lidars=lidars)


def test_a_mirrored_scene_swaps_sides_and_mirroring_twice_gives_it_back():
    original = turning_input(np.random.default_rng(0))
    mirrored = mirror_agent_input(original)
    now, was = mirrored.ego_statuses[0], original.ego_statuses[0]
    np.testing.assert_array_equal(now.ego_pose, [-2.0, 0.3, 0.1])
    np.testing.assert_array_equal(now.ego_velocity, [5.0, -0.2])
    np.testing.assert_array_equal(now.ego_acceleration, [0.5, 0.4])
    assert now.command == "right" and was.command == "left"
    cams, source = mirrored.cameras[-1], original.cameras[-1]
    np.testing.assert_array_equal(cams.cam_r0.image, source.cam_l0.image[:, ::-1])
    np.testing.assert_array_equal(cams.cam_l0.image, source.cam_r0.image[:, ::-1])
    np.testing.assert_array_equal(cams.cam_f0.image, source.cam_f0.image[:, ::-1])
    np.testing.assert_array_equal(cams.cam_r0.intrinsics, source.cam_r0.intrinsics)  # the slot's own calibration
    assert cams.cam_r0.camera_path == "cam_l0" and cams.cam_b0.image is None
    np.testing.assert_array_equal(mirrored.lidars[0].lidar_pc[1], -original.lidars[0].lidar_pc[1])
    np.testing.assert_array_equal(mirrored.lidars[0].lidar_pc[[0, 2]], original.lidars[0].lidar_pc[[0, 2]])

    back = mirror_agent_input(mirrored)
    for a, b in zip(back.ego_statuses, original.ego_statuses):
        for name in ("ego_pose", "ego_velocity", "ego_acceleration", "driving_command"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for a, b in zip(back.cameras, original.cameras):
        for name in ("cam_l0", "cam_f0", "cam_r0"):
            np.testing.assert_array_equal(getattr(a, name).image, getattr(b, name).image)
    np.testing.assert_array_equal(back.lidars[1].lidar_pc, original.lidars[1].lidar_pc)


def test_mirrored_poses_keep_x_and_negate_y_and_heading():
    poses = np.array([[1.0, 0.5, 0.1], [2.0, 1.5, 0.3]])
    np.testing.assert_array_equal(mirror_poses(poses), [[1.0, -0.5, -0.1], [2.0, -1.5, -0.3]])
    np.testing.assert_array_equal(poses[0], [1.0, 0.5, 0.1])  # the input is untouched


def test_reversing_the_bev_columns_reflects_the_cells_about_the_ego_axis():
    settings = BevSettings(cells=8, cell_size_m=4.0, behind_m=6.0)
    centers = settings.cell_centers().reshape(settings.cells, settings.cells, 2)
    np.testing.assert_allclose(centers[:, ::-1, 0], centers[..., 0])
    np.testing.assert_allclose(centers[:, ::-1, 1], -centers[..., 1])
    target = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    item = {"token": "t", "agent_input": turning_input(np.random.default_rng(1)),
            "target_poses": np.zeros((8, 3), np.float32), BEV_TARGET_KEY: target}
    np.testing.assert_array_equal(mirror_item(item)[BEV_TARGET_KEY], target[..., ::-1])


def _check_halves(mirrored: MirroredItems, base, sources=None) -> None:
    n = len(base)
    sources = list(range(n)) if sources is None else sources
    assert len(mirrored) == n + len(sources)
    tokens = item_tokens(mirrored)
    assert tokens[:n] == item_tokens(base)
    assert tokens[n:] == [item_tokens(base)[i] + MIRROR_TOKEN_SUFFIX for i in sources]
    targets, ego = item_targets(mirrored), item_ego_inputs(mirrored)
    for index in (0, n - 1, n, len(mirrored) - 1):
        item = mirrored[index]
        assert item["token"] == tokens[index]
        np.testing.assert_allclose(item["target_poses"], targets[index])
        pose = item["agent_input"].ego_statuses[-1].ego_pose
        np.testing.assert_array_equal(pose, ego[index].ego_statuses[-1].ego_pose)
    np.testing.assert_allclose(targets[n:], mirror_poses(targets[sources]))
    with pytest.raises(IndexError):
        mirrored[len(mirrored)]


def test_mirrored_items_of_a_plain_list_and_a_scene_dataset_agree_by_index_and_token(tmp_path):
    _check_halves(MirroredItems(make_items(3)), make_items(3))
    _check_halves(MirroredItems(make_items(4), [1, 3]), make_items(4), [1, 3])
    with pytest.raises(IndexError, match="mirrored scene indices"):
        MirroredItems(make_items(2), [2])
    _, _, dataset = split_items(generate_tiny_world(tmp_path / "world"), "synthetic_train", max_scenes=4)
    mirrored = MirroredItems(dataset)
    _check_halves(mirrored, dataset)
    assert mirrored.loader is dataset.loader  # batchers read the shard through it
    turn = [t.ego_statuses[-1].command for t in item_ego_inputs(mirrored)]
    swap = {"left": "right", "right": "left"}
    assert turn[len(dataset):] == [swap.get(c, c) for c in turn[:len(dataset)]]
    assert turn_command_repeats(mirrored, 2).shape == (len(mirrored),)
    batch = SceneBatcher(mirrored, processor=lambda inputs, **_: {}, device="cpu", seed=0).stream_indices(0, 64)
    assert (batch >= len(dataset)).any() and (batch < len(dataset)).any()  # the stream draws from both halves


def test_the_imitation_stage_adds_the_mirrored_scenes_only_when_asked():
    items = make_items(4)
    items[2]["agent_input"].ego_statuses[-1].driving_command = one_hot("right")

    def stage(mode: str) -> ImitationStage:
        cfg = load_config(TrainConfig, None, [f"il.mirror_augmentation={mode}"])
        return ImitationStage(SimpleNamespace(cfg=cfg, train_items=items))

    every = stage("all").training_items(SimpleNamespace())
    assert len(every) == 8 and stage("all").fingerprint()["il.mirror_augmentation"] == "all"  # resumes keep it
    no_turn = stage("no_turn").training_items(SimpleNamespace())
    assert no_turn.tokens[4:] == [items[i]["token"] + MIRROR_TOKEN_SUFFIX for i in (0, 1, 3)]
    assert stage("off").training_items(SimpleNamespace()) is items
    assert "il.mirror_augmentation" not in stage("off").fingerprint()
    with pytest.raises(ConfigError):
        load_config(TrainConfig, None, ["il.mirror_augmentation=sometimes"])
