"""Typed map objects with shapely geometry. Relations are stored as id tuples in file order."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon
from shapely.geometry.base import BaseGeometry

from data_pipelines.maps.layers import MapLayer


def discretize_linestring(line: LineString) -> np.ndarray:
    """Poses (N, 3) = (x, y, heading) at the vertices of `line` (spec pdm_score.md §2).

    The heading of vertex i is the direction to vertex i+1; the last vertex repeats the previous heading.
    """
    xy = shapely.get_coordinates(line)
    poses = np.zeros((len(xy), 3), dtype=np.float64)
    poses[:, :2] = xy
    if len(xy) >= 2:
        delta = np.diff(xy, axis=0)
        headings = np.arctan2(delta[:, 1], delta[:, 0])
        poses[:-1, 2] = headings
        poses[-1, 2] = headings[-1]
    return poses


@dataclass(eq=False)
class BaselinePath:
    """Centre line of a lane or lane connector."""

    id: str
    linestring: LineString

    @cached_property
    def discrete_path(self) -> np.ndarray:
        """(N, 3) poses x, y, heading at the linestring's vertices."""
        return discretize_linestring(self.linestring)

    @cached_property
    def length(self) -> float:
        return float(self.linestring.length)


@dataclass(eq=False)
class MapObject:
    """Any map object: its id (the GPKG fid as a string), layer and geometry."""

    id: str
    layer: MapLayer
    geometry: BaseGeometry

    @property
    def polygon(self) -> Polygon:
        return self.geometry  # type: ignore[return-value]


@dataclass(eq=False)
class LaneGraphEdge(MapObject):
    """A lane or a lane connector: a node of the lane graph."""

    roadblock_id: str = ""
    baseline_path: Optional[BaselinePath] = None
    speed_limit_mps: Optional[float] = None
    incoming_edge_ids: tuple[str, ...] = ()
    outgoing_edge_ids: tuple[str, ...] = ()

    @property
    def neighbour_layer(self) -> MapLayer:
        """Layer of the incoming/outgoing edges (lanes connect to connectors and vice versa)."""
        return MapLayer.LANE_CONNECTOR if self.layer == MapLayer.LANE else MapLayer.LANE


@dataclass(eq=False)
class Lane(LaneGraphEdge):
    """Lane (`lanes_polygons`): incoming/outgoing edges are lane connectors."""


@dataclass(eq=False)
class LaneConnector(LaneGraphEdge):
    """Lane connector (`lane_connectors` + its scaled-width polygon): incoming/outgoing edges are lanes."""

    traffic_light_stop_line_ids: tuple[str, ...] = field(default=())


@dataclass(eq=False)
class RoadBlockBase(MapObject):
    """A roadblock or roadblock connector: a node of the roadblock graph with interior lane-graph edges."""

    interior_edge_ids: tuple[str, ...] = ()
    incoming_edge_ids: tuple[str, ...] = ()
    outgoing_edge_ids: tuple[str, ...] = ()

    @property
    def interior_layer(self) -> MapLayer:
        return MapLayer.LANE if self.layer == MapLayer.ROADBLOCK else MapLayer.LANE_CONNECTOR

    @property
    def neighbour_layer(self) -> MapLayer:
        return MapLayer.ROADBLOCK_CONNECTOR if self.layer == MapLayer.ROADBLOCK else MapLayer.ROADBLOCK


@dataclass(eq=False)
class RoadBlock(RoadBlockBase):
    """Roadblock (`lane_groups_polygons`): its lanes in file order; neighbours are roadblock connectors."""


@dataclass(eq=False)
class RoadBlockConnector(RoadBlockBase):
    """Roadblock connector (`lane_group_connectors`): its lane connectors; neighbours are roadblocks."""

    intersection_id: Optional[str] = None


@dataclass(eq=False)
class PolygonMapObject(MapObject):
    """Intersection, crosswalk, walkway, carpark, generic drivable area, road segment or stop polygon."""
