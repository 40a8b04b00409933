"""Drivable-area map of a scene: roadblocks, lanes, lane connectors, intersections, carparks (spec §3.2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
import shapely
from shapely import STRtree

from data_pipelines.maps import MapLayer, NuPlanMap
from navsim_eval.pdm.compiled_geometry import EdgeIndex, edge_index
from navsim_eval.pdm.compiled_geometry import containing_pairs as compiled_containing_pairs

# Radius of the proximal map query around the ego box centre [m] (spec §3.2).
DRIVABLE_MAP_RADIUS = 100.0
# Entry types (nuPlan semantic layer names) in the order the map lists them (spec §3.2).
ROADBLOCK = MapLayer.ROADBLOCK.value
LANE = MapLayer.LANE.value
LANE_CONNECTOR = MapLayer.LANE_CONNECTOR.value
INTERSECTION = MapLayer.INTERSECTION.value
CARPARK_AREA = MapLayer.CARPARK_AREA.value
DRIVABLE_TYPES = (ROADBLOCK, LANE, LANE_CONNECTOR, INTERSECTION, CARPARK_AREA)


@dataclass
class DrivableMap:
    """Map entries (token = map id, type, polygon) in the official order, with an STRtree in that order."""

    tokens: list[str]
    types: list[str]
    polygons: np.ndarray  # object array of shapely Polygons
    _tree: Optional[STRtree] = field(default=None, init=False, repr=False, compare=False)
    _bounds: Optional[np.ndarray] = field(default=None, init=False, repr=False, compare=False)
    _edge_index: Optional[EdgeIndex] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.tokens = [str(t) for t in self.tokens]
        self.types = [str(t) for t in self.types]
        self.polygons = np.asarray(list(self.polygons) if not isinstance(self.polygons, np.ndarray) else self.polygons,
                                   dtype=object).reshape(-1)
        if not len(self.tokens) == len(self.types) == len(self.polygons):
            raise ValueError(
                f"drivable map: {len(self.tokens)} tokens, {len(self.types)} types, {len(self.polygons)} polygons")
        unknown = sorted(set(self.types) - set(DRIVABLE_TYPES))
        if unknown:
            raise ValueError(f"drivable map: unknown entry type(s) {unknown}")

    def __len__(self) -> int:
        return len(self.tokens)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_tree"] = None
        state["_edge_index"] = None  # rebuilt on first use
        return state

    @property
    def tree(self) -> STRtree:
        """STRtree over all polygons (indices = entry order)."""
        if self._tree is None:
            self._tree = STRtree(self.polygons)
        return self._tree

    def type_mask(self, types: Iterable[str]) -> np.ndarray:
        """(K,) bool: entries whose type is one of `types`."""
        wanted = set(types)
        return np.array([t in wanted for t in self.types], dtype=bool)

    def indices_of(self, types: Iterable[str]) -> np.ndarray:
        return np.flatnonzero(self.type_mask(types))

    def intersecting(self, geometry: shapely.Geometry) -> list[str]:
        """Tokens of the entries intersecting a geometry, in the tree's query order."""
        return [self.tokens[i] for i in self.tree.query(geometry, predicate="intersects")]

    def containing_pairs(self, points: np.ndarray, entries: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """(point index, entry index) of every point strictly within an entry (default: all entries).

        One compiled pass (`compiled_geometry.containing_pairs`): per entry, the points strictly inside its
        bounding box (binary search on the points sorted by x) get a ray-crossing test against the edges of
        their band of the entry (`edge_index`); strict containment: a point on the boundary is outside, as
        `within`. Pairs are entry-major, points by increasing x.
        """
        xy = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 2)
        entries = np.arange(len(self)) if entries is None else np.asarray(entries, dtype=np.int64).reshape(-1)
        if len(entries) == 0 or len(xy) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        index = self.edge_index
        order = np.argsort(xy[:, 0], kind="stable")
        return compiled_containing_pairs(xy, order, entries, self.bounds, index.axis, index.u_min, index.band_width,
                                         index.num_bands, index.band_start, index.band_offsets, index.band_edges,
                                         index.edges)

    @property
    def edge_index(self) -> EdgeIndex:
        """Boundary edges bucketed for the point tests (built once per map object)."""
        if self._edge_index is None:
            self._edge_index = edge_index(self.polygons, self.bounds)
        return self._edge_index

    @property
    def bounds(self) -> np.ndarray:
        """(K, 4) bounding boxes x_min, y_min, x_max, y_max (computed once)."""
        if self._bounds is None:
            self._bounds = shapely.bounds(self.polygons).reshape(-1, 4)
        return self._bounds

    def contains_points(self, points: np.ndarray, types: Optional[Sequence[str]] = None) -> np.ndarray:
        """(N, K') bool: point n lies strictly within entry k (entries restricted to `types`, in map order)."""
        xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        index = np.arange(len(self)) if types is None else self.indices_of(types)
        result = np.zeros((len(xy), len(index)), dtype=bool)
        column_of = -np.ones(len(self), dtype=np.int64)
        column_of[index] = np.arange(len(index))
        point, entry = self.containing_pairs(xy, index)
        result[point, column_of[entry]] = True
        return result

    def is_in_types(self, points: np.ndarray, types: Sequence[str]) -> np.ndarray:
        """(N,) bool: the point lies strictly within some entry of the given types."""
        return self.contains_points(points, types).any(axis=1)


def build_drivable_map(
    map_api: NuPlanMap, center_xy: Sequence[float], radius: float = DRIVABLE_MAP_RADIUS
) -> DrivableMap:
    """Entries around the ego box centre in the official order (spec §3.2): roadblocks, the lanes of each
    roadblock, the lane connectors of each roadblock connector, intersections, carparks."""
    point = (float(center_xy[0]), float(center_xy[1]))
    roadblocks = map_api.get_proximal(MapLayer.ROADBLOCK, point, radius)
    connectors = map_api.get_proximal(MapLayer.ROADBLOCK_CONNECTOR, point, radius)
    tokens: list[str] = []
    types: list[str] = []
    polygons: list[shapely.Geometry] = []

    def add(objects, type_name: str) -> None:
        for obj in objects:
            tokens.append(obj.id)
            types.append(type_name)
            polygons.append(obj.polygon)

    add(roadblocks, ROADBLOCK)
    for block in roadblocks:
        add(map_api.get_interior_edges(block), LANE)
    for block in connectors:
        add(map_api.get_interior_edges(block), LANE_CONNECTOR)
    add(map_api.get_proximal(MapLayer.INTERSECTION, point, radius), INTERSECTION)
    add(map_api.get_proximal(MapLayer.CARPARK_AREA, point, radius), CARPARK_AREA)
    return DrivableMap(tokens=tokens, types=types, polygons=np.array(polygons, dtype=object))
