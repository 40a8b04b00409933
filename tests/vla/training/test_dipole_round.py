"""A DIPOLE round on the tiny synthetic world with the real PDM scorer changes both adapters and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from data_pipelines.configuration import load_config
from navsim_eval.reward import PDMReward
from vla import DipoleVLA
from vla.training import TrainConfig, Trainer

from tests.vla.training.helpers import generate_tiny_world, split_items


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_tiny_world(tmp_path_factory.mktemp("tiny_world"))


def _il_then_one_round(world, tmp_path, stage: str, extra=()):
    """4 IL steps, then one round of ``stage`` (dipole or ewr) on 6 tiny-world scenes with the real PDM reward;
    returns (items, the logged values by name, IL weights, final weights)."""
    torch.set_num_threads(1)
    paths, split, items = split_items(world, "synthetic_train", max_scenes=6)
    reward = PDMReward.from_split(paths, split, tmp_path / "metric_cache", version="v1", num_workers=0)
    # a few IL steps first: a fresh adaLN-zero head gates every block off, so its adapters get no gradient
    cfg = load_config(TrainConfig, None, [
        f"output_dir={tmp_path / 'run'}", f"stages=[il,{stage}]", "il.steps=4", "il.batch_size=4",
        f"{stage}.rounds=1", f"{stage}.steps_per_round=2", f"{stage}.batch_size=3",
        f"{stage}.rollout.num_candidates=4", f"{stage}.rollout.num_steps=3", f"{stage}.rollout.batch_size=6",
        f"{stage}.optim.warmup_steps=0", "eval.enabled=false", "tensorboard=false", "progress_bars=false",
        "log_every=1", *extra,
    ])
    trainer = Trainer(cfg, Accelerator(cpu=True), items, train_reward=reward)
    trainer.run()
    logged = {k: v for row in trainer.history for k, v in row.items()}
    before = load_file(tmp_path / "run" / "il_model" / "model.safetensors")
    after = load_file(tmp_path / "run" / "model" / "model.safetensors")
    return items, logged, before, after


def test_dipole_round_updates_both_adapters_only(world, tmp_path):
    items, logged, before, after = _il_then_one_round(world, tmp_path, "dipole")
    for name in ("NC", "DAC", "TTC", "C", "EP", "PDMS"):
        assert 0.0 <= logged[f"dipole/rollout/{name}"] <= 1.0, name
    assert logged["dipole/rollout/masked_frac"] == 0.0
    assert "dipole/rollout/zero_variance_group_frac" in logged
    assert 0.0 < logged["dipole/weight_positive_mean"] < 1.0  # the loss output's names reach the log

    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    lora = {name for name in before if ".lora_" in name}
    assert changed, "no weight changed"
    assert changed <= lora, f"frozen weights changed: {sorted(changed - lora)[:5]}"
    assert any(".positive." in n for n in changed) and any(".negative." in n for n in changed)
    reloaded = DipoleVLA.from_pretrained(tmp_path / "run" / "model")
    assert reloaded.config.normalization is not None
    # every input is normalised: the ego-state statistics are those of the train split's proprio inputs
    proprio = reloaded.processor.proprio_array([item["agent_input"] for item in items])
    stats = reloaded.normalization_stats()
    assert stats.proprio_mean is not None and stats.proprio_mean.shape == (reloaded.config.proprio_dim,)
    assert np.allclose(stats.proprio_mean, proprio.mean(0), atol=1e-4)


def test_ewr_round_trains_only_the_positive_adapter_with_the_same_anchor(world, tmp_path):
    """The EWR baseline is like for like: DIPOLE's rollouts, anchor and budget, one adapter, exp(beta G)."""
    _, logged, before, after = _il_then_one_round(world, tmp_path, "ewr", ["ewr.bc_weight=0.5"])
    assert logged["ewr/loss_bc"] > 0 and logged["ewr/loss_negative"] == 0
    assert logged["ewr/weight_positive_mean"] > 0
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(".lora_" in n and ".positive." in n for n in changed), sorted(changed)[:5]
