"""Errors raised by the PDM scorer for bad input (each names the token / field at fault)."""

from __future__ import annotations

from typing import Optional

from data_pipelines.errors import DataError


class ScoringError(DataError):
    """Base class of scorer errors."""


class TrajectoryError(ScoringError, ValueError):
    """A submitted trajectory has a wrong shape, pose count or non-finite values."""

    def __init__(self, reason: str, *, token: Optional[str] = None, name: Optional[str] = None):
        self.token = token
        self.name = name
        where = "trajectory"
        if token is not None:
            where += f" of token {token!r}"
        if name is not None:
            where += f" ({name!r})"
        super().__init__(f"{where}: {reason}")


class UnknownVersionError(ScoringError, ValueError):
    """A metric version other than "v1" (PDMS) or "v2" (EPDMS)."""


class ObservationError(ScoringError, ValueError):
    """An observation is inconsistent (lengths, unknown tokens)."""
