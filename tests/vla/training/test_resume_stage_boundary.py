"""Resume when the newest checkpoint ends a stage: the next stage continues bitwise as if never interrupted."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from data_pipelines.configuration import load_config
from vla.training import TrainConfig, Trainer
from vla.training.checkpoint import latest_checkpoint, read_state
from vla.training.stages.rounds import RolloutStage

from tests.vla.training.helpers import DistanceReward, make_items

BASE = ["stages=[il,dipole]", "il.steps=2", "il.batch_size=4", "il.optim.warmup_steps=1", "dipole.rounds=1",
        "dipole.steps_per_round=2", "dipole.batch_size=2", "dipole.rollout.num_candidates=3",
        "dipole.rollout.num_steps=2", "dipole.rollout.batch_size=4", "dipole.optim.warmup_steps=0",
        "eval.enabled=false", "tensorboard=false", "progress_bars=false", "checkpoint_every=100",
        "model.preset=tiny-florence2"]


@pytest.fixture(scope="module")
def items():
    return make_items(6, seed=5)


def _run(out, items, resume=False):
    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, None, [f"output_dir={out}"] + BASE)
    trainer = Trainer(cfg, Accelerator(cpu=True), items, train_reward=DistanceReward(items))
    trainer.run(resume=resume)
    return trainer


def test_a_kill_in_the_first_rollout_after_the_il_stage_resumes_bitwise(tmp_path, items, monkeypatch):
    _run(tmp_path / "straight", items)

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt  # as a kill during DIPOLE round 0's rollouts

    monkeypatch.setattr(RolloutStage, "collect_round", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "split", items)
    monkeypatch.undo()
    state = read_state(latest_checkpoint(tmp_path / "split"))
    assert state.completed_stages == ["il"] and state.stage == "il"
    random.seed(1), np.random.seed(2), torch.manual_seed(3)  # a new process starts from other random states
    _run(tmp_path / "split", items, resume=True)
    a = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
