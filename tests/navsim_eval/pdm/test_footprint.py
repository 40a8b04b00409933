"""Box geometry of the ego and of observed objects (spec §1.2, §6)."""

from __future__ import annotations

import numpy as np
import shapely

from navsim_eval.pdm.footprint import MANY_BOXES, box_corners, polygons_from_corners


def test_polygons_from_corners_equal_shapely_polygons_in_any_shape():
    rng = np.random.default_rng(3)
    corners = box_corners(rng.normal(scale=100.0, size=(3, 5, 2)), rng.uniform(-np.pi, np.pi, (3, 5)), 2.0, 0.9)
    polygons = polygons_from_corners(corners)
    assert polygons.shape == (3, 5)
    assert shapely.to_wkb(polygons).tolist() == shapely.to_wkb(shapely.polygons(corners)).tolist()
    single = polygons_from_corners(corners[0, 0])
    assert single.shape == () and single[()].equals_exact(shapely.polygons(corners[0, 0]), 0.0)
    assert polygons_from_corners(np.zeros((0, 7, 4, 2))).shape == (0, 7)


def test_box_corners_are_the_same_numbers_for_many_boxes_and_for_one():
    """Many boxes are computed per (corner, axis), few by broadcasting: both give each box's own corners
    bit for bit (front-left, rear-left, rear-right, front-right)."""
    rng = np.random.default_rng(4)
    shape = (3, MANY_BOXES)
    centers, headings = rng.normal(scale=100.0, size=shape + (2,)), rng.uniform(-np.pi, np.pi, shape)
    half_lengths, half_widths = rng.uniform(0.2, 3.0, (3, 1)), rng.uniform(0.2, 1.5, shape)
    many = box_corners(centers, headings, half_lengths, half_widths)
    assert many.shape == shape + (4, 2)
    for i, j in [(0, 0), (1, 7), (2, MANY_BOXES - 1)]:
        one = box_corners(centers[i, j], headings[i, j], half_lengths[i, 0], half_widths[i, j])
        assert np.array_equal(many[i, j], one)
    forward = np.array([np.cos(headings[0, 0]), np.sin(headings[0, 0])])
    left = np.array([-forward[1], forward[0]])
    np.testing.assert_allclose(many[0, 0, 0], centers[0, 0] + half_lengths[0, 0] * forward + half_widths[0, 0] * left,
                               atol=1e-9)
