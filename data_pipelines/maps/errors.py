"""Map errors: each names the location, layer, file or object id at fault."""

from __future__ import annotations

from typing import Optional

from data_pipelines.errors import MapError, PathLike


class UnknownMapLocationError(MapError):
    """A map location that is neither a nuPlan location nor a known alias."""

    def __init__(self, location: str, known: tuple[str, ...]):
        super().__init__(f"unknown map location; expected one of {', '.join(known)}", location=location)


class MapFileError(MapError):
    """The map index JSON or a location's GPKG file is missing or unreadable."""

    def __init__(self, path: PathLike, reason: str, *, location: Optional[str] = None):
        super().__init__(reason, location=location, path=path)


class MissingMapLayerError(MapError):
    """A GPKG file lacks a layer (or a column of a layer) the map API needs."""

    def __init__(self, path: PathLike, layer: str, location: str, reason: str = "layer is missing"):
        super().__init__(reason, location=location, layer=layer, path=path)


class UnknownMapObjectError(MapError, KeyError):
    """A map object id that the layer does not contain."""

    def __init__(self, object_id: str, layer: str, location: str):
        self.object_id = object_id
        super().__init__(f"unknown map object id {object_id!r}", location=location, layer=layer)

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return self.args[0]
