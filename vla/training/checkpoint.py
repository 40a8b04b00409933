"""Crash-safe, verifiable, resumable checkpoints.

Layout of ``<output_dir>/checkpoints/ckpt-<global step>[.<version>]/``::

    accelerate/              accelerator.save_state: model (incl. both adapters), optimizer, RNG
                             (DeepSpeed: its own sharded checkpoint)
    trainer_state.json       stage, round, step, compatibility fingerprint
    rollout_buffer_rank<i>.npz   the current round's buffer of process i (DIPOLE / EWR stages)
    <extra files>            written by the callbacks given to ``CheckpointWriter.save`` (e.g. the scheduler)
    COMPLETE                 manifest (every file's relative path and size), written last

Every process writes into ``.tmp-ckpt-<step>``; after a barrier the main process writes the extra files and
the state, fsyncs every file, writes the manifest, fsyncs it and renames the folder to its final name: a
checkpoint is visible only when every file of it is on disk. Writing a step that already has a checkpoint
creates the next version (``ckpt-<step>.1``) and removes the older one only afterwards, so a kill never
destroys the only loadable copy. ``--resume`` takes the newest checkpoint whose files all match the manifest
(:func:`verify_checkpoint`) and logs every newer one it skips, with the reason. A file that verifies but
then fails to load (:func:`load_accelerate_state`, :func:`read_checkpoint_file`) is named the same way, and the
trainer falls back to the checkpoint before.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from vla.training.errors import CorruptCheckpointError, IncompatibleCheckpointError, NoCheckpointError
from vla.training.pause_points import pause_point

logger = logging.getLogger(__name__)

CHECKPOINTS_DIRNAME = "checkpoints"
STATE_FILENAME = "trainer_state.json"
COMPLETE_MARKER = "COMPLETE"
ACCELERATE_DIRNAME = "accelerate"
PREFIX = "ckpt-"
TMP_PREFIX = ".tmp-ckpt-"
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)(?:\.(\d+))?$")
TENSOR_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".pkl")
"""Files of ``accelerate/`` that are probed one by one when ``load_state`` fails (to name the damaged one)."""
REQUIRED_ENTRIES = (STATE_FILENAME, ACCELERATE_DIRNAME)
"""Entries every checkpoint has (also those written before manifests existed)."""

FileWriter = Callable[[Path], None]
"""Writes one extra file of a checkpoint to the given path (called on the main process only)."""


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


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to disk."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            _fsync(Path(dirpath) / name)
        _fsync(Path(dirpath))


def _manifest(root: Path) -> dict[str, int]:
    """Relative path -> size of every file below `root`."""
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def _version_key(path: Path) -> Optional[tuple[int, int]]:
    match = _NAME.match(path.name)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints marked complete, oldest first (by step, then version); not yet verified."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _version_key(p) is not None and (p / COMPLETE_MARKER).is_file()]
    return sorted(found, key=_version_key)


def _check_safetensors(path: Path, ckpt: Path) -> None:
    """The header of a safetensors file parses and its tensors end inside the file."""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            if header_size > size - 8:
                raise ValueError(f"header of {header_size} bytes in a file of {size}")
            header = json.loads(handle.read(header_size))
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as error:
        raise CorruptCheckpointError(ckpt, path, f"unreadable safetensors header ({error})") from error
    if 8 + header_size + end > size:
        raise CorruptCheckpointError(ckpt, path, f"truncated: tensors end at byte {8 + header_size + end}, "
                                                 f"file has {size}")


def verify_checkpoint(ckpt: Path) -> None:
    """Raise CorruptCheckpointError naming the file when any file of the manifest is missing, has another
    size than written, or (state, safetensors) does not parse."""
    ckpt = Path(ckpt)
    marker = ckpt / COMPLETE_MARKER
    try:
        text = marker.read_text()
    except OSError as error:
        raise CorruptCheckpointError(ckpt, marker, f"unreadable ({error})") from error
    if text.strip() == "ok":  # written before manifests existed: the required entries are all we know
        files: dict[str, int] = {}
    else:
        try:
            files = dict(json.loads(text)["files"])
        except (ValueError, KeyError, TypeError) as error:
            raise CorruptCheckpointError(ckpt, marker, f"unreadable manifest ({error})") from error
    for entry in REQUIRED_ENTRIES:
        if not (ckpt / entry).exists():
            raise CorruptCheckpointError(ckpt, ckpt / entry, "missing")
    for name, size in files.items():
        path = ckpt / name
        if not path.is_file():
            raise CorruptCheckpointError(ckpt, path, "missing")
        actual = path.stat().st_size
        if actual != size:
            raise CorruptCheckpointError(ckpt, path, f"{actual} bytes, {size} were written (truncated or altered)")
        if path.suffix == ".safetensors":
            _check_safetensors(path, ckpt)
    read_state(ckpt)


def latest_checkpoint(output_dir: Path,
                      unloadable: Optional[Mapping[Path, CorruptCheckpointError]] = None) -> Path:
    """The newest checkpoint that verifies and is not in `unloadable` (checkpoints that verified but failed to
    load: :func:`load_accelerate_state`); each newer one is logged with the reason."""
    ckpts = list_checkpoints(output_dir)
    skipped = []
    for ckpt in reversed(ckpts):
        try:
            if ckpt in (unloadable or {}):
                raise unloadable[ckpt]
            verify_checkpoint(ckpt)
        except CorruptCheckpointError as error:
            logger.warning("--resume: skipping checkpoint %s: %s", ckpt.name, error)
            skipped.append(str(error))
            continue
        if skipped:
            logger.warning("--resume: using %s, the newest checkpoint that verifies", ckpt)
        return ckpt
    reasons = "".join(f"\n  {reason}" for reason in skipped)
    raise NoCheckpointError(f"--resume: no complete and readable checkpoint under {checkpoints_dir(output_dir)}"
                            + reasons)


def restore_rng_states(ckpt: Path, process_index: int) -> None:
    """Set the global random states (Python, NumPy, torch, CUDA) to those ``accelerator.save_state`` stored.

    Used when the checkpoint ends a stage: the next stage starts from the states the uninterrupted run had
    (its adapters are initialised from them). Checkpoints are trusted files of this run (docs/security.md).
    """
    import random

    import numpy as np
    import torch

    path = Path(ckpt) / ACCELERATE_DIRNAME / f"random_states_{process_index}.pkl"
    if not path.is_file():
        raise CorruptCheckpointError(ckpt, path, "missing")
    try:
        states = torch.load(path, weights_only=False)
        random.setstate(states["random_state"])
        np.random.set_state(states["numpy_random_seed"])
        torch.set_rng_state(states["torch_manual_seed"])
        if torch.cuda.is_available() and "torch_cuda_manual_seed" in states:
            torch.cuda.set_rng_state_all(states["torch_cuda_manual_seed"])
    except Exception as error:  # noqa: BLE001 - any damage is named with the file
        raise CorruptCheckpointError(ckpt, path, f"unreadable ({type(error).__name__}: {error})") from error


def _first_unreadable_file(folder: Path) -> Optional[tuple[Path, str]]:
    """(path, reason) of the first file below `folder` that torch / safetensors cannot read, else None."""
    import torch
    from safetensors import safe_open

    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in TENSOR_FILE_SUFFIXES):
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as handle:
                    for key in handle.keys():
                        handle.get_tensor(key)
            else:
                torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # noqa: BLE001 - any damage is named with the file
            return path, f"unreadable ({type(error).__name__}: {error})"
    return None


def load_accelerate_state(accelerator, ckpt: Path) -> None:
    """``accelerator.load_state`` of the checkpoint's ``accelerate/`` folder, then its random states.

    A file that cannot be read raises :class:`CorruptCheckpointError` naming it (accelerate's own errors do not
    name the file, and it only logs an unreadable random-state file at INFO level); ``--resume`` then falls
    back to the checkpoint before. Any other failure propagates unchanged.
    """
    folder = Path(ckpt) / ACCELERATE_DIRNAME
    try:
        accelerator.load_state(str(folder))
    except Exception as error:
        culprit = _first_unreadable_file(folder)
        if culprit is None:
            raise
        raise CorruptCheckpointError(ckpt, *culprit) from error
    restore_rng_states(ckpt, accelerator.process_index)


def read_checkpoint_file(ckpt: Path, path: Path, read: Callable[[Path], Any]) -> Any:
    """``read(path)`` for one extra file of a checkpoint; any failure is a CorruptCheckpointError naming it."""
    if not Path(path).is_file():
        raise CorruptCheckpointError(ckpt, path, "missing")
    try:
        return read(path)
    except Exception as error:  # noqa: BLE001 - any damage is named with the file
        raise CorruptCheckpointError(ckpt, path, f"unreadable ({type(error).__name__}: {error})") from error


def agree_loaded(accelerator, ckpt: Path, error: Optional[CorruptCheckpointError]) -> None:
    """Raise on every process when any process could not read `ckpt`, so that all fall back together."""
    failed = error is not None
    if accelerator.num_processes > 1:
        import torch

        flags = accelerator.gather(torch.tensor([int(failed)], device=accelerator.device))
        failed = bool(flags.sum().item())
    if error is not None:
        raise error
    if failed:
        raise CorruptCheckpointError(ckpt, ckpt, "a file of another process is unreadable (see its log)")


def read_state(ckpt: Path) -> TrainerState:
    path = Path(ckpt) / STATE_FILENAME
    if not path.is_file():
        raise CorruptCheckpointError(ckpt, path, "missing")
    try:
        return TrainerState.from_json(path.read_text())
    except (ValueError, TypeError, UnicodeDecodeError) as error:
        raise CorruptCheckpointError(ckpt, path, f"unreadable ({type(error).__name__}: {error})") from error


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
    """Writes checkpoints crash-safely from every process of an accelerate run."""

    def __init__(self, accelerator, output_dir: Path, keep: int = 2):
        self.accelerator = accelerator
        self.root = checkpoints_dir(output_dir)
        self.keep = max(1, keep)

    def save(self, state: TrainerState, buffer=None, extra_files: Optional[Mapping[str, FileWriter]] = None) -> Path:
        """Write a checkpoint of every process; `extra_files` (name -> writer, main process) are part of it.

        Nothing may be written into the returned folder afterwards: it is complete when it appears.
        """
        acc = self.accelerator
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
        final = self._final_name(state.global_step)  # before the barrier: every process sees the same folders
        pause_point("checkpoint.write")
        acc.wait_for_everyone()
        if acc.is_main_process:
            for name, write in (extra_files or {}).items():
                write(tmp / name)
            (tmp / STATE_FILENAME).write_text(state.to_json())
            _fsync_tree(tmp)
            marker = tmp / COMPLETE_MARKER
            marker.write_text(json.dumps({"files": _manifest(tmp)}, indent=1, sort_keys=True))
            _fsync(marker)
            _fsync(tmp)
            os.replace(tmp, final)
            _fsync(self.root)
            self._prune(final)
        acc.wait_for_everyone()
        return final

    def _final_name(self, step: int) -> Path:
        """``ckpt-<step>``, or the next version when that step already has a checkpoint (kept until replaced)."""
        versions = [key[1] for p in self.root.glob(f"{PREFIX}{step:08d}*")
                    if (key := _version_key(p)) is not None and key[0] == step]
        name = f"{PREFIX}{step:08d}" + (f".{max(versions) + 1}" if versions else "")
        return self.root / name

    def _prune(self, newest: Path) -> None:
        """Remove same-step versions older than `newest`, checkpoints beyond `keep`, and stale temporaries."""
        step = _version_key(newest)[0]
        for path in self.root.iterdir():
            key = _version_key(path)
            if path != newest and key is not None and key[0] == step:
                shutil.rmtree(path, ignore_errors=True)
        ckpts = list_checkpoints(self.root.parent)
        for old in ckpts[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)


def buffer_path(ckpt: Path, rank: int) -> Optional[Path]:
    path = Path(ckpt) / f"rollout_buffer_rank{rank}.npz"
    return path if path.is_file() else None
