"""Dataset locations, resolved like the NAVSIM devkit: environment variables first, explicit values override.

Layout (spec navsim_data.md §2)::

    $OPENSCENE_DATA_ROOT/navsim_logs/<split>/<log_name>.pkl
    $OPENSCENE_DATA_ROOT/sensor_blobs/<split>/<log_name>/CAM_*/...jpg
    $NUPLAN_MAPS_ROOT/<location>/<version>/map.gpkg      (default: $OPENSCENE_DATA_ROOT/maps)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

from data_pipelines.errors import DataError

ENV_DATA_ROOT = "OPENSCENE_DATA_ROOT"
ENV_MAPS_ROOT = "NUPLAN_MAPS_ROOT"
ENV_MAP_VERSION = "NUPLAN_MAP_VERSION"
DEFAULT_MAP_VERSION = "nuplan-maps-v1.0"  # spec §2: the name of the map index JSON
LOGS_DIRNAME = "navsim_logs"
SENSOR_BLOBS_DIRNAME = "sensor_blobs"
MAPS_DIRNAME = "maps"
SPLITS_DIRNAME = "splits"  # split YAMLs shipped with a dataset (the synthetic generator writes them here)


class DataPathError(DataError):
    """A dataset location is neither given explicitly nor set in the environment."""


def _as_path(value: Union[str, Path, None]) -> Optional[Path]:
    if value is None or str(value) == "":
        return None
    return Path(value).expanduser()


@dataclass(frozen=True)
class DataPaths:
    """Where the OpenScene logs, sensor blobs and nuPlan maps live. Every field may be None until needed."""

    openscene_data_root: Optional[Path] = None
    maps_root: Optional[Path] = None
    map_version: str = DEFAULT_MAP_VERSION

    @classmethod
    def from_env(
        cls,
        openscene_data_root: Union[str, Path, None] = None,
        maps_root: Union[str, Path, None] = None,
        map_version: Optional[str] = None,
        environ: Optional[Mapping[str, str]] = None,
    ) -> "DataPaths":
        """Explicit arguments win; otherwise the devkit's environment variables; maps default to <root>/maps."""
        env = os.environ if environ is None else environ
        root = _as_path(openscene_data_root) or _as_path(env.get(ENV_DATA_ROOT))
        maps = _as_path(maps_root) or _as_path(env.get(ENV_MAPS_ROOT))
        if maps is None and root is not None:
            maps = root / MAPS_DIRNAME
        version = map_version or env.get(ENV_MAP_VERSION) or DEFAULT_MAP_VERSION
        return cls(openscene_data_root=root, maps_root=maps, map_version=version)

    def require_data_root(self) -> Path:
        if self.openscene_data_root is None:
            raise DataPathError(f"no dataset root: pass it explicitly or set ${ENV_DATA_ROOT}")
        return self.openscene_data_root

    def require_maps_root(self) -> Path:
        if self.maps_root is None:
            raise DataPathError(f"no map root: pass it explicitly or set ${ENV_MAPS_ROOT} (or ${ENV_DATA_ROOT})")
        return self.maps_root

    def navsim_log_path(self, data_split: str) -> Path:
        """Folder of the log pickles of a data split (e.g. ``test``, ``trainval``)."""
        return self.require_data_root() / LOGS_DIRNAME / data_split

    def sensor_blobs_path(self, data_split: str) -> Path:
        """Folder the logs' relative camera and lidar paths are resolved against."""
        return self.require_data_root() / SENSOR_BLOBS_DIRNAME / data_split

    def splits_dir(self) -> Path:
        """Folder with split YAMLs shipped inside a dataset root."""
        return self.require_data_root() / SPLITS_DIRNAME
