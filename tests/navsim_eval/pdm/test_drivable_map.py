"""Drivable-area map (spec §3.2): official entry order and strict point containment."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from navsim_eval.pdm.drivable_map import CARPARK_AREA, LANE, ROADBLOCK, DrivableMap, build_drivable_map
from navsim_eval.pdm.footprint import ego_centers
from navsim_eval.pdm.metric_cache import ego_state_of_frame
from tests.navsim_eval.pdm.golden_cache import golden_scene, golden_tokens, intermediates


def test_entries_match_golden_for_all_scenes(golden_dir):
    mismatches = []
    for token in golden_tokens(golden_dir):
        scene, map_api = golden_scene(golden_dir, token)
        pose = ego_state_of_frame(scene.current_frame)[:3]
        drivable = build_drivable_map(map_api, ego_centers(pose))
        golden = intermediates(golden_dir, token)
        for version in ("v1", "v2"):
            if ([str(t) for t in golden[f"{version}_drivable_tokens"]] != drivable.tokens
                    or [str(t) for t in golden[f"{version}_drivable_types"]] != drivable.types):
                mismatches.append((token, version))
    assert mismatches == []


def _square(x0, y0, size):
    return shapely.box(x0, y0, x0 + size, y0 + size)


def test_containment_is_strict_and_typed():
    drivable = DrivableMap(["a", "b", "c"], [ROADBLOCK, LANE, CARPARK_AREA],
                           [_square(0, 0, 10), _square(0, 0, 5), _square(20, 0, 5)])
    points = np.array([[1.0, 1.0], [5.0, 2.0], [10.0, 5.0], [22.0, 1.0], [30.0, 30.0]])
    inside = drivable.contains_points(points)
    expected = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(inside, expected)  # (5, 2) lies on the lane boundary, (10, 5) on the roadblock's
    np.testing.assert_array_equal(drivable.is_in_types(points, [ROADBLOCK, CARPARK_AREA]),
                                  [True, True, False, True, False])
    assert drivable.contains_points(points, [LANE]).shape == (5, 1)
    assert drivable.intersecting(shapely.Point(1, 1)) and set(drivable.intersecting(shapely.Point(1, 1))) == {"a", "b"}


def test_rejects_inconsistent_entries():
    with pytest.raises(ValueError, match="tokens"):
        DrivableMap(["a"], [ROADBLOCK, LANE], [_square(0, 0, 1)])
    with pytest.raises(ValueError, match="unknown entry type"):
        DrivableMap(["a"], ["GENERIC_DRIVABLE_AREA"], [_square(0, 0, 1)])
