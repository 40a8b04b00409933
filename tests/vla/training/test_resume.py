"""Checkpoints: 2 IL steps + resume to 4 equals 4 uninterrupted steps; atomicity; incompatible configs."""

from __future__ import annotations

import shutil

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from data_pipelines.configuration import load_config
from vla.training import TrainConfig, Trainer
from vla.training.checkpoint import TMP_PREFIX, checkpoints_dir, latest_checkpoint, list_checkpoints, read_state
from vla.training.errors import IncompatibleCheckpointError, NoCheckpointError

from tests.vla.training.helpers import make_items

BASE = ["stages=[il]", "il.steps=4", "il.batch_size=4", "checkpoint_every=2", "eval.enabled=false",
        "tensorboard=false", "progress_bars=false", "il.optim.warmup_steps=1", "model.preset=tiny-florence2"]


@pytest.fixture(scope="module")
def items():
    return make_items(10, seed=3)


def _run(out, items, extra=(), resume=False):
    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, None, [f"output_dir={out}"] + BASE + list(extra))
    trainer = Trainer(cfg, Accelerator(cpu=True), items)
    trainer.run(resume=resume)
    return trainer


@pytest.fixture(scope="module")
def straight(items, tmp_path_factory):
    """Four uninterrupted IL steps."""
    out = tmp_path_factory.mktemp("straight")
    _run(out, items)
    return load_file(out / "il_model" / "model.safetensors")


def _assert_equal_to_straight(straight, out):
    resumed = load_file(out / "il_model" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_two_steps_then_resume_to_four_is_bitwise_identical(tmp_path, items, straight):
    _run(tmp_path / "split", items, ["stop_after_steps=2"])
    assert not (tmp_path / "split" / "il_model").exists()
    step2 = latest_checkpoint(tmp_path / "split")
    assert read_state(step2).global_step == 2
    at_step2 = load_file(step2 / "accelerate" / "model.safetensors")
    resumed = _run(tmp_path / "split", items, resume=True)
    assert resumed.state.global_step == 4 and resumed.state.completed_stages == ["il"]
    _assert_equal_to_straight(straight, tmp_path / "split")
    a = straight
    # steps 3-4 really changed the head after the resume
    head_keys = [k for k in a if k.startswith("head.") and ".lora_" not in k and f"policy.{k}" in at_step2]
    assert head_keys and any(not torch.equal(a[k], at_step2[f"policy.{k}"]) for k in head_keys)


def test_incomplete_checkpoints_are_ignored_and_incompatible_configs_rejected(tmp_path, items):
    out = tmp_path / "run"
    _run(out, items, ["stop_after_steps=2"])
    good = latest_checkpoint(out)
    # a kill during a later save leaves a temp dir and maybe an unmarked dir: neither is picked up
    shutil.copytree(good, checkpoints_dir(out) / f"{TMP_PREFIX}00000009")
    broken = checkpoints_dir(out) / "ckpt-00000010"
    shutil.copytree(good, broken)
    (broken / "COMPLETE").unlink()
    assert list_checkpoints(out) == [good]
    cfg = load_config(TrainConfig, None, [f"output_dir={out}"] + BASE + ["il.batch_size=8"])
    with pytest.raises(IncompatibleCheckpointError, match="il.batch_size"):
        Trainer(cfg, Accelerator(cpu=True), items).run(resume=True)
    with pytest.raises(NoCheckpointError):
        _run(tmp_path / "empty", items, resume=True)


def test_gradient_accumulation_and_checkpointing_run(tmp_path, items):
    trainer = _run(tmp_path / "accum", items, ["gradient_accumulation_steps=2", "il.steps=2",
                                              "model.gradient_checkpointing=true", "checkpoint_every=100"])
    assert trainer.state.global_step == 2
    logged = [row for row in trainer.history if "il/loss" in row]
    assert logged and all(torch.isfinite(torch.tensor(row["il/loss"])) for row in logged)


def test_resume_falls_back_past_a_truncated_checkpoint_and_stays_exact(tmp_path, items, straight, caplog):
    out = tmp_path / "run"
    _run(out, items, ["checkpoint_every=1", "stop_after_steps=3"])
    newest = latest_checkpoint(out)
    assert read_state(newest).global_step == 3
    rng = newest / "accelerate" / "random_states_0.pkl"
    rng.write_bytes(rng.read_bytes()[:100])  # a kill or disk fault left it truncated
    with caplog.at_level("WARNING", logger="vla.training.checkpoint"):
        resumed = _run(out, items, ["checkpoint_every=1"], resume=True)
    assert f"skipping checkpoint {newest.name}: checkpoint file {rng}" in caplog.text
    assert resumed.state.global_step == 4
    _assert_equal_to_straight(straight, out)


@pytest.fixture(scope="module")
def stopped_at_three(items, tmp_path_factory):
    """A run stopped after step 3 with checkpoints at steps 2 and 3 (copied by each test that damages one)."""
    out = tmp_path_factory.mktemp("stopped")
    _run(out, items, ["checkpoint_every=1", "stop_after_steps=3"])
    assert [read_state(c).global_step for c in list_checkpoints(out)] == [2, 3]
    return out


def _same_size_garbage(path):
    path.write_bytes(b"\0" * path.stat().st_size)  # passes the manifest's size check


def _truncate_without_manifest(path):
    """A checkpoint marked complete before manifests existed: only the required entries are checked."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (path.parents[1] if path.parent.name == "accelerate" else path.parent).joinpath("COMPLETE").write_text("ok")


@pytest.mark.parametrize("name, damage", [
    ("accelerate/random_states_0.pkl", _same_size_garbage),  # accelerate alone only logs it at INFO level
    ("accelerate/optimizer.bin", _same_size_garbage),
    ("accelerate/model.safetensors", _truncate_without_manifest),
    ("lr_scheduler.pt", _same_size_garbage),
])
def test_a_file_that_fails_to_load_is_named_and_resume_falls_back(tmp_path, items, straight, stopped_at_three,
                                                                   caplog, name, damage):
    out = tmp_path / "run"
    shutil.copytree(stopped_at_three, out)
    newest = list_checkpoints(out)[-1]
    damage(newest / name)
    with caplog.at_level("WARNING", logger="vla.training.checkpoint"):
        resumed = _run(out, items, ["checkpoint_every=1"], resume=True)
    assert f"skipping checkpoint {newest.name}: checkpoint file {newest / name}: unreadable" in caplog.text
    assert resumed.resumed_from.name == "ckpt-00000002" and resumed.state.global_step == 4
    _assert_equal_to_straight(straight, out)


def test_a_damaged_only_checkpoint_is_an_error_naming_the_file(tmp_path, items, stopped_at_three):
    out = tmp_path / "run"
    shutil.copytree(stopped_at_three, out)
    for ckpt in list_checkpoints(out):
        _same_size_garbage(ckpt / "accelerate" / "optimizer.bin")
    with pytest.raises(NoCheckpointError, match=r"accelerate/optimizer.bin: unreadable"):
        _run(out, items, resume=True)
