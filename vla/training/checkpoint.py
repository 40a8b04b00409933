"""Atomic, resumable checkpoints.

Layout of ``<output_dir>/checkpoints/ckpt-<global step>/``::

    accelerate/              accelerator.save_state: model (incl. both adapters), optimizer, scheduler, RNG
                             (DeepSpeed: its own sharded checkpoint)
    trainer_state.json       stage, round, step, compatibility fingerprint
    rollout_buffer_rank<i>.npz   the current round's buffer of process i (DIPOLE / EWR stages)
    COMPLETE                 written last, before the rename

Every process writes into ``.tmp-ckpt-<step>``; after a barrier the main process fsyncs and renames it to its
final name, so a kill at any moment leaves the previous complete checkpoint loadable.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from vla.training.errors import IncompatibleCheckpointError, NoCheckpointError

CHECKPOINTS_DIRNAME = "checkpoints"
STATE_FILENAME = "trainer_state.json"
COMPLETE_MARKER = "COMPLETE"
ACCELERATE_DIRNAME = "accelerate"
PREFIX = "ckpt-"
TMP_PREFIX = ".tmp-ckpt-"


@dataclass
class TrainerState:
    """Where a run is: which stage, which round inside it, and the optimizer-step counters."""

    stage: str = ""
    stage_index: int = 0
    round_index: int = 0  # DIPOLE / EWR round inside the stage
    step_in_stage: int = 0  # optimizer steps done in this stage
    step_in_round: int = 0
    global_step: int = 0
    round_has_buffer: bool = False  # the buffer of round_index is saved with this checkpoint
    completed_stages: list[str] = field(default_factory=list)
    fingerprint: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainerState":
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIRNAME


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / COMPLETE_MARKER).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(output_dir: Path) -> Path:
    ckpts = list_checkpoints(output_dir)
    if not ckpts:
        raise NoCheckpointError(f"--resume: no complete checkpoint under {checkpoints_dir(output_dir)}")
    return ckpts[-1]


def read_state(ckpt: Path) -> TrainerState:
    path = Path(ckpt) / STATE_FILENAME
    if not path.is_file():
        raise NoCheckpointError(f"checkpoint {ckpt} has no {STATE_FILENAME}")
    return TrainerState.from_json(path.read_text())


def check_compatible(ckpt: Path, state: TrainerState, fingerprint: dict[str, Any]) -> None:
    """Raise IncompatibleCheckpointError naming every fingerprint entry that differs."""
    diffs = {}
    for key in sorted(set(state.fingerprint) | set(fingerprint)):
        a, b = state.fingerprint.get(key), fingerprint.get(key)
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            diffs[key] = (a, b)
    if diffs:
        raise IncompatibleCheckpointError(ckpt, diffs)


class CheckpointWriter:
    """Writes checkpoints atomically from every process of an accelerate run."""

    def __init__(self, accelerator, output_dir: Path, keep: int = 2):
        self.accelerator = accelerator
        self.root = checkpoints_dir(output_dir)
        self.keep = max(1, keep)

    def save(self, state: TrainerState, buffer=None) -> Path:
        acc = self.accelerator
        final = self.root / f"{PREFIX}{state.global_step:08d}"
        tmp = self.root / f"{TMP_PREFIX}{state.global_step:08d}"
        if acc.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp / ACCELERATE_DIRNAME))
        if buffer is not None:
            buffer.save(tmp / f"rollout_buffer_rank{acc.process_index}.npz")
        acc.wait_for_everyone()
        if acc.is_main_process:
            (tmp / STATE_FILENAME).write_text(state.to_json())
            (tmp / COMPLETE_MARKER).write_text("ok\n")
            _fsync_tree(tmp)
            if final.exists():  # same step written twice (e.g. stage end right after a periodic save)
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.root)
            self._prune()
        acc.wait_for_everyone()
        return final

    def _prune(self) -> None:
        ckpts = list_checkpoints(self.root.parent)
        for old in ckpts[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)


def buffer_path(ckpt: Path, rank: int) -> Optional[Path]:
    path = Path(ckpt) / f"rollout_buffer_rank{rank}.npz"
    return path if path.is_file() else None
