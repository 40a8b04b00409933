"""DipoleProcessor: images, DP-VLA prompt, proprioception, trajectory representation and statistics."""

import copy
import math

import numpy as np
import pytest
import torch

from vla import DipoleProcessor, VLAInputError, compute_normalization_stats
from vla.processing_dipole import build_word_tokenizer, features_to_poses, poses_to_features
from vla.presets import build_config

from vla.testing import make_agent_input, make_target_poses


@pytest.fixture(scope="module")
def processor():
    config = build_config("tiny-florence2")
    rng = np.random.default_rng(0)
    config.normalization = compute_normalization_stats(make_target_poses(rng, 32)).to_dict()
    return DipoleProcessor.from_config(config)


def test_prompt_values_follow_dp_vla(processor):
    agent_input = make_agent_input(np.random.default_rng(1), speed=5.0, command=0)
    values = processor.prompt_values(agent_input)
    vel, acc = agent_input.ego_statuses[-1].ego_velocity, agent_input.ego_statuses[-1].ego_acceleration
    assert values["speed"] == pytest.approx(math.hypot(*vel))
    assert values["acceleration"] == pytest.approx(math.hypot(*acc))
    assert values["command"] == "left"
    dh = agent_input.ego_statuses[-1].ego_pose[2] - agent_input.ego_statuses[-2].ego_pose[2]
    assert values["steering"] == pytest.approx(math.atan(dh / 0.5 * 3.089 / vel[0]), rel=1e-5)
    agent_input.ego_statuses[-1].ego_velocity = np.array([0.1, 0.0])  # below 0.2 m/s: no steering
    assert processor.prompt_values(agent_input)["steering"] == 0.0
    forward = make_agent_input(np.random.default_rng(1), command=1)
    prompt = processor.build_prompt(forward)
    assert "navigation: straight" in prompt and prompt.count("\n") == 4


def test_batch_contents(processor):
    rng = np.random.default_rng(2)
    inputs = [make_agent_input(rng, image_shape=(30, 50, 3)), make_agent_input(rng, image_shape=(64, 64, 3))]
    poses = make_target_poses(rng, 2)
    batch = processor(inputs, poses)
    assert batch["pixel_values"].shape == (2, 3, 3, 64, 64) and batch["pixel_values"].dtype == torch.float32
    assert batch["input_ids"].shape == (2, 48) and batch["attention_mask"].dtype == torch.long
    assert int(batch["attention_mask"][0].sum()) < 48  # padded to the fixed prompt length
    assert (batch["input_ids"] != processor.tokenizer.unk_token_id).all()  # every prompt token is in the vocab
    assert batch["proprio"].shape == (2, 16)
    np.testing.assert_allclose(batch["proprio"][0, 9:12].numpy(), inputs[0].ego_statuses[-1].ego_pose, atol=1e-6)
    np.testing.assert_allclose(batch["proprio"][0, 12:14].numpy(), inputs[0].ego_statuses[-1].ego_velocity)
    assert batch["target_poses"].shape == (2, 8, 3)  # raw poses: the model normalises
    np.testing.assert_array_equal(batch["target_poses"].numpy(), poses.astype(np.float32))
    assert "actions" not in batch
    # ImageNet normalisation of a constant image
    const = make_agent_input(rng)
    for cam in ("cam_l0", "cam_f0", "cam_r0"):
        const.cameras[-1].get(cam).image = np.full((20, 20, 3), 255, dtype=np.uint8)
    pixels = processor([const])["pixel_values"][0, 0]
    expected = (1.0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(pixels.mean((-2, -1)), expected, atol=1e-4)


def test_trajectory_representation_round_trip():
    poses = torch.tensor([[1.0, 2.0, 3.1], [0.0, -1.0, -3.1], [5.0, 0.0, 0.0]])
    feats = poses_to_features(poses)
    assert torch.allclose(feats[:, 2] ** 2 + feats[:, 3] ** 2, torch.ones(3))
    assert torch.allclose(features_to_poses(feats), poses, atol=1e-6)


def test_normalisation_statistics():
    rng = np.random.default_rng(3)
    poses = make_target_poses(rng, 200)
    stats = compute_normalization_stats(poses)
    assert stats.action_mean.shape == (8, 4) and np.allclose(stats.action_mean[0], stats.action_mean[-1])
    feats = poses_to_features(torch.from_numpy(poses).double()).reshape(-1, 4).numpy()
    np.testing.assert_allclose(stats.action_mean[0], feats.mean(0), rtol=1e-5)
    per_step = compute_normalization_stats(poses, per_timestep=True)
    assert per_step.action_mean[-1, 0] > per_step.action_mean[0, 0]  # later poses are farther ahead
    constant = np.zeros((10, 8, 3), dtype=np.float32)
    assert (compute_normalization_stats(constant).action_std > 0).all()  # floored
    proprio = rng.normal(size=(50, 16))
    with_proprio = compute_normalization_stats(poses, proprio=proprio)
    np.testing.assert_allclose(with_proprio.proprio_mean, proprio.mean(0), rtol=1e-5)
    with pytest.raises(VLAInputError, match="target_poses"):
        compute_normalization_stats(np.full((2, 8, 3), np.nan))


def test_driving_command_in_proprio_is_one_hot_and_left_unscaled():
    config = build_config("tiny-florence2", {"processor": {"command_in_proprio": True}})
    settings = config.processor_settings
    assert config.proprio_dim == 20 and settings.one_hot_proprio_columns == (16, 17, 18, 19)
    assert build_config("tiny-florence2").proprio_dim == 16  # off by default: saved configs keep their width
    rng = np.random.default_rng(4)
    inputs = [make_agent_input(rng, command=c) for c in (0, 1, 1, 2)]
    processor = DipoleProcessor.from_config(config)
    proprio = processor.proprio_array(inputs)
    np.testing.assert_array_equal(proprio[:, 16:], np.eye(4)[[0, 1, 1, 2]])
    # "unknown" never occurs here: its std would be floored to 1e-3 and an unknown command scaled by 1000
    stats = compute_normalization_stats(make_target_poses(rng, 4), proprio=proprio,
                                        one_hot_proprio_columns=settings.one_hot_proprio_columns)
    np.testing.assert_array_equal(stats.proprio_mean[16:], 0.0)
    np.testing.assert_array_equal(stats.proprio_std[16:], 1.0)
    np.testing.assert_allclose(stats.proprio_mean[:16], proprio[:, :16].mean(0), rtol=1e-5)


def test_bad_agent_inputs_raise_named_errors(processor):
    rng = np.random.default_rng(4)
    missing_camera = make_agent_input(rng)
    missing_camera.cameras[-1].cam_f0.image = None
    with pytest.raises(VLAInputError, match="CAM_F0"):
        processor([missing_camera])
    gray = make_agent_input(rng)
    gray.cameras[-1].cam_l0.image = np.zeros((10, 10), dtype=np.uint8)
    with pytest.raises(VLAInputError, match="CAM_L0"):
        processor([gray])
    no_velocity = make_agent_input(rng)
    no_velocity.ego_statuses[-1].ego_velocity = None
    with pytest.raises(VLAInputError, match="ego_velocity"):
        processor([no_velocity])
    bad_command = make_agent_input(rng)
    bad_command.ego_statuses[-1].driving_command = np.array([1.0, 0.0])
    with pytest.raises(VLAInputError, match="driving_command"):
        processor([bad_command])
    nan_pose = make_agent_input(rng)
    nan_pose.ego_statuses[0].ego_pose = np.array([np.nan, 0.0, 0.0])
    with pytest.raises(VLAInputError, match=r"ego_statuses\[0\].ego_pose"):
        processor([nan_pose])
    short = make_agent_input(rng)
    short.ego_statuses = short.ego_statuses[-1:]
    with pytest.raises(VLAInputError, match="ego_statuses"):
        processor([short])
    with pytest.raises(VLAInputError, match="target_poses"):
        processor([make_agent_input(rng)], np.zeros((1, 6, 3)))


def test_tokenizer_is_local_and_saved(processor, tmp_path):
    tokenizer = build_word_tokenizer(processor.settings.prompt_template)
    assert len(tokenizer) < 128  # fits the tiny presets' vocabulary
    processor.save_pretrained(tmp_path)
    loaded = DipoleProcessor.from_pretrained(tmp_path)
    prompt = processor.build_prompt(make_agent_input(np.random.default_rng(5)))
    assert loaded.tokenizer(prompt)["input_ids"] == processor.tokenizer(prompt)["input_ids"]
    assert loaded.config.normalization == processor.config.normalization


def test_a_prompt_longer_than_the_budget_is_an_error_not_cut(processor):
    rng = np.random.default_rng(4)
    prompt_tokens = len(processor.tokenizer(processor.build_prompt(make_agent_input(rng)))["input_ids"])
    assert prompt_tokens <= processor.settings.max_prompt_tokens  # the tiny budget fits its own prompt
    short = copy.deepcopy(processor.config)
    short.processor["max_prompt_tokens"] = prompt_tokens - 1
    with pytest.raises(VLAInputError, match="max_prompt_tokens"):
        DipoleProcessor(short, processor.tokenizer)([make_agent_input(rng)])
