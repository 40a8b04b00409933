"""nuPlan GPKG map reader (without nuplan-devkit): typed objects, lane graph, proximity queries."""

from data_pipelines.maps.errors import (
    MapFileError,
    MissingMapLayerError,
    UnknownMapLocationError,
    UnknownMapObjectError,
)
from data_pipelines.maps.layers import MapLayer
from data_pipelines.maps.locations import (
    DEFAULT_MAP_VERSION,
    LOCATION_ALIASES,
    MAP_LOCATIONS,
    map_file_path,
    resolve_location,
)
from data_pipelines.maps.nuplan_map import NuPlanMap, clear_map_cache, load_map
from data_pipelines.maps.objects import (
    BaselinePath,
    Lane,
    LaneConnector,
    LaneGraphEdge,
    MapObject,
    PolygonMapObject,
    RoadBlock,
    RoadBlockBase,
    RoadBlockConnector,
    discretize_linestring,
)

__all__ = [
    "DEFAULT_MAP_VERSION", "LOCATION_ALIASES", "MAP_LOCATIONS", "BaselinePath", "Lane", "LaneConnector",
    "LaneGraphEdge", "MapFileError", "MapLayer", "MapObject", "MissingMapLayerError", "NuPlanMap",
    "PolygonMapObject", "RoadBlock", "RoadBlockBase", "RoadBlockConnector", "UnknownMapLocationError",
    "UnknownMapObjectError", "clear_map_cache", "discretize_linestring", "load_map", "map_file_path",
    "resolve_location",
]
