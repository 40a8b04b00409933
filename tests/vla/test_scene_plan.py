"""vla.scene_plan: the kinematic baselines, the probe's loss, and the model's scene-plan settings and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from navsim_eval.evaluation.planners import ConstantTurnRatePlanner, ConstantVelocityPlanner, PlanningBatch
from vla import DipoleVLAConfig
from vla.configuration_dipole import ProcessorSettings, ScenePlanSettings
from vla.errors import ModelConfigError
from vla.presets import build_config
from vla.scene_plan import ScenePlanProbe, kinematic_baseline_poses, scene_plan_loss
from vla.testing import make_agent_input, make_target_poses, tiny_model

from tests.vla.auxiliary_heads import check_auxiliary_loss

PROBE = ["scene_plan.hidden_size=16"]


@pytest.mark.parametrize("baseline, planner", [("constant_velocity", ConstantVelocityPlanner),
                                               ("constant_turn_rate", ConstantTurnRatePlanner)])
def test_baselines_drive_as_the_benchmarks_model_free_planners(baseline, planner):
    rng = np.random.default_rng(0)
    inputs = [make_agent_input(rng, speed=s) for s in (3.0, 9.0)]
    for agent_input, turn in zip(inputs, (0.1, -0.3)):  # turning left and right in the last history interval
        agent_input.ego_statuses[-2].ego_pose[2] = -turn
    model = tiny_model()
    proprio = model.processor(inputs)["proprio"]
    expected = next(iter(planner().plan(PlanningBatch(["a", "b"], inputs)).values()))
    poses = kinematic_baseline_poses(proprio, ProcessorSettings(), baseline)
    np.testing.assert_allclose(poses.numpy(), expected, atol=1e-5)
    assert (np.abs(poses[..., 2].numpy()).max() > 0.1) == (baseline == "constant_turn_rate")


def test_lateral_loss_ignores_the_distance_along_the_plan():
    target, baseline = torch.randn(3, 8, 4), torch.randn(3, 8, 4)
    predicted = target - baseline
    predicted[..., 0] += 1.0  # wrong only in x
    assert scene_plan_loss(predicted, target, baseline, "lateral") == 0
    assert scene_plan_loss(predicted, target, baseline, "all") == pytest.approx(0.25)


def test_probe_reads_only_the_valid_context_tokens():
    probe = ScenePlanProbe(ScenePlanSettings(hidden_size=8, num_heads=2), context_size=6)
    tokens, mask = torch.randn(2, 5, 6), torch.ones(2, 5, dtype=torch.bool)
    mask[:, 3:] = False
    changed = tokens.clone()
    changed[:, 3:] = 100.0
    assert probe(tokens, mask).shape == (2, 8, 4)
    assert torch.allclose(probe(tokens, mask), probe(changed, mask))


def test_scene_plan_loss_trains_the_probe_and_the_backbone_and_survives_save_load(tmp_path):
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    model = tiny_model(overrides=PROBE + ["scene_plan.features=lateral"]).eval()
    inputs = [make_agent_input(rng) for _ in range(2)]
    batch = model.processor(inputs, make_target_poses(rng, 2))
    loaded = check_auxiliary_loss(model, batch, "scene_plan_probe", "loss_scene_plan", "scene_plan_weight", tmp_path)
    assert loaded.config.scene_plan_settings.features == "lateral"
    without = tiny_model()
    assert without.scene_plan_probe is None
    with pytest.raises(ModelConfigError, match="scene_plan.hidden_size"):
        without.loss_il(batch, scene_plan_weight=1.0)


def test_the_probe_changes_no_plan():
    rng = np.random.default_rng(2)
    inputs = [make_agent_input(rng) for _ in range(2)]
    plain, probed = tiny_model(seed=3), tiny_model(seed=3, overrides=PROBE)
    probed.load_state_dict(plain.state_dict(), strict=False)  # the same weights but the probe's
    batch = plain.processor(inputs)
    generator = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(plain.sample(batch, num_steps=2, generator=generator()),
                       probed.sample(batch, num_steps=2, generator=generator()))


@pytest.mark.parametrize("settings, field", [({"hidden_size": 6, "num_heads": 4}, "scene_plan.num_heads"),
                                             ({"hidden_size": 8, "baseline": "cv"}, "scene_plan.baseline"),
                                             ({"hidden_size": 8, "features": "y"}, "scene_plan.features"),
                                             ({"hidden_size": -1}, "scene_plan.num_heads")])
def test_bad_scene_plan_settings_name_the_field(settings, field):
    base = build_config("tiny-florence2").to_dict()
    base["scene_plan"] = settings
    with pytest.raises(ModelConfigError, match=field):
        DipoleVLAConfig.from_dict(base)


def test_constant_turn_rate_needs_two_history_frames():
    base = build_config("tiny-florence2").to_dict()
    base["scene_plan"] = {"hidden_size": 8, "baseline": "constant_turn_rate"}
    base["processor"]["num_history_frames"] = 1
    with pytest.raises(ModelConfigError, match="num_history_frames"):
        DipoleVLAConfig.from_dict(base)
