"""nuPlan GPKG vector map: typed objects, lane/roadblock graph and proximity queries (spec pdm_score.md §2)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry import Point

from data_pipelines.maps.errors import MissingMapLayerError, UnknownMapObjectError
from data_pipelines.maps.gpkg import LayerTable, id_to_str, list_gpkg_layers, read_layer
from data_pipelines.maps.layers import (
    GPKG_LAYER_OF,
    LANE_CONNECTOR_POLYGON_LAYER,
    META_LAYER,
    PROJECTED_CRS_KEY,
    REQUIRED_GPKG_LAYERS,
    MapLayer,
)
from data_pipelines.maps.locations import DEFAULT_MAP_VERSION, map_file_path, resolve_location
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
)

PointLike = Union[Point, Sequence[float], np.ndarray]
GRAPH_LAYERS = (MapLayer.LANE, MapLayer.LANE_CONNECTOR, MapLayer.ROADBLOCK, MapLayer.ROADBLOCK_CONNECTOR)


def _xy(point: PointLike) -> tuple[float, float]:
    if isinstance(point, Point):
        return float(point.x), float(point.y)
    return float(point[0]), float(point[1])


class _Layer:
    """Objects of one semantic layer in file order, with an id index and a lazily built STRtree."""

    def __init__(self, layer: MapLayer, objects: list[MapObject]):
        self.layer = layer
        self.objects = objects
        self.ids: tuple[str, ...] = tuple(o.id for o in objects)
        self.index = {object_id: i for i, object_id in enumerate(self.ids)}
        self.geometries = np.array([o.geometry for o in objects], dtype=object)
        self._tree: Optional[STRtree] = None

    @property
    def tree(self) -> STRtree:
        if self._tree is None:
            self._tree = STRtree(self.geometries)
        return self._tree


class NuPlanMap:
    """One location's map read from `<root>/<location>/<version>/map.gpkg`.

    Layers are read on first use; every geometry is expressed in the CRS named by the `meta` layer's
    `projectedCoordSystem` row. Object ids are the GPKG fids as strings. Lists are in file order.
    """

    def __init__(self, maps_root: Union[str, Path], location: str, map_version: str = DEFAULT_MAP_VERSION):
        self.maps_root = Path(maps_root)
        self.location = resolve_location(location)
        self.map_version = map_version
        self.path, self.version = map_file_path(self.maps_root, self.location, map_version)
        present = list_gpkg_layers(self.path, self.location)
        for name in REQUIRED_GPKG_LAYERS:
            if name not in present:
                raise MissingMapLayerError(self.path, name, self.location)
        self.crs = self._read_projected_crs()
        self._layers: dict[MapLayer, _Layer] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ loading
    def _read_projected_crs(self) -> str:
        table = read_layer(self.path, META_LAYER, self.location, required_columns=("key", "value"))
        keys = [str(k) for k in table.column("key")]
        if PROJECTED_CRS_KEY not in keys:
            raise MissingMapLayerError(self.path, META_LAYER, self.location, f"no row with key {PROJECTED_CRS_KEY!r}")
        return str(table.column("value")[keys.index(PROJECTED_CRS_KEY)])

    def _read(self, name: str, columns: tuple[str, ...] = ()) -> LayerTable:
        table = read_layer(self.path, name, self.location, required_columns=columns, target_crs=self.crs)
        if table.geometries is None:
            raise MissingMapLayerError(self.path, name, self.location, "layer has no geometry column")
        return table

    def _layer(self, layer: MapLayer) -> _Layer:
        cached = self._layers.get(layer)
        if cached is not None:
            return cached
        with self._lock:
            if layer not in self._layers:
                if layer in GRAPH_LAYERS:
                    self._build_graph_layers()
                elif layer == MapLayer.BASELINE_PATH:
                    table = self._read(GPKG_LAYER_OF[layer])
                    self._layers[layer] = _Layer(layer, [
                        MapObject(fid, layer, geom) for fid, geom in zip(table.fids, table.geometries)])
                else:
                    table = self._read(GPKG_LAYER_OF[layer])
                    self._layers[layer] = _Layer(layer, [
                        PolygonMapObject(fid, layer, geom) for fid, geom in zip(table.fids, table.geometries)])
        return self._layers[layer]

    def _build_graph_layers(self) -> None:
        lanes = self._read("lanes_polygons", ("lane_group_fid", "speed_limit_mps"))
        connectors = self._read(
            "lane_connectors", ("exit_lane_fid", "entry_lane_fid", "lane_group_connector_fid", "speed_limit_mps"))
        connector_polygons = self._read(LANE_CONNECTOR_POLYGON_LAYER, ("lane_connector_fid",))
        roadblocks = self._read("lane_groups_polygons")
        roadblock_connectors = self._read("lane_group_connectors", ("from_lane_group_fid", "to_lane_group_fid"))
        baselines = self._read("baseline_paths", ("lane_fid", "lane_connector_fid"))

        lane_baseline: dict[str, BaselinePath] = {}
        connector_baseline: dict[str, BaselinePath] = {}
        for fid, geom, lane_fid, connector_fid in zip(
            baselines.fids, baselines.geometries, baselines.column("lane_fid"), baselines.column("lane_connector_fid")
        ):
            lane_id, connector_id = id_to_str(lane_fid), id_to_str(connector_fid)
            if lane_id is not None:
                lane_baseline.setdefault(lane_id, BaselinePath(fid, geom))
            if connector_id is not None:
                connector_baseline.setdefault(connector_id, BaselinePath(fid, geom))

        connector_polygon: dict[str, object] = {}
        for geom, connector_fid in zip(connector_polygons.geometries, connector_polygons.column("lane_connector_fid")):
            connector_id = id_to_str(connector_fid)
            if connector_id is not None:
                connector_polygon.setdefault(connector_id, geom)

        exit_ids = [id_to_str(v) for v in connectors.column("exit_lane_fid")]
        entry_ids = [id_to_str(v) for v in connectors.column("entry_lane_fid")]
        group_ids = [id_to_str(v) for v in connectors.column("lane_group_connector_fid")]
        lane_incoming: dict[str, list[str]] = {}
        lane_outgoing: dict[str, list[str]] = {}
        block_connector_interior: dict[str, list[str]] = {}
        for fid, exit_id, entry_id, group_id in zip(connectors.fids, exit_ids, entry_ids, group_ids):
            if exit_id is not None:
                lane_outgoing.setdefault(exit_id, []).append(fid)
            if entry_id is not None:
                lane_incoming.setdefault(entry_id, []).append(fid)
            if group_id is not None:
                block_connector_interior.setdefault(group_id, []).append(fid)

        lane_group_ids = [id_to_str(v) for v in lanes.column("lane_group_fid")]
        roadblock_interior: dict[str, list[str]] = {}
        lane_objects: list[MapObject] = []
        lane_limits = lanes.column("speed_limit_mps")
        for fid, geom, group_id, limit in zip(lanes.fids, lanes.geometries, lane_group_ids, lane_limits):
            if group_id is not None:
                roadblock_interior.setdefault(group_id, []).append(fid)
            lane_objects.append(Lane(
                id=fid, layer=MapLayer.LANE, geometry=geom, roadblock_id=group_id or "",
                baseline_path=self._require(lane_baseline, fid, "baseline_paths"),
                speed_limit_mps=_speed_limit(limit),
                incoming_edge_ids=tuple(lane_incoming.get(fid, ())),
                outgoing_edge_ids=tuple(lane_outgoing.get(fid, ())),
            ))

        stop_lines = connectors.columns.get("traffic_light_stop_line_fids")
        connector_objects: list[MapObject] = []
        for i, fid in enumerate(connectors.fids):
            connector_objects.append(LaneConnector(
                id=fid, layer=MapLayer.LANE_CONNECTOR,
                geometry=self._require(connector_polygon, fid, LANE_CONNECTOR_POLYGON_LAYER),
                roadblock_id=group_ids[i] or "",
                baseline_path=self._require(connector_baseline, fid, "baseline_paths"),
                speed_limit_mps=_speed_limit(connectors.column("speed_limit_mps")[i]),
                incoming_edge_ids=(exit_ids[i],) if exit_ids[i] is not None else (),
                outgoing_edge_ids=(entry_ids[i],) if entry_ids[i] is not None else (),
                traffic_light_stop_line_ids=_id_list(stop_lines[i]) if stop_lines is not None else (),
            ))

        from_ids = [id_to_str(v) for v in roadblock_connectors.column("from_lane_group_fid")]
        to_ids = [id_to_str(v) for v in roadblock_connectors.column("to_lane_group_fid")]
        roadblock_incoming: dict[str, list[str]] = {}
        roadblock_outgoing: dict[str, list[str]] = {}
        for fid, from_id, to_id in zip(roadblock_connectors.fids, from_ids, to_ids):
            if from_id is not None:
                roadblock_outgoing.setdefault(from_id, []).append(fid)
            if to_id is not None:
                roadblock_incoming.setdefault(to_id, []).append(fid)
        roadblock_objects: list[MapObject] = [
            RoadBlock(
                id=fid, layer=MapLayer.ROADBLOCK, geometry=geom,
                interior_edge_ids=tuple(roadblock_interior.get(fid, ())),
                incoming_edge_ids=tuple(roadblock_incoming.get(fid, ())),
                outgoing_edge_ids=tuple(roadblock_outgoing.get(fid, ())),
            )
            for fid, geom in zip(roadblocks.fids, roadblocks.geometries)
        ]
        intersections = roadblock_connectors.columns.get("intersection_fid")
        block_connector_objects: list[MapObject] = [
            RoadBlockConnector(
                id=fid, layer=MapLayer.ROADBLOCK_CONNECTOR, geometry=roadblock_connectors.geometries[i],
                interior_edge_ids=tuple(block_connector_interior.get(fid, ())),
                incoming_edge_ids=(from_ids[i],) if from_ids[i] is not None else (),
                outgoing_edge_ids=(to_ids[i],) if to_ids[i] is not None else (),
                intersection_id=id_to_str(intersections[i]) if intersections is not None else None,
            )
            for i, fid in enumerate(roadblock_connectors.fids)
        ]
        self._layers[MapLayer.LANE] = _Layer(MapLayer.LANE, lane_objects)
        self._layers[MapLayer.LANE_CONNECTOR] = _Layer(MapLayer.LANE_CONNECTOR, connector_objects)
        self._layers[MapLayer.ROADBLOCK] = _Layer(MapLayer.ROADBLOCK, roadblock_objects)
        self._layers[MapLayer.ROADBLOCK_CONNECTOR] = _Layer(MapLayer.ROADBLOCK_CONNECTOR, block_connector_objects)

    def _require(self, mapping: dict, object_id: str, layer: str):
        try:
            return mapping[object_id]
        except KeyError:
            raise MissingMapLayerError(
                self.path, layer, self.location, f"no row for map object id {object_id!r}") from None

    # ------------------------------------------------------------------ objects
    def get_all_map_objects(self, layer: MapLayer) -> list[MapObject]:
        """All objects of a layer in file order."""
        return list(self._layer(MapLayer(layer)).objects)

    def get_ids(self, layer: MapLayer) -> tuple[str, ...]:
        return self._layer(MapLayer(layer)).ids

    def get_geometries(self, layer: MapLayer) -> np.ndarray:
        """Object array of the layer's shapely geometries in file order."""
        return self._layer(MapLayer(layer)).geometries

    def has_map_object(self, object_id: str, layer: MapLayer) -> bool:
        return str(object_id) in self._layer(MapLayer(layer)).index

    def get_map_object(self, object_id: str, layer: MapLayer) -> MapObject:
        """The object with that id; UnknownMapObjectError naming id, layer and location otherwise."""
        data = self._layer(MapLayer(layer))
        index = data.index.get(str(object_id))
        if index is None:
            raise UnknownMapObjectError(str(object_id), MapLayer(layer).value, self.location)
        return data.objects[index]

    def get_lane(self, lane_id: str) -> Lane:
        return self.get_map_object(lane_id, MapLayer.LANE)  # type: ignore[return-value]

    def get_lane_connector(self, connector_id: str) -> LaneConnector:
        return self.get_map_object(connector_id, MapLayer.LANE_CONNECTOR)  # type: ignore[return-value]

    def get_roadblock(self, roadblock_id: str) -> RoadBlock:
        return self.get_map_object(roadblock_id, MapLayer.ROADBLOCK)  # type: ignore[return-value]

    def get_roadblock_connector(self, connector_id: str) -> RoadBlockConnector:
        return self.get_map_object(connector_id, MapLayer.ROADBLOCK_CONNECTOR)  # type: ignore[return-value]

    def get_lane_graph_edge(self, edge_id: str) -> LaneGraphEdge:
        """The lane with that id, else the lane connector with that id."""
        if self.has_map_object(edge_id, MapLayer.LANE):
            return self.get_lane(edge_id)
        return self.get_lane_connector(edge_id)

    def get_roadblock_or_connector(self, block_id: str) -> RoadBlockBase:
        """The roadblock with that id, else the roadblock connector with that id."""
        if self.has_map_object(block_id, MapLayer.ROADBLOCK):
            return self.get_roadblock(block_id)
        return self.get_roadblock_connector(block_id)

    # ------------------------------------------------------------------ graph
    def get_interior_edges(self, block: RoadBlockBase) -> list[LaneGraphEdge]:
        """Lanes of a roadblock / lane connectors of a roadblock connector, in file order."""
        return [self.get_map_object(i, block.interior_layer) for i in block.interior_edge_ids]  # type: ignore[misc]

    def get_incoming_edges(self, obj: Union[LaneGraphEdge, RoadBlockBase]) -> list[MapObject]:
        return [self.get_map_object(i, obj.neighbour_layer) for i in obj.incoming_edge_ids]

    def get_outgoing_edges(self, obj: Union[LaneGraphEdge, RoadBlockBase]) -> list[MapObject]:
        return [self.get_map_object(i, obj.neighbour_layer) for i in obj.outgoing_edge_ids]

    # ------------------------------------------------------------------ spatial queries
    def get_strtree(self, layer: MapLayer) -> STRtree:
        """STRtree over the layer's geometries (indices = file order)."""
        return self._layer(MapLayer(layer)).tree

    def get_proximal_indices(self, layer: MapLayer, point: PointLike, radius: float) -> np.ndarray:
        """File-order indices of the objects intersecting the axis-aligned square [p ± radius] (spec §2)."""
        data = self._layer(MapLayer(layer))
        if not data.objects:
            return np.zeros(0, dtype=np.int64)
        x, y = _xy(point)
        square = shapely.box(x - radius, y - radius, x + radius, y + radius)
        return np.sort(data.tree.query(square, predicate="intersects"))

    def get_proximal(self, layer: MapLayer, point: PointLike, radius: float) -> list[MapObject]:
        """Objects of one layer intersecting the square [p ± radius], in file order."""
        objects = self._layer(MapLayer(layer)).objects
        return [objects[i] for i in self.get_proximal_indices(layer, point, radius)]

    def get_proximal_map_objects(
        self, point: PointLike, radius: float, layers: Iterable[MapLayer]
    ) -> dict[MapLayer, list[MapObject]]:
        """Per layer, the objects intersecting the square [p ± radius], in file order."""
        return {MapLayer(layer): self.get_proximal(layer, point, radius) for layer in layers}

    def get_nearest(self, layer: MapLayer, point: PointLike) -> tuple[Optional[MapObject], float]:
        """Nearest object of a layer to a point (first in file order among ties) and its distance."""
        data = self._layer(MapLayer(layer))
        if not data.objects:
            return None, float("inf")
        indices, distances = data.tree.query_nearest(Point(*_xy(point)), return_distance=True, all_matches=True)
        best = int(np.min(indices))
        return data.objects[best], float(np.min(distances))

    def is_in_layer(self, point: PointLike, layer: MapLayer) -> bool:
        """Whether the point lies strictly within some polygon of the layer."""
        data = self._layer(MapLayer(layer))
        if not data.objects:
            return False
        return len(data.tree.query(Point(*_xy(point)), predicate="within")) > 0

    def speed_limit(self, edge_id: str) -> Optional[float]:
        """Speed limit (m/s) of a lane or lane connector; None when the map has none."""
        return self.get_lane_graph_edge(edge_id).speed_limit_mps

    def __repr__(self) -> str:
        return f"NuPlanMap(location={self.location!r}, version={self.version!r}, path={str(self.path)!r})"


def _speed_limit(value: object) -> Optional[float]:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _id_list(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
    else:
        items = str(value).replace("[", "").replace("]", "").split(",")
    return tuple(i for i in (id_to_str(item) for item in items) if i is not None)


_MAP_CACHE: dict[tuple[str, str, str], NuPlanMap] = {}
_MAP_CACHE_LOCK = threading.Lock()


def load_map(maps_root: Union[str, Path], location: str, map_version: str = DEFAULT_MAP_VERSION) -> NuPlanMap:
    """The map of a location (alias `las_vegas` accepted), cached per (root, location, index version)."""
    canonical = resolve_location(location)
    key = (str(Path(maps_root).resolve()), canonical, map_version)
    with _MAP_CACHE_LOCK:
        cached = _MAP_CACHE.get(key)
        if cached is None:
            cached = NuPlanMap(maps_root, canonical, map_version)
            _MAP_CACHE[key] = cached
    return cached


def clear_map_cache() -> None:
    """Forget every cached map (tests, long-running processes)."""
    with _MAP_CACHE_LOCK:
        _MAP_CACHE.clear()
