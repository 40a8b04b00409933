"""Errors of the training package; each names the file, key or stage at fault."""

from __future__ import annotations

from vla.errors import VLAError


class TrainingError(VLAError):
    """Base class of training errors."""


class IncompatibleCheckpointError(TrainingError):
    """A checkpoint was written by a run whose configuration cannot continue under the current one."""

    def __init__(self, path, differences: dict):
        self.path = str(path)
        self.differences = differences
        lines = "; ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in differences.items())
        super().__init__(f"checkpoint {self.path} is incompatible with the current config ({lines})")


class CorruptCheckpointError(TrainingError):
    """A file of a checkpoint is missing, truncated or unreadable; ``--resume`` then falls back to an older one."""

    def __init__(self, checkpoint, path, reason: str):
        self.checkpoint = str(checkpoint)
        self.path = str(path)
        super().__init__(f"checkpoint file {self.path}: {reason}")


class NoCheckpointError(TrainingError):
    """``--resume`` was asked for but the output directory holds no complete checkpoint."""


class RewardError(TrainingError):
    """A reward function returned arrays of the wrong shape."""


class EmptyDataError(TrainingError):
    """A split or a rollout round has no usable scene."""
