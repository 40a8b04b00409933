"""Semantic map layers and the GPKG layer names they are read from (spec pdm_score.md §2)."""

from __future__ import annotations

from enum import Enum


class MapLayer(str, Enum):
    """Map object kinds; the values are the nuPlan semantic layer names (used as drivable-map types)."""

    LANE = "LANE"
    LANE_CONNECTOR = "LANE_CONNECTOR"
    ROADBLOCK = "ROADBLOCK"
    ROADBLOCK_CONNECTOR = "ROADBLOCK_CONNECTOR"
    BASELINE_PATH = "BASELINE_PATH"
    BOUNDARY = "BOUNDARY"
    INTERSECTION = "INTERSECTION"
    CROSSWALK = "CROSSWALK"
    WALKWAY = "WALKWAY"
    CARPARK_AREA = "CARPARK_AREA"
    GENERIC_DRIVABLE_AREA = "GENERIC_DRIVABLE_AREA"
    ROAD_SEGMENT = "ROAD_SEGMENT"
    STOP_POLYGON = "STOP_POLYGON"


# GPKG layer holding the geometry of each semantic layer (nuPlan map schema).
GPKG_LAYER_OF: dict[MapLayer, str] = {
    MapLayer.LANE: "lanes_polygons",
    MapLayer.LANE_CONNECTOR: "lane_connectors",
    MapLayer.ROADBLOCK: "lane_groups_polygons",
    MapLayer.ROADBLOCK_CONNECTOR: "lane_group_connectors",
    MapLayer.BASELINE_PATH: "baseline_paths",
    MapLayer.BOUNDARY: "boundaries",
    MapLayer.INTERSECTION: "intersections",
    MapLayer.CROSSWALK: "crosswalks",
    MapLayer.WALKWAY: "walkways",
    MapLayer.CARPARK_AREA: "carpark_areas",
    MapLayer.GENERIC_DRIVABLE_AREA: "generic_drivable_areas",
    MapLayer.ROAD_SEGMENT: "road_segments",
    MapLayer.STOP_POLYGON: "stop_polygons",
}

LANE_CONNECTOR_POLYGON_LAYER = "gen_lane_connectors_scaled_width_polygons"
META_LAYER = "meta"
# Row key of the `meta` layer naming the projected CRS every layer is re-projected to (spec §2).
PROJECTED_CRS_KEY = "projectedCoordSystem"

# Every layer the map API requires to exist (spec §2: unused layers must still exist).
REQUIRED_GPKG_LAYERS: tuple[str, ...] = (
    *GPKG_LAYER_OF.values(),
    LANE_CONNECTOR_POLYGON_LAYER,
    META_LAYER,
)

# Layers whose objects are plain polygons (no graph attributes).
POLYGON_LAYERS: tuple[MapLayer, ...] = (
    MapLayer.INTERSECTION,
    MapLayer.CROSSWALK,
    MapLayer.WALKWAY,
    MapLayer.CARPARK_AREA,
    MapLayer.GENERIC_DRIVABLE_AREA,
    MapLayer.ROAD_SEGMENT,
    MapLayer.STOP_POLYGON,
)
