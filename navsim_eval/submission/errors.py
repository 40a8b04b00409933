"""Errors of the submission writer, merger and loader."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]


class SubmissionError(Exception):
    """A submission cannot be built, written, merged or read. The message names the file and token."""

    def __init__(self, reason: str, *, path: Optional[PathLike] = None, token: Optional[str] = None):
        self.path = Path(path) if path is not None else None
        self.token = token
        parts = []
        if self.path is not None:
            parts.append(f"submission file {self.path}")
        if token is not None:
            parts.append(f"token {token!r}")
        prefix = f"{', '.join(parts)}: " if parts else "submission: "
        super().__init__(prefix + reason)


class UnsafePickleError(SubmissionError):
    """A submission pickle references a global outside the small set a submission may contain."""
