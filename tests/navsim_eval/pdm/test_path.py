"""PDMPath: progress, interpolation, projection, substring and parallel offsets."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from navsim_eval.pdm.path import MIN_INTERPOLATION_DISTANCE, PathSetInterpolator, PDMPath


def _arc(num=50, radius=20.0):
    angles = np.linspace(-0.5, 3.5, num)  # crosses +-pi in heading
    headings = angles + np.pi / 2
    poses = np.stack([radius * np.cos(angles), radius * np.sin(angles), np.arctan2(np.sin(headings),
                                                                                     np.cos(headings))], axis=1)
    return poses


def test_progress_and_unwrapped_headings():
    path = PDMPath(_arc())
    steps = np.linalg.norm(np.diff(path.poses[:, :2], axis=0), axis=1)
    np.testing.assert_allclose(path.progress, np.concatenate([[0], np.cumsum(steps)]))
    assert path.length == pytest.approx(path.linestring.length)
    assert np.all(np.abs(np.diff(path.poses[:, 2])) < np.pi)


def test_interpolation_matches_vertex_poses_and_is_linear():
    poses = _arc()
    path = PDMPath(poses)
    at_vertices = path.interpolate(path.progress[1:])
    np.testing.assert_allclose(at_vertices[:, :2], poses[1:, :2], atol=1e-9)
    np.testing.assert_allclose(np.cos(at_vertices[:, 2]), np.cos(poses[1:, 2]), atol=1e-9)
    middle = 0.5 * (path.progress[3] + path.progress[4])
    np.testing.assert_allclose(path.interpolate(middle)[:2], 0.5 * (poses[3, :2] + poses[4, :2]), atol=1e-9)
    clipped = path.interpolate(np.array([-5.0, path.length + 5.0]))
    np.testing.assert_allclose(clipped[1, :2], poses[-1, :2], atol=1e-9)
    np.testing.assert_allclose(clipped[0], path.interpolate(MIN_INTERPOLATION_DISTANCE))
    assert path.interpolate(np.zeros((2, 3))).shape == (2, 3, 3)


def test_duplicated_joint_vertices_are_harmless():
    poses = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=float)
    path = PDMPath(poses)
    assert path.length == pytest.approx(2.0)
    np.testing.assert_allclose(path.interpolate(np.array([0.5, 1.0, 1.5]))[:, 0], [0.5, 1.0, 1.5])


def test_projection_and_distance():
    path = PDMPath(np.array([[0, 0, 0], [10, 0, 0], [10, 10, np.pi / 2]], dtype=float))
    np.testing.assert_allclose(path.project(np.array([[3.0, 2.0], [12.0, 5.0]])), [3.0, 15.0])
    assert path.project(shapely.Point(3.0, -1.0)) == pytest.approx(3.0)
    np.testing.assert_allclose(path.distance(np.array([[3.0, 2.0], [12.0, 5.0]])), [2.0, 2.0])


def test_substring_and_offset():
    path = PDMPath(np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], dtype=float))
    assert list(path.substring(0.5, 2.5).coords) == [(1.0, 0.0), (2.0, 0.0)]
    exact = path.substring(1.2, 1.7)
    assert exact.length == pytest.approx(0.5)
    left = path.offset(1.0)
    np.testing.assert_allclose(left.poses[:, 1], 1.0)
    np.testing.assert_allclose(left.poses[:, 2], 0.0)
    with pytest.raises(ValueError):
        PDMPath(np.zeros((1, 3)))


def test_path_set_interpolator_equals_single_path_interpolation():
    base = PDMPath(_arc())
    paths = [base, base.offset(-1.0), PDMPath(np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0], [2, 0, 0.5]], float))]
    interpolate = PathSetInterpolator(paths)
    rng = np.random.default_rng(1)
    for index, path in enumerate(paths):
        distances = np.concatenate([rng.uniform(-2, path.length + 2, 50), path.progress, [0.0, path.length]])
        np.testing.assert_allclose(interpolate(np.full(len(distances), index), distances),
                                   path.interpolate(distances), rtol=0, atol=1e-9)
