"""Compiled geometric tests agree with shapely (closed-set quad intersection, strict point containment,
polygon distance) and with the vectorised footprint."""

from __future__ import annotations

import numpy as np
import shapely

from navsim_eval.pdm.compiled_geometry import (
    convex_quads,
    convex_quads_of_corners,
    polygon_tables,
    project_on_line,
    quad_entry_pairs,
    quad_polygon_distances,
    ring_table,
)
from navsim_eval.pdm.drivable_map import LANE, ROADBLOCK, DrivableMap
from navsim_eval.pdm.footprint import box_corners, ego_corners, ego_corners_into, polygons_from_corners


def test_quad_pairs_equal_shapely_intersects_including_touching_boxes():
    rng = np.random.default_rng(3)
    num_queries, num_entries = 400, 60
    queries = box_corners(rng.uniform(0, 30, (num_queries, 2)), rng.uniform(-np.pi, np.pi, num_queries), 2.5, 1.1)
    boxes = box_corners(rng.uniform(0, 30, (num_entries, 2)), rng.uniform(-np.pi, np.pi, num_entries),
                        rng.uniform(0.3, 3.0, num_entries), rng.uniform(0.3, 1.5, num_entries))
    # Touching cases: an axis-aligned query sharing an edge / a corner with an axis-aligned entry.
    queries[0] = [[2.0, 1.0], [0.0, 1.0], [0.0, 0.0], [2.0, 0.0]]
    boxes[0] = [[4.0, 1.0], [2.0, 1.0], [2.0, 0.5], [4.0, 0.5]]  # shares the edge x = 2
    queries[1] = [[2.0, 1.0], [0.0, 1.0], [0.0, 0.0], [2.0, 0.0]]
    boxes[1] = [[3.0, 2.0], [2.0, 2.0], [2.0, 1.0], [3.0, 1.0]]  # shares the corner (2, 1)
    entry_polygons = list(polygons_from_corners(boxes))
    entry_polygons[5] = shapely.Polygon([(10, 10), (14, 10), (14, 14), (12, 11), (10, 14)])  # concave: shapely
    entry_polygons = np.array(entry_polygons, dtype=object)
    steps = np.zeros(num_queries, dtype=np.int64)
    steps[0], steps[1] = 0, 1
    entry_step = np.zeros(num_entries, dtype=np.int64)
    entry_step[1] = 1
    order = np.argsort(entry_step, kind="stable")
    entry_polygons, entry_step = entry_polygons[order], entry_step[order]
    offsets = np.searchsorted(entry_step, np.arange(3))
    corners, is_quad = convex_quads(entry_polygons)
    assert is_quad.sum() == num_entries - 1
    outlines = ring_table(entry_polygons)
    query, entry = quad_entry_pairs(np.ascontiguousarray(queries), steps, offsets, shapely.bounds(entry_polygons),
                                    corners, is_quad, np.arange(num_entries), outlines.coordinates,
                                    outlines.coordinate_start, outlines.ring_start)
    query_polygons = polygons_from_corners(queries)
    expected = [(q, e) for q in range(num_queries) for e in range(offsets[steps[q]], offsets[steps[q] + 1])
                if shapely.intersects(query_polygons[q], entry_polygons[e])]
    assert list(zip(query.tolist(), entry.tolist())) == expected  # same pairs, query-major
    assert (0, int(np.flatnonzero(order == 0)[0])) in expected and (1, int(np.flatnonzero(order == 1)[0])) in expected
    concave = int(np.flatnonzero(order == 5)[0])
    assert any(e == concave for _, e in expected)  # the non-quad entry is hit by some query
    assert len(expected) > 20  # the random boxes do overlap


def test_containing_pairs_equal_shapely_within_with_holes_and_boundaries():
    rng = np.random.default_rng(4)
    road = shapely.Polygon(np.stack([np.linspace(0, 60, 200), 5 * np.sin(np.linspace(0, 6, 200))], 1).tolist()
                           + np.stack([np.linspace(60, 0, 200), 4 + 5 * np.sin(np.linspace(6, 0, 200))], 1).tolist())
    tall = shapely.Polygon([(0, 0), (3, 0), (3, 40), (0, 40)], holes=[[(1, 10), (2, 10), (2, 20), (1, 20)]])
    multi = shapely.MultiPolygon([shapely.box(40, 20, 45, 25), shapely.box(50, 20, 55, 25)])
    drivable = DrivableMap(["road", "tall", "multi"], [ROADBLOCK, LANE, ROADBLOCK], [road, tall, multi])
    points = np.concatenate([rng.uniform([-2, -6], [62, 42], (4000, 2)),
                             [[0.0, 5.0], [3.0, 5.0], [1.5, 10.0], [1.0, 15.0], [40.0, 22.0], [1.5, 0.0]]])
    got = drivable.contains_points(points)
    expected = np.stack([shapely.contains_xy(p, points[:, 0], points[:, 1]) for p in drivable.polygons], axis=1)
    np.testing.assert_array_equal(got, expected)
    assert expected.sum(axis=0).min() > 10
    # On the boundary is outside: the tall lane's outer edges and its hole's edges, the multipolygon's edge.
    assert not got[[-6, -5, -4, -3, -1], 1].any() and not got[-2, 2]


def test_quad_polygon_distance_equals_shapely_distance_bit_for_bit():
    rng = np.random.default_rng(5)
    num = 2000
    quads = box_corners(rng.uniform(0, 30, (num, 2)), rng.uniform(-np.pi, np.pi, num), 2.5, 1.1)
    boxes = box_corners(rng.uniform(0, 30, (40, 2)), rng.uniform(-np.pi, np.pi, 40), rng.uniform(0.3, 3.0, 40),
                        rng.uniform(0.3, 1.5, 40))
    polygons = list(polygons_from_corners(boxes))
    polygons.append(shapely.Polygon([(10, 10), (14, 10), (14, 14), (12, 11), (10, 14)]))  # concave
    polygons.append(shapely.Polygon([(0, 0), (20, 0), (20, 20), (0, 20)], holes=[[(5, 5), (15, 5), (15, 15), (5, 15)]]))
    polygons.append(shapely.MultiPolygon([shapely.box(40, 0, 42, 2), shapely.box(25, 25, 27, 26)]))
    # a turning lane connector: a band along a quarter circle, 80 vertices (segments far from the quad are skipped)
    angles = np.linspace(0.0, np.pi / 2.0, 40)
    arc = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    polygons.append(shapely.Polygon(np.concatenate([5.0 + 12.0 * arc, (5.0 + 15.5 * arc)[::-1]])))
    polygons = np.array(polygons, dtype=object)
    which = rng.integers(0, len(polygons), num)
    which[::7] = len(polygons) - 1
    got = quad_polygon_distances(quads, which, ring_table(polygons))
    expected = shapely.distance(polygons_from_corners(quads), polygons[which])
    np.testing.assert_array_equal(got, expected)
    assert (expected == 0).sum() > 50 and (expected > 0).sum() > 1000


def test_compiled_ego_corners_equal_vectorised_ones():
    poses = np.random.default_rng(6).uniform([-100, -100, -4], [100, 100, 4], (200, 3))
    out = np.empty((4, 2))
    for pose in poses:
        ego_corners_into(pose[0], pose[1], pose[2], out)
        np.testing.assert_array_equal(out, ego_corners(pose))


def test_projection_on_a_line_equals_shapely_line_locate_point_bit_for_bit():
    rng = np.random.default_rng(7)
    line = np.cumsum(rng.normal(size=(300, 2)), axis=0)
    line[10] = line[9]  # a repeated vertex
    points = np.concatenate([line[rng.integers(0, len(line), 1000)] + rng.normal(scale=2.0, size=(1000, 2)),
                             line[:40], (line[:40] + line[1:41]) / 2.0, [[1e3, 1e3], [-1e3, 0.0]]])
    expected = shapely.line_locate_point(shapely.LineString(line), shapely.points(points))
    np.testing.assert_array_equal(project_on_line(np.ascontiguousarray(line), points), expected)


def test_ring_table_and_convex_quads_list_every_ring_in_order():
    """Boxes only (one ring each, the fast path) and with holes and multi-part polygons (the general path):
    rings and coordinates in shapely's order; only strictly convex 4-gons count as quads."""
    rng = np.random.default_rng(5)
    boxes = polygons_from_corners(box_corners(rng.normal(scale=50.0, size=(40, 2)), rng.uniform(-3, 3, 40), 2.0, 1.0))
    holed = shapely.box(0, 0, 10, 10).difference(shapely.box(2, 2, 4, 4))
    multi = shapely.MultiPolygon([shapely.box(20, 0, 21, 1), shapely.box(30, 0, 31, 1)])
    arrow = shapely.Polygon([(0, 0), (4, 2), (0, 4), (1, 2)])  # a concave 4-gon
    for polygons in (boxes, np.concatenate([boxes[:3], [holed, multi, arrow]])):
        table = ring_table(polygons)
        rings = [ring for p in polygons for part in shapely.get_parts(p) for ring in shapely.get_rings(part)]
        assert len(table.coordinate_start) == len(rings) + 1
        for index, ring in enumerate(rings):
            run = table.coordinates[table.coordinate_start[index]:table.coordinate_start[index + 1]]
            assert np.array_equal(run, shapely.get_coordinates(ring))
        per_polygon = [sum(len(shapely.get_rings(part)) for part in shapely.get_parts(p)) for p in polygons]
        assert table.ring_start.tolist() == np.concatenate([[0], np.cumsum(per_polygon)]).tolist()
    corners, is_quad = convex_quads(np.concatenate([boxes[:3], [holed, multi, arrow]]))
    assert is_quad.tolist() == [True, True, True, False, False, False]
    assert np.array_equal(corners[:3], shapely.get_coordinates(boxes[:3]).reshape(3, 5, 2)[:, :4])


def test_polygon_tables_equal_the_separate_quads_ring_table_and_bounds():
    """One coordinate read (boxes only; boxes with other hole-free polygons) or the separate calls (holes,
    multi-part polygons): the same corners, flags, rings and bounds as convex_quads, ring_table, shapely.bounds."""
    rng = np.random.default_rng(11)
    corners = box_corners(rng.normal(scale=50.0, size=(30, 2)), rng.uniform(-3, 3, 30), 2.0, 1.0)
    corners[4] = corners[4, [0, 2, 1, 3]]  # a self-crossing 4-gon: not a convex quad
    boxes = polygons_from_corners(corners)
    lane = shapely.Polygon([(0, 0), (10, 0), (12, 3), (10, 6), (0, 6)])
    triangle = shapely.Polygon([(0, 0), (3, 0), (0, 3)])
    arrow = shapely.Polygon([(0, 0), (4, 2), (0, 4), (1, 2)])
    holed = shapely.box(0, 0, 10, 10).difference(shapely.box(2, 2, 4, 4))
    multi = shapely.MultiPolygon([shapely.box(20, 0, 21, 1), shapely.box(30, 0, 31, 1)])
    for polygons in (boxes, np.concatenate([boxes[:5], [lane, triangle, arrow], boxes[5:9]]),
                     np.concatenate([boxes[:3], [holed, multi, lane]]), np.zeros(0, dtype=object)):
        quads, is_quad, table, bounds = polygon_tables(polygons)
        expected_quads, expected_is_quad = convex_quads(polygons)
        np.testing.assert_array_equal(quads, expected_quads)
        np.testing.assert_array_equal(is_quad, expected_is_quad)
        np.testing.assert_array_equal(bounds, shapely.bounds(polygons).reshape(-1, 4))
        if len(polygons):
            expected = ring_table(polygons)
            for field in ("coordinates", "coordinate_start", "ring_start"):
                np.testing.assert_array_equal(getattr(table, field), getattr(expected, field))
        else:
            assert len(table.ring_start) == 1 and len(table.coordinates) == 0
    assert not polygon_tables(boxes)[1][4] and polygon_tables(boxes)[1][:4].all()


def test_convex_quads_of_corners_turn_the_same_way_at_every_corner():
    square = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    quads = np.stack([square, square[::-1], square[[0, 2, 1, 3]], [[0, 0], [1, 0], [2, 0], [1, 1]],
                      [[0, 0], [4, 2], [0, 4], [1, 2]]])
    corners, convex = convex_quads_of_corners(quads)
    assert convex.tolist() == [True, True, False, False, False]  # either orientation; crossing, flat, concave no
    np.testing.assert_array_equal(corners[:2], quads[:2])
    assert not corners[2:].any()
