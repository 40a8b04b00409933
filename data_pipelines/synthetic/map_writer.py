"""Write layout instances as nuPlan GPKG maps (one file per location) plus the map-version JSON.

Schema (layer names, order, columns, dtypes, geometry types) is that of the nuPlan maps as read by the
devkit; see docs/synthetic_world.md. Written with pyogrio's raw API (no geopandas).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import shapely
from pyogrio import raw
from shapely.geometry import LineString

from data_pipelines.synthetic.layouts import (
    BOUNDARY_TYPE_FID, INTERSECTION_TYPE_FID, LANE_TYPE_FID, STOP_POLYGON_TYPE_FID, LayoutInstance,
)

MAP_VERSION_NAME = "nuplan-maps-v1.0"
# nuPlan map locations, their released map versions and UTM zones (navsim_data.md §2.1, golden README).
LOCATIONS = {
    "sg-one-north": {"version": "9.17.1964", "epsg": 32648, "origin": (365000.0, 143000.0)},
    "us-ma-boston": {"version": "9.12.1817", "epsg": 32619, "origin": (330000.0, 4690000.0)},
    "us-nv-las-vegas-strip": {"version": "9.15.1915", "epsg": 32611, "origin": (664000.0, 3997000.0)},
    "us-pa-pittsburgh-hazelwood": {"version": "9.17.1937", "epsg": 32617, "origin": (587000.0, 4475000.0)},
}
FIXED_GPKG_DATE = "2021-01-01T00:00:00.000Z"  # GDAL stamps GPKG metadata with this instead of the clock

# Layer order and column schema (name, dtype) of a nuPlan map as the devkit reads it.
LAYER_SCHEMA: dict[str, tuple[str | None, list[tuple[str, str]]]] = {
    "boundaries": ("LineString", [("boundary_type_fid", "int64")]),
    "lanes_polygons": ("Polygon", [("lane_fid", "int64"), ("lane_group_fid", "int64"), ("lane_index", "int64"),
                                   ("left_boundary_fid", "int64"), ("right_boundary_fid", "int64"),
                                   ("speed_limit_mps", "float64"), ("lane_type_fid", "int64")]),
    "lane_groups_polygons": ("Polygon", [("road_segment_fid", "int64")]),
    "road_segments": ("Polygon", []),
    "baseline_paths": ("LineString", [("lane_fid", "int64"), ("lane_connector_fid", "int64")]),
    "lane_connectors": ("LineString", [("exit_lane_fid", "int64"), ("entry_lane_fid", "int64"),
                                       ("lane_group_connector_fid", "int64"), ("speed_limit_mps", "float64"),
                                       ("traffic_light_stop_line_fids", "object")]),
    "gen_lane_connectors_scaled_width_polygons": ("Polygon", [("lane_connector_fid", "int64"),
                                                              ("left_boundary_fid", "int64"),
                                                              ("right_boundary_fid", "int64")]),
    "lane_group_connectors": ("Polygon", [("from_lane_group_fid", "int64"), ("to_lane_group_fid", "int64"),
                                          ("intersection_fid", "int64")]),
    "stop_polygons": ("Polygon", [("stop_polygon_type_fid", "int64")]),
    "intersections": ("Polygon", [("intersection_type_fid", "int64")]),
    "crosswalks": ("Polygon", []),
    "walkways": ("Polygon", []),
    "carpark_areas": ("Polygon", []),
    "generic_drivable_areas": ("Polygon", []),
    "meta": (None, [("key", "object"), ("value", "object")]),
}


def _line(a: np.ndarray) -> LineString:
    return LineString(a)


def _rows(instances: list[LayoutInstance]) -> dict[str, list[tuple]]:
    """Per layer: rows of (fid, geometry, *fields)."""
    rows: dict[str, list[tuple]] = {name: [] for name in LAYER_SCHEMA}
    for inst in instances:
        for bid, pts in inst.boundaries.items():
            rows["boundaries"].append((bid, _line(pts), BOUNDARY_TYPE_FID))
        for rb in inst.roadblocks.values():
            rows["lane_groups_polygons"].append((rb.id, rb.polygon, rb.road_segment_id))
            rows["road_segments"].append((rb.road_segment_id, rb.polygon))
            for lane_id in rb.lane_ids:
                lane = inst.lanes[lane_id]
                rows["lanes_polygons"].append((lane.id, lane.polygon, lane.id, lane.roadblock_id, lane.index,
                                               lane.left_boundary_id, lane.right_boundary_id, lane.speed_limit,
                                               LANE_TYPE_FID))
        for rbc in inst.roadblock_connectors.values():
            rows["lane_group_connectors"].append((rbc.id, rbc.polygon, rbc.from_roadblock, rbc.to_roadblock,
                                                  rbc.intersection_id))
            for cid in rbc.lane_connector_ids:
                lc = inst.connectors[cid]
                rows["lane_connectors"].append((lc.id, _line(lc.centerline), lc.from_lane, lc.to_lane, rbc.id,
                                                lc.speed_limit, str(lc.stop_polygon_id)))
                rows["gen_lane_connectors_scaled_width_polygons"].append(
                    (lc.polygon_id, lc.polygon, lc.id, lc.left_boundary_id, lc.right_boundary_id))
        for fid, poly in inst.stop_polygons:
            rows["stop_polygons"].append((fid, poly, STOP_POLYGON_TYPE_FID))
        for fid, poly in inst.intersections:
            rows["intersections"].append((fid, poly, INTERSECTION_TYPE_FID))
        for layer, items in (("crosswalks", inst.crosswalks), ("walkways", inst.walkways),
                             ("carpark_areas", inst.carparks), ("generic_drivable_areas", inst.generic_areas)):
            rows[layer].extend((fid, poly) for fid, poly in items)
    return rows


def _baseline_rows(instances: list[LayoutInstance], next_id: int) -> list[tuple]:
    """Baseline paths get fresh ids after every other object (lanes first, then connectors)."""
    out = []
    for inst in instances:
        for lane in inst.lanes.values():
            lane.baseline_id = next_id
            out.append((next_id, _line(lane.centerline), lane.id, -1))
            next_id += 1
        for lc in inst.connectors.values():
            lc.baseline_id = next_id
            out.append((next_id, _line(lc.centerline), -1, lc.id))
            next_id += 1
    return out


def write_location_map(path: Path, location: str, instances: list[LayoutInstance], baseline_id_start: int) -> None:
    """Write one GPKG with every layer of LAYER_SCHEMA (empty layers included)."""
    os.environ["OGR_CURRENT_DATE"] = FIXED_GPKG_DATE
    os.environ["OGR_SQLITE_SYNCHRONOUS"] = "OFF"  # no fsync per layer; the file is written once
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    epsg = LOCATIONS[location]["epsg"]
    crs = f"EPSG:{epsg}"
    rows = _rows(instances)
    rows["baseline_paths"] = _baseline_rows(instances, baseline_id_start)
    rows["meta"] = [(1, None, "projectedCoordSystem", crs), (2, None, "version", "synthetic")]
    first = True
    for layer, (geometry_type, columns) in LAYER_SCHEMA.items():
        layer_rows = rows[layer]
        fids = np.array([r[0] for r in layer_rows], dtype=np.int64)
        field_data = [fids] + [np.array([r[2 + k] for r in layer_rows], dtype=dtype)
                               for k, (_, dtype) in enumerate(columns)]
        names = ["fid"] + [name for name, _ in columns]
        if geometry_type is None:
            geometry = None
        else:
            geometry = shapely.to_wkb(np.array([r[1] for r in layer_rows], dtype=object)) if layer_rows else \
                np.array([], dtype=object)
        raw.write(str(path), geometry, field_data, fields=names, geometry_type=geometry_type,
                  crs=crs if geometry_type else None, layer=layer, driver="GPKG", append=not first)
        first = False


def write_maps(maps_root: Path, instances_by_location: dict[str, list[LayoutInstance]]) -> dict[str, Path]:
    """Write the four location maps and `nuplan-maps-v1.0.json`; returns the GPKG path per location."""
    maps_root.mkdir(parents=True, exist_ok=True)
    index = {}
    paths = {}
    for location, spec in LOCATIONS.items():
        instances = instances_by_location.get(location, [])
        path = maps_root / location / spec["version"] / "map.gpkg"
        write_location_map(path, location, instances, baseline_id_start=_max_id(instances) + 1)
        index[location] = {"version": spec["version"], "layers": {}}
        paths[location] = path
    (maps_root / f"{MAP_VERSION_NAME}.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return paths


def _max_id(instances: list[LayoutInstance]) -> int:
    ids = [0]
    for inst in instances:
        ids += list(inst.lanes) + list(inst.connectors) + list(inst.roadblocks) + list(inst.roadblock_connectors)
        ids += [lc.polygon_id for lc in inst.connectors.values()] + list(inst.boundaries)
        ids += [rb.road_segment_id for rb in inst.roadblocks.values()]
        for name in ("intersections", "crosswalks", "stop_polygons", "walkways", "carparks", "generic_areas"):
            ids += [i for i, _ in getattr(inst, name)]
    return max(ids)
