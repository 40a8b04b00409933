"""Compiled (numba, cached) geometric tests of the scorer: ego quadrilaterals against obstacle boxes, points
strictly inside drivable-map polygons.

The scorer's geometric tests are many small ones (a scene has ~5-40 obstacles per step and 33 x 41 ego
footprints, 4 look-ahead shifts for TTC); in numpy/shapely each costs mostly per-call overhead (building shapely
polygons, pair expansion). Here one compiled call runs the bounding-box filter and the exact test for all
(query, entry) pairs. See docs/pdm_scorer.md, "Speed".
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import shapely

from navsim_eval.pdm.footprint import closed_rings


QUAD_RING_COORDINATES = 5  # a closed ring of 4 corners


def convex_quads(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(corners (E, 4, 2), is_convex_quad (E,)) of shapely polygons: entries with a 4-vertex exterior, no
    holes and a strictly convex, non-degenerate outline (every box of an observation); others get zeros."""
    polygons = np.asarray(polygons, dtype=object).reshape(-1)
    corners = np.zeros((len(polygons), 4, 2))
    is_quad = np.zeros(len(polygons), dtype=bool)
    if len(polygons) == 0:
        return corners, is_quad
    simple = ((shapely.get_type_id(polygons) == shapely.GeometryType.POLYGON)
              & (shapely.get_num_interior_rings(polygons) == 0))
    simple[simple] = shapely.get_num_coordinates(polygons[simple]) == QUAD_RING_COORDINATES
    if simple.any():
        # A polygon without holes lists its exterior ring's coordinates (no ring objects made).
        coordinates = shapely.get_coordinates(polygons[simple]).reshape(-1, QUAD_RING_COORDINATES, 2)[:, :4]
        index = np.flatnonzero(simple)
        corners[index], is_quad[index] = convex_quads_of_corners(coordinates)
    return corners, is_quad


def polygon_tables(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray, "RingTable", np.ndarray]:
    """(:func:`convex_quads` corners and flags, :func:`ring_table`, `shapely.bounds` (P, 4)) of polygons (P,):
    the same values, with the coordinates read once when every polygon is a hole-free Polygon (an observation's
    boxes and lane connectors; the three separate calls each read them again)."""
    polygons = np.asarray(polygons, dtype=object).reshape(-1)
    if len(polygons) == 0:
        return (np.zeros((0, 4, 2)), np.zeros(0, dtype=bool), RingTable(np.zeros((0, 2)), np.zeros(1, np.int64),
                                                                         np.zeros(1, np.int64)), np.zeros((0, 4)))
    counts = shapely.get_num_coordinates(polygons)
    if not (np.all(shapely.get_type_id(polygons) == shapely.GeometryType.POLYGON) and np.all(counts > 0)
            and not shapely.get_num_interior_rings(polygons).any()):
        return (*convex_quads(polygons), ring_table(polygons), shapely.bounds(polygons).reshape(-1, 4))
    coordinates = np.ascontiguousarray(shapely.get_coordinates(polygons), dtype=np.float64).reshape(-1, 2)
    coordinate_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    table = RingTable(coordinates, coordinate_start, np.arange(len(polygons) + 1, dtype=np.int64))
    bounds = shapely.bounds(polygons).reshape(-1, 4)  # cheaper than numpy reductions over the rings
    if np.all(counts == QUAD_RING_COORDINATES):  # boxes only: one reshape
        return (*convex_quads_of_corners(coordinates.reshape(-1, QUAD_RING_COORDINATES, 2)[:, :4]), table, bounds)
    corners, is_quad = np.zeros((len(polygons), 4, 2)), np.zeros(len(polygons), dtype=bool)
    quad = np.flatnonzero(counts == QUAD_RING_COORDINATES)
    if len(quad):
        rows = coordinate_start[quad][:, None] + np.arange(4)
        corners[quad], is_quad[quad] = convex_quads_of_corners(coordinates[rows])
    return corners, is_quad, table, bounds


def convex_quads_of_corners(coordinates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`convex_quads` of the polygons whose rings list the corners (N, 4, 2), without making them."""
    coordinates = np.asarray(coordinates, dtype=np.float64).reshape(-1, 4, 2)
    x, y = coordinates[:, :, 0], coordinates[:, :, 1]
    edge_x = np.concatenate([x[:, 1:] - x[:, :-1], x[:, :1] - x[:, 3:]], axis=1)  # corner i + 1 - corner i
    edge_y = np.concatenate([y[:, 1:] - y[:, :-1], y[:, :1] - y[:, 3:]], axis=1)
    # turn at corner i + 1: cross product of edges i and i + 1 (column-wise: reductions over the short axis
    # cost more than the arithmetic)
    turns = [edge_x[:, i] * edge_y[:, (i + 1) % 4] - edge_y[:, i] * edge_x[:, (i + 1) % 4] for i in range(4)]
    convex = (((turns[0] > 0.0) & (turns[1] > 0.0) & (turns[2] > 0.0) & (turns[3] > 0.0))
              | ((turns[0] < 0.0) & (turns[1] < 0.0) & (turns[2] < 0.0) & (turns[3] < 0.0)))
    return np.where(convex[:, None, None], coordinates, 0.0), convex


@numba.njit(cache=True)
def _orientation(quad):  # pragma: no cover - compiled
    """+1 for a counter-clockwise quad, -1 for clockwise (signed area)."""
    area = 0.0
    for i in range(4):
        j = (i + 1) % 4
        area += quad[i, 0] * quad[j, 1] - quad[j, 0] * quad[i, 1]
    return 1.0 if area > 0.0 else -1.0


@numba.njit(cache=True)
def _separated_by_edges(first, first_sign, second):  # pragma: no cover - compiled
    """Some edge line of `first` has all of `second` strictly outside (a separating axis)."""
    for i in range(4):
        j = (i + 1) % 4
        ex = first[j, 0] - first[i, 0]
        ey = first[j, 1] - first[i, 1]
        outside = True
        for k in range(4):
            cross = ex * (second[k, 1] - first[i, 1]) - ey * (second[k, 0] - first[i, 0])
            if cross * first_sign >= 0.0:
                outside = False
                break
        if outside:
            return True
    return False


@numba.njit(cache=True)
def quad_entry_pairs(corners, steps, offsets, bounds, entry_corners, is_quad, outline, coordinates,
                     coordinate_start, ring_start):  # pragma: no cover - compiled
    """(query, entry) pairs of query quads (N, 4, 2) intersecting the entries of their step (closed sets).

    `steps` (N,) index the step-major entries through `offsets` (num_steps + 1,); steps outside have none.
    Pairs with overlapping closed bounding boxes are tested: convex-quad entries by the separating-axis test on
    the eight edge lines (touching counts), other entries (red-light lane connectors) by a zero distance to
    their outline `outline[e]` of the ring table (`quad_polygon_distance`). Pairs are query-major, entries in
    step order.
    """
    num = corners.shape[0]
    num_steps = offsets.shape[0] - 1
    capacity = 64
    query = np.empty(capacity, dtype=np.int64)
    entry = np.empty(capacity, dtype=np.int64)
    count = 0
    for q in range(num):
        step = steps[q]
        if step < 0 or step >= num_steps:
            continue
        quad = corners[q]
        x_min = min(min(quad[0, 0], quad[1, 0]), min(quad[2, 0], quad[3, 0]))
        x_max = max(max(quad[0, 0], quad[1, 0]), max(quad[2, 0], quad[3, 0]))
        y_min = min(min(quad[0, 1], quad[1, 1]), min(quad[2, 1], quad[3, 1]))
        y_max = max(max(quad[0, 1], quad[1, 1]), max(quad[2, 1], quad[3, 1]))
        sign = 0.0
        for e in range(offsets[step], offsets[step + 1]):
            if not (x_min <= bounds[e, 2] and x_max >= bounds[e, 0] and y_min <= bounds[e, 3] and y_max >= bounds[e, 1]):
                continue
            if is_quad[e]:
                if sign == 0.0:
                    sign = _orientation(quad)
                other = entry_corners[e]
                if _separated_by_edges(quad, sign, other) or _separated_by_edges(other, _orientation(other), quad):
                    continue
            else:
                u = outline[e]
                if quad_polygon_distance(quad, coordinates, coordinate_start, ring_start[u], ring_start[u + 1]) > 0.0:
                    continue
            if count == capacity:
                capacity *= 2
                query = _grown(query, capacity)
                entry = _grown(entry, capacity)
            query[count] = q
            entry[count] = e
            count += 1
    return query[:count], entry[:count]


@numba.njit(cache=True)
def _grown(array, capacity):  # pragma: no cover - compiled
    out = np.empty(capacity, dtype=array.dtype)
    out[: array.shape[0]] = array
    return out


# ------------------------------------------------------------------------------------- points in map polygons


@dataclass(frozen=True)
class EdgeIndex:
    """Boundary edges of polygons, bucketed for ray-crossing point tests (built once per drivable map).

    Per entry the ray runs along its bounding box's shorter side (axis `w`), so the edges are bucketed into
    bands of the longer side (axis `u`): a point only meets the edges of its band. Edges are (u1, w1, u2, w2).
    """

    edges: np.ndarray  # (M, 4) float
    axis: np.ndarray  # (E,) int: 0 when u = x, 1 when u = y
    u_min: np.ndarray  # (E,)
    band_width: np.ndarray  # (E,)
    num_bands: np.ndarray  # (E,) int
    band_start: np.ndarray  # (E,) int: the entry's first band in `band_offsets`
    band_offsets: np.ndarray  # (total bands + 1,) int: start of each band in `band_edges`
    band_edges: np.ndarray  # (sum of band sizes,) int: edge indices


EDGES_PER_BAND = 2  # target band occupancy; an edge may span several bands
MAX_BANDS = 512  # per entry


def edge_index(polygons: np.ndarray, bounds: np.ndarray) -> EdgeIndex:
    """The :class:`EdgeIndex` of polygons (E,) (Polygons or MultiPolygons, holes included) with bounds (E, 4)."""
    polygons = np.asarray(polygons, dtype=object).reshape(-1)
    table = ring_table(polygons)
    bounds = np.ascontiguousarray(bounds, dtype=np.float64).reshape(-1, 4)
    width = bounds[:, 2] - bounds[:, 0]
    height = bounds[:, 3] - bounds[:, 1]
    axis = np.where(width >= height, 0, 1).astype(np.int64)
    u_min = np.where(axis == 0, bounds[:, 0], bounds[:, 1])
    extent = np.maximum(np.where(axis == 0, width, height), 0.0)
    edges, edge_offsets = _oriented_edges(table.coordinates, table.coordinate_start, table.ring_start, axis)
    num_bands = np.clip(np.diff(edge_offsets) // EDGES_PER_BAND, 1, MAX_BANDS).astype(np.int64)
    band_width = np.where(extent > 0.0, extent / num_bands, 1.0)
    band_start = (np.cumsum(num_bands) - num_bands).astype(np.int64)
    band_offsets, band_edges = _bucket_edges(edges, edge_offsets, u_min, band_width, num_bands, band_start)
    return EdgeIndex(edges, axis, u_min, band_width, num_bands, band_start, band_offsets, band_edges)


@numba.njit(cache=True)
def _oriented_edges(coordinates, coordinate_start, ring_start, axis):  # pragma: no cover - compiled
    """((M, 4) edges (u1, w1, u2, w2) of every ring, entry-major; (E + 1,) start of each entry's edges)."""
    num_entries = ring_start.shape[0] - 1
    edge_offsets = np.zeros(num_entries + 1, dtype=np.int64)
    for e in range(num_entries):
        count = 0
        for ring in range(ring_start[e], ring_start[e + 1]):
            count += max(coordinate_start[ring + 1] - coordinate_start[ring] - 1, 0)
        edge_offsets[e + 1] = edge_offsets[e] + count
    edges = np.empty((edge_offsets[-1], 4))
    m = 0
    for e in range(num_entries):
        u, w = (0, 1) if axis[e] == 0 else (1, 0)
        for ring in range(ring_start[e], ring_start[e + 1]):
            for c in range(coordinate_start[ring], coordinate_start[ring + 1] - 1):
                edges[m, 0] = coordinates[c, u]
                edges[m, 1] = coordinates[c, w]
                edges[m, 2] = coordinates[c + 1, u]
                edges[m, 3] = coordinates[c + 1, w]
                m += 1
    return edges, edge_offsets


@numba.njit(cache=True)
def _band_of(u, u_min, band_width, num_bands):  # pragma: no cover - compiled
    band = int(np.floor((u - u_min) / band_width))
    return min(max(band, 0), num_bands - 1)


@numba.njit(cache=True)
def _bucket_edges(edges, edge_offsets, u_min, band_width, num_bands, band_start):  # pragma: no cover - compiled
    """CSR (band offsets, edge indices) of every entry's edges per band of its u span (closed)."""
    total_bands = num_bands.sum()
    counts = np.zeros(total_bands + 1, dtype=np.int64)
    for e in range(edge_offsets.shape[0] - 1):
        for m in range(edge_offsets[e], edge_offsets[e + 1]):
            low = _band_of(min(edges[m, 0], edges[m, 2]), u_min[e], band_width[e], num_bands[e])
            high = _band_of(max(edges[m, 0], edges[m, 2]), u_min[e], band_width[e], num_bands[e])
            for band in range(low, high + 1):
                counts[band_start[e] + band + 1] += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    band_edges = np.empty(offsets[-1], dtype=np.int64)
    for e in range(edge_offsets.shape[0] - 1):
        for m in range(edge_offsets[e], edge_offsets[e + 1]):
            low = _band_of(min(edges[m, 0], edges[m, 2]), u_min[e], band_width[e], num_bands[e])
            high = _band_of(max(edges[m, 0], edges[m, 2]), u_min[e], band_width[e], num_bands[e])
            for band in range(low, high + 1):
                band_edges[fill[band_start[e] + band]] = m
                fill[band_start[e] + band] += 1
    return offsets, band_edges


@numba.njit(cache=True)
def _strictly_inside(pu, pw, band, band_offsets, band_edges, edges):  # pragma: no cover - compiled
    """Ray-crossing parity along +w over the band's edges; a point on an edge is outside (strict)."""
    inside = False
    for index in range(band_offsets[band], band_offsets[band + 1]):
        m = band_edges[index]
        u1, w1, u2, w2 = edges[m, 0], edges[m, 1], edges[m, 2], edges[m, 3]
        cross = (u2 - u1) * (pw - w1) - (w2 - w1) * (pu - u1)
        if (cross == 0.0 and min(u1, u2) <= pu <= max(u1, u2) and min(w1, w2) <= pw <= max(w1, w2)):
            return False
        if (u1 > pu) != (u2 > pu):
            w_at = w1 + (pu - u1) * (w2 - w1) / (u2 - u1)
            if pw < w_at:
                inside = not inside
    return inside


@numba.njit(cache=True)
def containing_pairs(xy, order, entries, bounds, axis, u_min, band_width, num_bands, band_start, band_offsets,
                     band_edges, edges):  # pragma: no cover - compiled
    """(point, entry) pairs of points (N, 2) strictly within entries (entry-major, points by increasing x).

    `order` sorts the points by x; only points strictly inside an entry's bounding box are tested.
    """
    sorted_x = xy[order, 0]
    capacity = 64
    point_out = np.empty(capacity, dtype=np.int64)
    entry_out = np.empty(capacity, dtype=np.int64)
    count = 0
    for e in entries:
        first = np.searchsorted(sorted_x, bounds[e, 0], side="right")
        last = np.searchsorted(sorted_x, bounds[e, 2], side="left")
        for k in range(first, last):
            p = order[k]
            y = xy[p, 1]
            if not (y > bounds[e, 1] and y < bounds[e, 3]):
                continue
            if axis[e] == 0:
                pu, pw = xy[p, 0], y
            else:
                pu, pw = y, xy[p, 0]
            band = band_start[e] + _band_of(pu, u_min[e], band_width[e], num_bands[e])
            if not _strictly_inside(pu, pw, band, band_offsets, band_edges, edges):
                continue
            if count == capacity:
                capacity *= 2
                point_out = _grown(point_out, capacity)
                entry_out = _grown(entry_out, capacity)
            point_out[count] = p
            entry_out[count] = e
            count += 1
    return point_out[:count], entry_out[:count]


# ---------------------------------------------------------------------------- polygon distance (GEOS's formulas)


@dataclass(frozen=True)
class RingTable:
    """Polygons as rings (exteriors and holes of every part), for the compiled distance.

    Polygon i owns rings ring_start[i] .. ring_start[i + 1] - 1; ring r owns the closed coordinate run
    coordinates[coordinate_start[r] : coordinate_start[r + 1]].
    """

    coordinates: np.ndarray  # (M, 2)
    coordinate_start: np.ndarray  # (R + 1,) int
    ring_start: np.ndarray  # (P + 1,) int


def ring_table(polygons: np.ndarray) -> RingTable:
    """The :class:`RingTable` of polygons (P,) (Polygons or MultiPolygons)."""
    polygons = np.asarray(polygons, dtype=object).reshape(-1)
    if len(polygons) and np.all(shapely.get_type_id(polygons) == shapely.GeometryType.POLYGON) \
            and not shapely.get_num_interior_rings(polygons).any():
        # Polygons without holes (every box): one ring each, their coordinates in one call.
        counts = shapely.get_num_coordinates(polygons)
        coordinate_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        coordinates = np.ascontiguousarray(shapely.get_coordinates(polygons), dtype=np.float64).reshape(-1, 2)
        return RingTable(coordinates, coordinate_start, np.arange(len(polygons) + 1, dtype=np.int64))
    parts, part_polygon = shapely.get_parts(polygons, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coordinates, coordinate_ring = shapely.get_coordinates(rings, return_index=True)
    coordinate_start = np.searchsorted(coordinate_ring, np.arange(len(rings) + 1)).astype(np.int64)
    ring_start = np.searchsorted(part_polygon[ring_part], np.arange(len(polygons) + 1)).astype(np.int64)
    return RingTable(np.ascontiguousarray(coordinates, dtype=np.float64).reshape(-1, 2), coordinate_start, ring_start)


def ring_table_of_corners(corners: np.ndarray) -> RingTable:
    """:func:`ring_table` of the polygons whose rings list the corners (N, V, 2), without making them."""
    corners = np.asarray(corners, dtype=np.float64)
    count, run = len(corners), corners.shape[1] + 1
    coordinates = closed_rings(corners).reshape(-1, 2)
    return RingTable(np.ascontiguousarray(coordinates), np.arange(0, count * run + 1, run, dtype=np.int64),
                     np.arange(count + 1, dtype=np.int64))


def concatenate_ring_tables(first: RingTable, second: RingTable) -> RingTable:
    """The polygons of `first`, then those of `second`, in one table."""
    return RingTable(np.ascontiguousarray(np.concatenate([first.coordinates, second.coordinates]).reshape(-1, 2)),
                     np.concatenate([first.coordinate_start[:-1], second.coordinate_start + len(first.coordinates)]),
                     np.concatenate([first.ring_start[:-1], second.ring_start + len(first.coordinate_start) - 1]))


@numba.njit(cache=True)
def _point_distance(px, py, qx, qy):  # pragma: no cover - compiled
    dx = px - qx
    dy = py - qy
    return np.sqrt(dx * dx + dy * dy)


@numba.njit(cache=True)
def _point_segment_distance(px, py, ax, ay, bx, by):  # pragma: no cover - compiled
    """GEOS Distance::pointToSegment."""
    if ax == bx and ay == by:
        return _point_distance(px, py, ax, ay)
    len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay)
    r = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len2
    if r <= 0.0:
        return _point_distance(px, py, ax, ay)
    if r >= 1.0:
        return _point_distance(px, py, bx, by)
    s = ((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / len2
    return abs(s) * np.sqrt(len2)


@numba.njit(cache=True)
def _segment_distance(ax, ay, bx, by, cx, cy, dx, dy):  # pragma: no cover - compiled
    """GEOS Distance::segmentToSegment (0 when the segments intersect)."""
    if ax == bx and ay == by:
        return _point_segment_distance(ax, ay, cx, cy, dx, dy)
    if cx == dx and cy == dy:
        return _point_segment_distance(dx, dy, ax, ay, bx, by)
    no_intersection = False
    if (min(cx, dx) > max(ax, bx) or max(cx, dx) < min(ax, bx)
            or min(cy, dy) > max(ay, by) or max(cy, dy) < min(ay, by)):
        no_intersection = True
    else:
        denominator = (bx - ax) * (dy - cy) - (by - ay) * (dx - cx)
        if denominator == 0.0:
            no_intersection = True
        else:
            r_numerator = (ay - cy) * (dx - cx) - (ax - cx) * (dy - cy)
            s_numerator = (ay - cy) * (bx - ax) - (ax - cx) * (by - ay)
            s = s_numerator / denominator
            r = r_numerator / denominator
            if r < 0.0 or r > 1.0 or s < 0.0 or s > 1.0:
                no_intersection = True
    if no_intersection:
        return min(_point_segment_distance(ax, ay, cx, cy, dx, dy),
                   min(_point_segment_distance(bx, by, cx, cy, dx, dy),
                       min(_point_segment_distance(cx, cy, ax, ay, bx, by),
                           _point_segment_distance(dx, dy, ax, ay, bx, by))))
    return 0.0


@numba.njit(cache=True)
def _in_closed_rings(px, py, coordinates, coordinate_start, ring_first, ring_last):  # pragma: no cover - compiled
    """Point inside or on the polygon given by rings ring_first .. ring_last - 1 (ray-crossing parity)."""
    inside = False
    for ring in range(ring_first, ring_last):
        for m in range(coordinate_start[ring], coordinate_start[ring + 1] - 1):
            ax, ay = coordinates[m, 0], coordinates[m, 1]
            bx, by = coordinates[m + 1, 0], coordinates[m + 1, 1]
            cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
            if cross == 0.0 and min(ax, bx) <= px <= max(ax, bx) and min(ay, by) <= py <= max(ay, by):
                return True
            if (ay > py) != (by > py):
                x_at = ax + (py - ay) * (bx - ax) / (by - ay)
                if px < x_at:
                    inside = not inside
    return inside


# A bounding-box gap exceeding the best exact distance by more than this cannot hold the minimum: far above the
# rounding of either figure (~1e-12 m), far below any distance that matters.
BOUND_SLACK_M = 1e-6


@numba.njit(cache=True)
def quad_bounds(quad):  # pragma: no cover - compiled
    """(x_min, y_min, x_max, y_max) of a quadrilateral (4, 2)."""
    return (min(quad[0, 0], quad[1, 0], quad[2, 0], quad[3, 0]), min(quad[0, 1], quad[1, 1], quad[2, 1], quad[3, 1]),
            max(quad[0, 0], quad[1, 0], quad[2, 0], quad[3, 0]), max(quad[0, 1], quad[1, 1], quad[2, 1], quad[3, 1]))


@numba.njit(cache=True)
def box_gap_squared(low_x, low_y, high_x, high_y, other_low_x, other_low_y, other_high_x,
                    other_high_y):  # pragma: no cover - compiled
    """Squared distance between two closed axis-aligned boxes (0 when they meet): a lower bound of the squared
    distance between any geometries inside them."""
    gap_x = max(other_low_x - high_x, low_x - other_high_x, 0.0)
    gap_y = max(other_low_y - high_y, low_y - other_high_y, 0.0)
    return gap_x * gap_x + gap_y * gap_y


@numba.njit(cache=True)
def quad_polygon_distance(quad, coordinates, coordinate_start, ring_first, ring_last):  # pragma: no cover - compiled
    """Distance between the quadrilateral (4, 2) and the polygon of rings ring_first .. ring_last - 1 of a
    :class:`RingTable`, as GEOS DistanceOp computes it: 0 when the first vertex of one lies in the other (or
    of any of the polygon's rings in the quad), else the smallest segment-to-segment distance."""
    if _in_closed_rings(quad[0, 0], quad[0, 1], coordinates, coordinate_start, ring_first, ring_last):
        return 0.0
    quad_ring = np.empty((5, 2))
    quad_ring[:4] = quad
    quad_ring[4] = quad[0]
    quad_start = np.array([0, 5])
    for ring in range(ring_first, ring_last):
        m = coordinate_start[ring]
        if _in_closed_rings(coordinates[m, 0], coordinates[m, 1], quad_ring, quad_start, 0, 1):
            return 0.0
    # The smallest segment-to-segment distance; a polygon segment whose bounding box lies farther from the
    # quad's than the best so far (by more than BOUND_SLACK_M) is skipped: it cannot give the minimum.
    low_x, low_y, high_x, high_y = quad_bounds(quad)
    best = np.inf
    for ring in range(ring_first, ring_last):
        for m in range(coordinate_start[ring], coordinate_start[ring + 1] - 1):
            cx, cy, dx, dy = coordinates[m, 0], coordinates[m, 1], coordinates[m + 1, 0], coordinates[m + 1, 1]
            if box_gap_squared(low_x, low_y, high_x, high_y, min(cx, dx), min(cy, dy), max(cx, dx),
                               max(cy, dy)) > (best + BOUND_SLACK_M) ** 2:
                continue
            for i in range(4):
                distance = _segment_distance(quad_ring[i, 0], quad_ring[i, 1], quad_ring[i + 1, 0],
                                             quad_ring[i + 1, 1], cx, cy, dx, dy)
                if distance < best:
                    best = distance
                    if best == 0.0:
                        return 0.0
    return best


@numba.njit(cache=True)
def _quad_polygon_distances(quads, polygon, coordinates, coordinate_start, ring_start):  # pragma: no cover
    out = np.empty(quads.shape[0])
    for i in range(quads.shape[0]):
        p = polygon[i]
        out[i] = quad_polygon_distance(quads[i], coordinates, coordinate_start, ring_start[p], ring_start[p + 1])
    return out


def quad_polygon_distances(quads: np.ndarray, polygon: np.ndarray, table: RingTable) -> np.ndarray:
    """Distances (N,) of quads (N, 4, 2) to the polygons `polygon` (N,) of a ring table (for tests and callers
    outside compiled code)."""
    return _quad_polygon_distances(np.ascontiguousarray(quads, dtype=np.float64), np.asarray(polygon, np.int64),
                                   table.coordinates, table.coordinate_start, table.ring_start)


# ------------------------------------------------------------------------------ projection on a line (GEOS's)


@numba.njit(cache=True)
def _project_on_line(line, px, py):  # pragma: no cover - compiled
    """Distance along the polyline (M, 2) of the point nearest to (px, py), first segment on ties (GEOS
    LengthIndexOfPoint)."""
    best_distance = np.inf
    best_measure = 0.0
    start_measure = 0.0
    for i in range(line.shape[0] - 1):
        ax, ay, bx, by = line[i, 0], line[i, 1], line[i + 1, 0], line[i + 1, 1]
        distance = _point_segment_distance(px, py, ax, ay, bx, by)
        length = _point_distance(ax, ay, bx, by)
        if distance < best_distance:
            best_distance = distance
            if ax == bx and ay == by:
                factor = 0.0
            else:
                dx, dy = bx - ax, by - ay
                factor = ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)
            if factor <= 0.0:
                best_measure = start_measure
            elif factor <= 1.0:
                best_measure = start_measure + factor * length
            else:
                best_measure = start_measure + length
        start_measure += length
    return best_measure


@numba.njit(cache=True)
def project_on_line(line, points):  # pragma: no cover - compiled
    """`shapely.line_locate_point(LineString(line), points)` for a polyline (M, 2) and points (N, 2)."""
    out = np.empty(points.shape[0])
    for n in range(points.shape[0]):
        out[n] = _project_on_line(line, points[n, 0], points[n, 1])
    return out
