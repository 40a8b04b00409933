"""Box geometry of the ego and of observed objects (spec §1.2, §6)."""

from __future__ import annotations

import numpy as np
import shapely

from navsim_eval.pdm.footprint import box_corners, polygons_from_corners


def test_polygons_from_corners_equal_shapely_polygons_in_any_shape():
    rng = np.random.default_rng(3)
    corners = box_corners(rng.normal(scale=100.0, size=(3, 5, 2)), rng.uniform(-np.pi, np.pi, (3, 5)), 2.0, 0.9)
    polygons = polygons_from_corners(corners)
    assert polygons.shape == (3, 5)
    assert shapely.to_wkb(polygons).tolist() == shapely.to_wkb(shapely.polygons(corners)).tolist()
    single = polygons_from_corners(corners[0, 0])
    assert single.shape == () and single[()].equals_exact(shapely.polygons(corners[0, 0]), 0.0)
    assert polygons_from_corners(np.zeros((0, 7, 4, 2))).shape == (0, 7)
