"""Exceptions of the vla package. Each names the field, file, camera or key at fault."""

from __future__ import annotations


class VLAError(Exception):
    """Base class of every error raised by the vla package."""


class ModelConfigError(VLAError, ValueError):
    """A model configuration field is missing, unknown or inconsistent."""

    def __init__(self, field: str, reason: str):
        self.field = field
        super().__init__(f"model config field {field!r}: {reason}")


class CheckpointError(VLAError):
    """A checkpoint directory lacks a file, or its contents disagree with its config."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        super().__init__(f"checkpoint {self.path}: {reason}")


class VLAInputError(VLAError, ValueError):
    """A model input (AgentInput, batch tensor) has the wrong shape, is missing a field or holds NaN."""

    def __init__(self, field: str, reason: str):
        self.field = field
        super().__init__(f"input {field!r}: {reason}")


class NormalizationError(VLAError):
    """Trajectory normalisation statistics are missing or invalid."""
