"""Targets of the auxiliary BEV decoder: a 0/1 raster per channel of the current frame, in the rear-axle frame.

* ``drivable_area``: the cell centre lies in the drivable area the PDM score's drivable-area compliance judges
  (roadblocks, intersections, carparks; ``navsim_eval.pdm``'s drivable map of the scene's map).
* ``objects``: the cell's square intersects an annotated box of the current frame (pedestrians and cyclists
  smaller than a cell still mark the cells they stand in).

Training data carry the map and annotations for it (NAVSIM navtrain: maps + OpenScene boxes); the planner never
needs them. :class:`BevTargetItems` adds ``bev_target`` to the items of a scene dataset, computed in the data
workers and remembered per token (a few hundred bytes each).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import shapely
import torch

from data_pipelines.geometry import relative_to_absolute_poses
from data_pipelines.maps import load_map
from data_pipelines.paths import DataPaths
from data_pipelines.scene import Scene, SensorConfig
from navsim_eval.pdm.drivable_map import build_drivable_map
from navsim_eval.pdm.ego_areas import DRIVABLE_AREA_TYPES
from navsim_eval.pdm.footprint import box_corners, polygons_from_corners
from vla.configuration_dipole import BevSettings
from vla.errors import VLAInputError
from vla.modeling_dipole import BEV_TARGET_KEY

MAP_QUERY_MARGIN_M = 5.0  # map entries are queried this far beyond the grid's farthest cell centre


def drivable_area_raster(scene: Scene, settings: BevSettings) -> np.ndarray:
    """(cells, cells) bool: cell centres inside the drivable area of the scene's map."""
    if scene.map_api is None:
        raise VLAInputError(BEV_TARGET_KEY, f"scene {scene.token}: the drivable_area channel needs the scene's map")
    centers = settings.cell_centers()
    origin = scene.current_frame.ego_status.ego_pose.astype(np.float64)
    points = relative_to_absolute_poses(origin, np.c_[centers, np.zeros(len(centers))])[:, :2]
    radius = float(np.linalg.norm(centers, axis=1).max()) + MAP_QUERY_MARGIN_M
    drivable = build_drivable_map(scene.map_api, origin[:2], radius)
    return drivable.is_in_types(points, DRIVABLE_AREA_TYPES).reshape(settings.cells, settings.cells)


def objects_raster(scene: Scene, settings: BevSettings) -> np.ndarray:
    """(cells, cells) bool: cells whose square intersects a current-frame box (ego frame)."""
    annotations = scene.current_frame.annotations
    if annotations is None:
        raise VLAInputError(BEV_TARGET_KEY, f"scene {scene.token}: the objects channel needs annotated boxes "
                                            "(this log has none, e.g. private test data)")
    boxes = np.asarray(annotations.boxes, dtype=np.float64).reshape(-1, 7)
    occupied = np.zeros(settings.cells * settings.cells, dtype=bool)
    if len(boxes):
        half = settings.cell_size_m / 2.0
        centers = settings.cell_centers()
        cells = shapely.box(centers[:, 0] - half, centers[:, 1] - half, centers[:, 0] + half, centers[:, 1] + half)
        _, hit = shapely.STRtree(cells).query(polygons_from_corners(box_corners(boxes[:, :2], boxes[:, 6], boxes[:, 3] / 2.0, boxes[:, 4] / 2.0)), predicate="intersects")
        occupied[hit] = True
    return occupied.reshape(settings.cells, settings.cells)


def _location_map(maps_root: Path, map_version: str, location: str):
    return load_map(maps_root, location, map_version)


CHANNEL_RASTERS: dict[str, Callable[[Scene, BevSettings], np.ndarray]] = {
    "drivable_area": drivable_area_raster,
    "objects": objects_raster,
}


def bev_target(scene: Scene, settings: BevSettings) -> np.ndarray:
    """(channels, cells, cells) uint8 target of one scene, channels in ``settings.channels`` order."""
    if not settings.enabled:
        raise VLAInputError(BEV_TARGET_KEY, "the model has no BEV decoder (bev.cells = 0)")
    return np.stack([CHANNEL_RASTERS[name](scene, settings) for name in settings.channels]).astype(np.uint8)


class BevTargetItems(torch.utils.data.Dataset):
    """The items of a scene dataset (a ``SceneDataset``) with ``bev_target`` added; its other attributes
    (``tokens``, ``loader``, ``target_poses`` ...) are the dataset's, so batchers treat it as the dataset."""

    def __init__(self, items: Sequence[dict], settings: BevSettings, paths: DataPaths):
        self.items = items
        self.settings = settings
        self.map_provider = partial(_location_map, paths.require_maps_root(), paths.map_version)
        self._targets: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("items", "settings", "map_provider", "_targets"):
            raise AttributeError(name)  # pickling / half-built objects must not recurse into ``items``
        return getattr(self.items, name)

    def target(self, token: str) -> np.ndarray:
        cached = self._targets.get(token)
        if cached is None:
            scene = self.items.loader.get_scene_from_token(token, sensor_config=SensorConfig.build_no_sensors())
            if scene.map_api is None:
                scene.map_api = self.map_provider(scene.scene_metadata.map_name)
            cached = self._targets[token] = bev_target(scene, self.settings)
        return cached

    def __getitem__(self, index: int) -> dict:
        item = dict(self.items[index])
        item[BEV_TARGET_KEY] = self.target(item["token"])
        return item
