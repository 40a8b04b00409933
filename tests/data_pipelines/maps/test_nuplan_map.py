"""NuPlanMap against the golden GPKG files: objects, graph, baseline paths, proximity queries."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyogrio import raw

from data_pipelines.maps import (
    MAP_LOCATIONS,
    Lane,
    LaneConnector,
    MapLayer,
    RoadBlock,
    RoadBlockConnector,
    UnknownMapObjectError,
    load_map,
)

BOSTON = "us-ma-boston"  # the junction layout: lanes, connectors, roadblock connectors, intersection


def _raw(map_api, layer):
    meta, fids, wkb, fields = raw.read(map_api.path, layer=layer, return_fids=True)
    return [str(f) for f in fids], dict(zip(meta["fields"], fields)), wkb


def test_all_locations_load_with_string_ids(maps_root):
    for location in MAP_LOCATIONS:
        map_api = load_map(maps_root, location)
        lanes = map_api.get_all_map_objects(MapLayer.LANE)
        assert lanes and all(isinstance(lane, Lane) and isinstance(lane.id, str) for lane in lanes)
        fids, _, _ = _raw(map_api, "lanes_polygons")
        assert [lane.id for lane in lanes] == fids  # file order
        assert map_api.crs.startswith("EPSG:")


def test_map_is_cached_and_alias_resolves(maps_root):
    assert load_map(maps_root, "las_vegas") is load_map(maps_root, "us-nv-las-vegas-strip")
    assert load_map(maps_root, BOSTON) is load_map(str(maps_root), BOSTON)


def test_lane_graph_matches_raw_columns(maps_root):
    map_api = load_map(maps_root, BOSTON)
    fids, columns, _ = _raw(map_api, "lane_connectors")
    exits = [str(v) for v in columns["exit_lane_fid"]]
    entries = [str(v) for v in columns["entry_lane_fid"]]
    groups = [str(v) for v in columns["lane_group_connector_fid"]]
    for lane in map_api.get_all_map_objects(MapLayer.LANE):
        assert list(lane.outgoing_edge_ids) == [f for f, e in zip(fids, exits) if e == lane.id]
        assert list(lane.incoming_edge_ids) == [f for f, e in zip(fids, entries) if e == lane.id]
        for connector in map_api.get_outgoing_edges(lane):
            assert isinstance(connector, LaneConnector)
            assert connector.incoming_edge_ids == (lane.id,)
    for fid, exit_id, entry_id, group in zip(fids, exits, entries, groups):
        connector = map_api.get_lane_connector(fid)
        assert connector.outgoing_edge_ids == (entry_id,) and connector.roadblock_id == group
        assert fid in map_api.get_roadblock_connector(group).interior_edge_ids


def test_roadblock_graph_matches_raw_columns(maps_root):
    map_api = load_map(maps_root, BOSTON)
    fids, columns, _ = _raw(map_api, "lane_group_connectors")
    sources = [str(v) for v in columns["from_lane_group_fid"]]
    targets = [str(v) for v in columns["to_lane_group_fid"]]
    lane_fids, lane_columns, _ = _raw(map_api, "lanes_polygons")
    for block in map_api.get_all_map_objects(MapLayer.ROADBLOCK):
        assert isinstance(block, RoadBlock)
        assert list(block.outgoing_edge_ids) == [f for f, s in zip(fids, sources) if s == block.id]
        assert list(block.incoming_edge_ids) == [f for f, t in zip(fids, targets) if t == block.id]
        expected_lanes = [f for f, g in zip(lane_fids, lane_columns["lane_group_fid"]) if str(g) == block.id]
        assert list(block.interior_edge_ids) == expected_lanes
        assert all(lane.roadblock_id == block.id for lane in map_api.get_interior_edges(block))
    for fid, source, target in zip(fids, sources, targets):
        connector = map_api.get_roadblock_connector(fid)
        assert isinstance(connector, RoadBlockConnector)
        assert [b.id for b in map_api.get_incoming_edges(connector)] == [source]
        assert [b.id for b in map_api.get_outgoing_edges(connector)] == [target]


def test_discrete_baseline_path_heading_rule(maps_root):
    map_api = load_map(maps_root, BOSTON)
    for edge in map_api.get_all_map_objects(MapLayer.LANE) + map_api.get_all_map_objects(MapLayer.LANE_CONNECTOR):
        poses = edge.baseline_path.discrete_path
        xy = shapely.get_coordinates(edge.baseline_path.linestring)
        np.testing.assert_array_equal(poses[:, :2], xy)
        for i in range(len(xy) - 1):
            assert poses[i, 2] == np.arctan2(xy[i + 1, 1] - xy[i, 1], xy[i + 1, 0] - xy[i, 0])
        assert poses[-1, 2] == poses[-2, 2]
        assert edge.baseline_path.length == pytest.approx(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())


def test_speed_limits_may_be_missing(maps_root):
    map_api = load_map(maps_root, BOSTON)
    _, columns, _ = _raw(map_api, "lane_connectors")
    limits = [map_api.speed_limit(c.id) for c in map_api.get_all_map_objects(MapLayer.LANE_CONNECTOR)]
    assert [v is None for v in limits] == list(np.isnan(columns["speed_limit_mps"]))
    assert all(isinstance(v, float) for v in limits if v is not None)
    assert all(lane.speed_limit_mps is not None for lane in map_api.get_all_map_objects(MapLayer.LANE))


@pytest.mark.parametrize("layer", [MapLayer.ROADBLOCK, MapLayer.ROADBLOCK_CONNECTOR, MapLayer.LANE,
                                   MapLayer.LANE_CONNECTOR, MapLayer.INTERSECTION, MapLayer.CROSSWALK])
def test_proximal_query_is_square_intersection_in_file_order(maps_root, layer):
    map_api = load_map(maps_root, BOSTON)
    geometries = map_api.get_geometries(layer)
    ids = map_api.get_ids(layer)
    bounds = shapely.total_bounds(geometries)
    rng = np.random.default_rng(0)
    for _ in range(40):
        point = rng.uniform(bounds[:2] - 20.0, bounds[2:] + 20.0)
        radius = float(rng.choice([1.0, 5.0, 30.0, 100.0]))
        square = shapely.box(point[0] - radius, point[1] - radius, point[0] + radius, point[1] + radius)
        expected = [i for i, g in zip(ids, geometries) if g.intersects(square)]
        assert [o.id for o in map_api.get_proximal(layer, point, radius)] == expected


def test_nearest_and_point_in_layer(maps_root):
    map_api = load_map(maps_root, BOSTON)
    intersection = map_api.get_all_map_objects(MapLayer.INTERSECTION)[0].polygon
    inside = intersection.representative_point()
    assert map_api.is_in_layer(inside, MapLayer.INTERSECTION)
    corner = shapely.get_coordinates(intersection.exterior)[0]
    assert not map_api.is_in_layer(corner, MapLayer.INTERSECTION)  # boundary is outside (strict)
    far = np.array(corner) + 1000.0
    nearest, distance = map_api.get_nearest(MapLayer.ROADBLOCK, far)
    brute = [g.distance(shapely.Point(far)) for g in map_api.get_geometries(MapLayer.ROADBLOCK)]
    assert nearest.id == map_api.get_ids(MapLayer.ROADBLOCK)[int(np.argmin(brute))]
    assert distance == pytest.approx(min(brute))


def test_roadblock_or_connector_lookup_and_unknown_ids(maps_root):
    map_api = load_map(maps_root, BOSTON)
    connector_id = map_api.get_ids(MapLayer.ROADBLOCK_CONNECTOR)[0]
    assert isinstance(map_api.get_roadblock_or_connector(connector_id), RoadBlockConnector)
    with pytest.raises(UnknownMapObjectError, match="us-ma-boston.*LANE.*999999"):
        map_api.get_map_object("999999", MapLayer.LANE)
    with pytest.raises(KeyError):
        map_api.get_lane_graph_edge("999999")
