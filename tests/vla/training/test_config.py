"""Training presets load into TrainConfig; overrides apply; unknown keys and stages are rejected."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from data_pipelines.configuration import ConfigError, load_config
from vla.training import TrainConfig

TRAIN_CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "train"


@pytest.mark.parametrize("preset", sorted(p.name for p in TRAIN_CONFIGS.glob("*.yaml")))
def test_every_shipped_preset_loads(preset):
    cfg = load_config(TrainConfig, TRAIN_CONFIGS / preset)
    assert cfg.stages and cfg.output_dir


def test_the_demo_is_the_defaults_with_its_model_imitation_sizes_rounds_and_centred_g():
    demo, defaults = load_config(TrainConfig, TRAIN_CONFIGS / "demo.yaml"), TrainConfig()
    assert demo.model.overrides == {"bev": {"cells": 16}, "head": {"hidden_size": 128, "depth": 4}}
    assert (demo.il.steps, demo.il.batch_size, demo.il.bev_loss_weight) == (3600, 16, 2.0)
    assert demo.dipole.rounds == demo.ewr.rounds == 3
    assert demo.dipole.advantage == demo.ewr.advantage == "group_centered"
    assert demo == replace(defaults, model=replace(defaults.model, overrides=demo.model.overrides),
                           il=replace(defaults.il, steps=3600, batch_size=16, bev_loss_weight=2.0),
                           dipole=replace(defaults.dipole, rounds=3, advantage="group_centered", beta=10.0),
                           ewr=replace(defaults.ewr, rounds=3, advantage="group_centered", beta=10.0))


def test_chained_preset_inherits_and_overrides():
    cfg = load_config(TrainConfig, TRAIN_CONFIGS / "navsim_florence2_large_dipole.yaml", ["dipole.beta=2"])
    assert cfg.stages == ("dipole",) and cfg.model.preset == "florence2-large"
    assert cfg.dipole.beta == 2.0 and cfg.dipole.rollout.num_candidates == 10


def test_unknown_key_and_stage_rejected():
    with pytest.raises(ConfigError, match="'dipole.betta'.*valid keys"):
        load_config(TrainConfig, None, ["dipole.betta=1"])
    with pytest.raises(ConfigError, match="unknown stage"):
        load_config(TrainConfig, None, ["stages=[il,grpo]"])
    with pytest.raises(ConfigError, match="num_candidates"):
        load_config(TrainConfig, None, ["dipole.rollout.num_candidates=1"])
    with pytest.raises(ConfigError, match="ewr.rollout.omega must be 0"):  # at load, not after the IL stage
        load_config(TrainConfig, None, ["stages=[il,ewr]", "ewr.rollout.omega=1"])
    load_config(TrainConfig, None, ["dipole.rollout.omega=1"])  # guided rollouts are DIPOLE's to choose


def test_a_dotted_override_changes_one_model_setting_of_a_preset():
    """``model.overrides.head.dropout`` on the demo keeps its 128 x 4 head and its BEV decoder."""
    demo = load_config(TrainConfig, TRAIN_CONFIGS / "demo.yaml")
    cfg = load_config(TrainConfig, TRAIN_CONFIGS / "demo.yaml", ["model.overrides.head.dropout=0.1",
                                                                 "model.overrides.bev.head_lookup=true"])
    assert cfg.model.overrides["head"] == {**demo.model.overrides["head"], "dropout": 0.1}
    assert cfg.model.overrides["bev"] == {**demo.model.overrides["bev"], "head_lookup": True}
    assert demo.model.overrides["head"]["hidden_size"] == 128 and demo.model.overrides["bev"]["cells"] == 16


def test_the_demo_shapes_its_training_reward_and_the_navsim_recipe_keeps_the_official_score():
    from navsim_eval import names
    from navsim_eval.reward import shaped_weights

    demo = load_config(TrainConfig, TRAIN_CONFIGS / "demo.yaml")
    official = names.weights("v1")
    assert shaped_weights("v1", demo.reward.weights) == {**official, "ego_progress": 2.0}
    navsim = load_config(TrainConfig, TRAIN_CONFIGS / "navsim_florence2_large_dipole.yaml")
    assert shaped_weights(navsim.reward.version, navsim.reward.weights) == official
