"""Exception hierarchy of the data layer.

Every error names what went wrong and where: the file, token, field or map layer. Other packages raise
these classes (or their own subclasses of :class:`DataError`) for bad input data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]


class DataError(Exception):
    """Base class of every data-layer error."""


class LogFileError(DataError):
    """A log pickle is missing, unreadable, or lacks a required key."""

    def __init__(self, path: PathLike, reason: str, *, key: Optional[str] = None, frame_index: Optional[int] = None):
        self.path = Path(path)
        self.reason = reason
        self.key = key
        self.frame_index = frame_index
        where = f"log file {self.path}"
        if frame_index is not None:
            where += f", frame {frame_index}"
        if key is not None:
            where += f", key {key!r}"
        super().__init__(f"{where}: {reason}")


class SensorFileError(DataError):
    """A sensor file (camera image, lidar point cloud) is missing or cannot be decoded."""

    def __init__(self, path: PathLike, reason: str, *, token: Optional[str] = None, sensor: Optional[str] = None):
        self.path = Path(path)
        self.token = token
        self.sensor = sensor
        where = f"sensor file {self.path}"
        if sensor is not None:
            where += f" ({sensor}"
            where += f", frame {token})" if token is not None else ")"
        elif token is not None:
            where += f" (frame {token})"
        super().__init__(f"{where}: {reason}")


class UnknownTokenError(DataError, KeyError):
    """A scene or frame token that the loaded data does not contain."""

    def __init__(self, token: str, where: str = "the loaded scenes"):
        self.token = token
        self.where = where
        super().__init__(f"unknown token {token!r} (not in {where})")

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return self.args[0]


class MapError(DataError):
    """A map file, location or layer is missing or malformed."""

    def __init__(
        self,
        reason: str,
        *,
        location: Optional[str] = None,
        layer: Optional[str] = None,
        path: Optional[PathLike] = None,
    ):
        self.location = location
        self.layer = layer
        self.path = Path(path) if path is not None else None
        parts = []
        if location is not None:
            parts.append(f"location {location!r}")
        if layer is not None:
            parts.append(f"layer {layer!r}")
        if path is not None:
            parts.append(f"file {self.path}")
        prefix = f"map ({', '.join(parts)}): " if parts else "map: "
        super().__init__(prefix + reason)


class SplitError(DataError):
    """A split or scene-filter YAML is malformed, or a split selects no scenes."""

    def __init__(self, reason: str, *, path: Optional[PathLike] = None, field: Optional[str] = None):
        self.reason = reason
        self.path = Path(path) if path is not None else None
        self.field = field
        parts = []
        if path is not None:
            parts.append(f"split file {self.path}")
        if field is not None:
            parts.append(f"field {field!r}")
        prefix = f"{', '.join(parts)}: " if parts else "split: "
        super().__init__(prefix + reason)
