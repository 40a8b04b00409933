"""A fault injected at each phase of an IL -> DIPOLE run, then --resume: the final weights equal an
uninterrupted run's bitwise (the newest checkpoint may end a stage, hold a round's buffer, or be half written)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from data_pipelines.configuration import load_config
from vla.training import TrainConfig, Trainer
from vla.training import checkpoint
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


@pytest.fixture(scope="module")
def straight(items, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    _run(out, items)
    return load_file(out / "model" / "model.safetensors")


def _kill(*args, **kwargs):
    raise KeyboardInterrupt  # stands for a kill at this point


def _kill_on_call(number: int, function):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise KeyboardInterrupt
        return function(*args, **kwargs)
    return wrapper


PHASES = {
    # newest checkpoint: the IL stage end
    "rollout": (lambda mp: mp.setattr(RolloutStage, "collect_round", _kill), "il"),
    "scoring": (lambda mp: mp.setattr(DistanceReward, "__call__", _kill), "il"),
    "checkpoint write": (lambda mp: mp.setattr(checkpoint, "_fsync_tree",
                                               _kill_on_call(2, checkpoint._fsync_tree)), "il"),
    # newest checkpoint: DIPOLE round 0 with its rollout buffer
    "update": (lambda mp: mp.setattr(RolloutStage, "train_round", _kill), "dipole"),
}


@pytest.mark.slow
@pytest.mark.parametrize("phase", sorted(PHASES))
def test_a_kill_in_each_phase_resumes_bitwise(tmp_path, items, straight, monkeypatch, phase):
    inject, newest_stage = PHASES[phase]
    inject(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "split", items)
    monkeypatch.undo()
    assert read_state(latest_checkpoint(tmp_path / "split")).stage == newest_stage
    random.seed(1), np.random.seed(2), torch.manual_seed(3)  # a new process starts from other random states
    _run(tmp_path / "split", items, resume=True)
    resumed = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    assert [k for k in straight if not torch.equal(straight[k], resumed[k])] == []
