"""Checkpoint writer and resume selection: visibility only when complete, same-step rewrites, verification."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import save_file

from vla.training.checkpoint import (
    COMPLETE_MARKER, CheckpointWriter, TrainerState, checkpoints_dir, latest_checkpoint, list_checkpoints,
    read_state, verify_checkpoint,
)
from vla.training.errors import CorruptCheckpointError, NoCheckpointError

ACCELERATE_FILES = ("model.safetensors", "optimizer.bin", "random_states_0.pkl")


class FakeAccelerator:
    """One process; ``save_state`` writes the files accelerate writes (a real safetensors model)."""

    is_main_process = True
    process_index = 0

    def __init__(self):
        self.saves = 0

    def wait_for_everyone(self):
        pass

    def save_state(self, folder):
        self.saves += 1
        from pathlib import Path

        folder = Path(folder)
        folder.mkdir(parents=True)
        save_file({"policy.weight": torch.full((64, 64), float(self.saves))}, folder / "model.safetensors")
        torch.save({"state": torch.arange(512)}, folder / "optimizer.bin")
        (folder / "random_states_0.pkl").write_bytes(bytes(range(256)) * 8)


def _save(writer, step, **kwargs):
    return writer.save(TrainerState(stage="il", global_step=step), **kwargs)


@pytest.fixture()
def writer(tmp_path):
    return CheckpointWriter(FakeAccelerator(), tmp_path, keep=3)


def _scheduler_file(path):
    path.write_text("scheduler")


def test_a_checkpoint_appears_with_every_file_and_a_manifest(tmp_path, writer):
    ckpt = _save(writer, 5, extra_files={"lr_scheduler.pt": _scheduler_file})
    assert ckpt.name == "ckpt-00000005" and (ckpt / "lr_scheduler.pt").read_text() == "scheduler"
    files = json.loads((ckpt / COMPLETE_MARKER).read_text())["files"]
    assert set(files) == {"trainer_state.json", "lr_scheduler.pt", *(f"accelerate/{n}" for n in ACCELERATE_FILES)}
    verify_checkpoint(ckpt)
    assert latest_checkpoint(tmp_path) == ckpt and read_state(ckpt).global_step == 5


def test_a_failure_while_writing_extra_files_leaves_no_visible_checkpoint(tmp_path, writer):
    good = _save(writer, 5)

    def crash(path):
        raise KeyboardInterrupt  # a kill inside the writer, after the accelerate state was written

    with pytest.raises(KeyboardInterrupt):
        _save(writer, 6, extra_files={"lr_scheduler.pt": crash})
    assert list_checkpoints(tmp_path) == [good] and latest_checkpoint(tmp_path) == good


def test_a_same_step_rewrite_keeps_the_old_copy_until_the_new_one_is_complete(tmp_path, writer, monkeypatch):
    first = _save(writer, 10)

    def crash(path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _save(writer, 10, extra_files={"lr_scheduler.pt": crash})
    assert latest_checkpoint(tmp_path) == first
    # a kill after the new version became visible, before the old one was removed: the newer one is used
    monkeypatch.setattr(CheckpointWriter, "_prune", lambda self, newest: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        _save(writer, 10)
    monkeypatch.undo()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000010", "ckpt-00000010.1"]
    assert latest_checkpoint(tmp_path).name == "ckpt-00000010.1"
    rewritten = _save(writer, 10)
    assert rewritten.name == "ckpt-00000010.2" and list_checkpoints(tmp_path) == [rewritten]


@pytest.mark.parametrize("name", ["trainer_state.json", *(f"accelerate/{n}" for n in ACCELERATE_FILES),
                                  "lr_scheduler.pt"])
def test_resume_skips_a_truncated_checkpoint_naming_the_file(tmp_path, writer, caplog, name):
    older = _save(writer, 1, extra_files={"lr_scheduler.pt": _scheduler_file})
    newer = _save(writer, 2, extra_files={"lr_scheduler.pt": _scheduler_file})
    path = newer / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptCheckpointError, match=f"checkpoint file {path}: .*bytes"):
        verify_checkpoint(newer)
    with caplog.at_level(logging.WARNING, logger="vla.training.checkpoint"):
        assert latest_checkpoint(tmp_path) == older
    assert f"skipping checkpoint ckpt-00000002: checkpoint file {path}" in caplog.text
    assert f"using {older}" in caplog.text


def test_missing_files_and_unreadable_state_are_named(tmp_path, writer):
    ckpt = _save(writer, 3)
    (ckpt / "accelerate" / "optimizer.bin").unlink()
    with pytest.raises(CorruptCheckpointError, match=r"optimizer\.bin: missing"):
        verify_checkpoint(ckpt)
    state = ckpt / "trainer_state.json"
    state.write_text("{not json")
    with pytest.raises(CorruptCheckpointError, match=r"trainer_state\.json: unreadable \(JSONDecodeError"):
        read_state(ckpt)
    with pytest.raises(NoCheckpointError, match=r"no complete and readable checkpoint.*\n.*optimizer\.bin: missing"):
        latest_checkpoint(tmp_path)


def test_checkpoints_written_before_manifests_still_load(tmp_path, writer):
    ckpt = _save(writer, 4)
    (ckpt / COMPLETE_MARKER).write_text("ok\n")
    assert latest_checkpoint(tmp_path) == ckpt
    (ckpt / "trainer_state.json").unlink()
    with pytest.raises(NoCheckpointError):
        latest_checkpoint(tmp_path)


def test_old_checkpoints_beyond_keep_and_temporaries_are_pruned(tmp_path, writer):
    for step in range(1, 6):
        _save(writer, step)
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"ckpt-0000000{s}" for s in (3, 4, 5)]
    assert not list(checkpoints_dir(tmp_path).glob(".tmp-*"))
