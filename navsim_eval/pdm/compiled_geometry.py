"""Compiled (numba, cached) geometric tests of the scorer: ego quadrilaterals against obstacle boxes.

The scorer's geometric tests are many small ones (a scene has ~5-40 obstacles per step and 33 x 41 ego
footprints, 4 look-ahead shifts for TTC); in numpy/shapely each costs mostly per-call overhead (building shapely
polygons, pair expansion). Here one compiled call runs the bounding-box filter and the exact convex test for all
(query, same-step entry) pairs. See docs/pdm_scorer.md, "Speed".
"""

from __future__ import annotations

import numba
import numpy as np
import shapely

QUAD_HIT = 1  # a convex-quad entry intersects the query
NEEDS_GEOMETRY_TEST = 2  # the entry is not a convex quad: bounding boxes overlap, shapely decides


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
    simple[simple] = shapely.get_num_coordinates(polygons[simple]) == 5
    if simple.any():
        coordinates = shapely.get_coordinates(shapely.get_exterior_ring(polygons[simple])).reshape(-1, 5, 2)[:, :4]
        edges = np.roll(coordinates, -1, axis=1) - coordinates
        turns = edges[:, :, 0] * np.roll(edges, -1, axis=1)[:, :, 1] - edges[:, :, 1] * np.roll(edges, -1, axis=1)[:, :, 0]
        convex = np.all(turns > 0.0, axis=1) | np.all(turns < 0.0, axis=1)
        index = np.flatnonzero(simple)
        corners[index[convex]] = coordinates[convex]
        is_quad[index[convex]] = True
    return corners, is_quad


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
def quad_entry_pairs(corners, steps, offsets, bounds, entry_corners, is_quad):  # pragma: no cover - compiled
    """(query, entry, status) of query quads (N, 4, 2) against the entries of their step (closed sets).

    `steps` (N,) index the step-major entries through `offsets` (num_steps + 1,); steps outside have none.
    Pairs with overlapping closed bounding boxes are tested: convex-quad entries by the separating-axis test on
    the eight edge lines (status QUAD_HIT when no edge line separates them; touching counts), other entries
    are returned with status NEEDS_GEOMETRY_TEST. Pairs are query-major, entries in step order.
    """
    num = corners.shape[0]
    num_steps = offsets.shape[0] - 1
    capacity = 64
    query = np.empty(capacity, dtype=np.int64)
    entry = np.empty(capacity, dtype=np.int64)
    status = np.empty(capacity, dtype=np.int8)
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
                result = QUAD_HIT
            else:
                result = NEEDS_GEOMETRY_TEST
            if count == capacity:
                capacity *= 2
                query = _grown(query, capacity)
                entry = _grown(entry, capacity)
                status = _grown(status, capacity)
            query[count] = q
            entry[count] = e
            status[count] = result
            count += 1
    return query[:count], entry[:count], status[:count]


@numba.njit(cache=True)
def _grown(array, capacity):  # pragma: no cover - compiled
    out = np.empty(capacity, dtype=array.dtype)
    out[: array.shape[0]] = array
    return out
