"""nuPlan map locations, the `las_vegas` alias and the map index (spec navsim_data.md §2.1)."""

from __future__ import annotations

import json
from pathlib import Path

from data_pipelines.maps.errors import MapFileError, UnknownMapLocationError

# The four nuPlan map locations (nuPlan `MAP_LOCATIONS`, spec pdm_score.md §2).
MAP_LOCATIONS: tuple[str, ...] = (
    "sg-one-north",
    "us-ma-boston",
    "us-nv-las-vegas-strip",
    "us-pa-pittsburgh-hazelwood",
)
# Alias accepted by NAVSIM's scenario wrapper (spec navsim_data.md §2.1).
LOCATION_ALIASES: dict[str, str] = {"las_vegas": "us-nv-las-vegas-strip"}
DEFAULT_MAP_VERSION = "nuplan-maps-v1.0"
MAP_FILE_NAME = "map.gpkg"


def resolve_location(location: str) -> str:
    """Canonical location name (alias resolved); UnknownMapLocationError otherwise."""
    canonical = LOCATION_ALIASES.get(location, location)
    if canonical not in MAP_LOCATIONS:
        raise UnknownMapLocationError(location, MAP_LOCATIONS + tuple(LOCATION_ALIASES))
    return canonical


def map_file_path(maps_root: Path | str, location: str, map_version: str = DEFAULT_MAP_VERSION) -> tuple[Path, str]:
    """(`<root>/<location>/<version>/map.gpkg`, version) for a canonical location, read from the index JSON."""
    root = Path(maps_root)
    index_path = root / f"{map_version}.json"
    if not index_path.is_file():
        raise MapFileError(index_path, "map index file does not exist", location=location)
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MapFileError(index_path, f"cannot parse map index: {exc}", location=location) from exc
    entry = index.get(location) if isinstance(index, dict) else None
    if not isinstance(entry, dict) or "version" not in entry:
        raise MapFileError(index_path, "map index has no 'version' entry for this location", location=location)
    version = str(entry["version"])
    path = root / location / version / MAP_FILE_NAME
    if not path.is_file():
        raise MapFileError(path, "map file does not exist", location=location)
    return path, version
