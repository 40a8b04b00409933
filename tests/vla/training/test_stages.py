"""Stage plug-ins: the registry, and DIPOLE's per-round backbone context (same losses, bitwise resume)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from data_pipelines.configuration import ConfigError, load_config
from vla.backbones import Context
from vla.training import TrainConfig, Trainer
from vla.training.stages import stage_names
from vla.training.stages.dipole import ContextCache
from vla.training.stages.il import ImitationStage, turn_command_repeats

from tests.vla.training.helpers import DistanceReward, make_items

BASE = ["stages=[il,dipole]", "il.steps=2", "il.batch_size=4", "il.optim.warmup_steps=1", "dipole.rounds=1",
        "dipole.steps_per_round=3", "dipole.batch_size=2", "dipole.rollout.num_candidates=3",
        "dipole.rollout.num_steps=2", "dipole.rollout.batch_size=4", "dipole.optim.warmup_steps=0",
        "eval.enabled=false", "tensorboard=false", "progress_bars=false", "log_every=1", "checkpoint_every=100",
        "model.preset=tiny-florence2"]


@pytest.fixture(scope="module")
def items():
    return make_items(6, seed=5)


def _run(out, items, extra=(), resume=False):
    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, None, [f"output_dir={out}"] + BASE + list(extra))
    trainer = Trainer(cfg, Accelerator(cpu=True), items, train_reward=DistanceReward(items))
    trainer.run(resume=resume)
    return trainer


def test_stages_come_from_the_registry():
    assert {"il", "dipole", "ewr"} <= set(stage_names())
    with pytest.raises(ConfigError, match="unknown stage"):
        load_config(TrainConfig, None, ["stages=[il,grpo_typo]"])
    with pytest.raises(ConfigError, match="advantage"):
        load_config(TrainConfig, None, ["dipole.advantage=G7"])


def test_turn_command_repeats_count_the_scenes_whose_command_turns(items):
    scenes = [dict(it) for it in items]
    for index, command in ((1, 0), (4, 2), (5, 3)):  # left, right, unknown
        statuses = list(scenes[index]["agent_input"].ego_statuses)
        statuses[-1] = replace(statuses[-1], driving_command=np.eye(4)[command])
        scenes[index]["agent_input"] = replace(scenes[index]["agent_input"], ego_statuses=statuses)
    assert [s["agent_input"].ego_statuses[-1].command for s in scenes] == (
        ["forward", "left", "forward", "forward", "right", "unknown"])
    assert turn_command_repeats(scenes, 1) is None
    assert turn_command_repeats(scenes, 4).tolist() == [1, 4, 1, 1, 4, 1]
    stage = ImitationStage(SimpleNamespace(cfg=load_config(TrainConfig, None, ["il.turn_command_repeats=4"])))
    assert stage.fingerprint()["il.turn_command_repeats"] == 4  # a resume must keep the data order
    assert "il.turn_command_repeats" not in ImitationStage(SimpleNamespace(cfg=TrainConfig())).fingerprint()


def test_reused_context_gives_the_recomputed_losses_and_resumes_bitwise(tmp_path, items):
    reused = _run(tmp_path / "reuse", items)
    recomputed = _run(tmp_path / "recompute", items, ["dipole.reuse_context=false"])
    losses = [[row["dipole/loss"] for row in t.history if "dipole/loss" in row] for t in (reused, recomputed)]
    assert len(losses[0]) == 3
    assert losses[0] == pytest.approx(losses[1], rel=1e-4, abs=1e-6)
    # stopped inside the round (contexts re-encoded on resume) and resumed: the same weights as straight through
    _run(tmp_path / "split", items, ["stop_after_steps=3"])
    _run(tmp_path / "split", items, resume=True)
    a = load_file(tmp_path / "reuse" / "model" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_context_cache_keeps_the_bev_grid_a_lookup_head_reads():
    cache = ContextCache(num_rows=4, max_mb=1.0)
    grids = torch.rand(2, 2, 3, 3)
    context = Context(torch.randn(2, 5, 6), torch.ones(2, 5, dtype=torch.bool), None, grids)
    cache.add([3, 1], {"proprio": torch.randn(2, 7)}, context)
    _, selected = cache.select(np.array([1, 3]), "cpu")
    assert torch.equal(selected.bev_probabilities, grids.flip(0))
    assert torch.equal(selected.tokens, context.tokens.flip(0))
    plain = ContextCache(num_rows=2, max_mb=1.0)
    plain.add([0, 1], {"proprio": torch.randn(2, 7)}, Context(context.tokens, context.mask))
    assert plain.select(np.array([0]), "cpu")[1].bev_probabilities is None
