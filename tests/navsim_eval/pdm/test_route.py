"""Route dictionaries and route correction (spec §3.1) against the golden metric caches and on the junction map."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.maps import MapLayer, UnknownMapObjectError, load_map
from navsim_eval.pdm.metric_cache import ego_state_of_frame
from navsim_eval.pdm.route import build_route, correct_route, load_route, remove_route_loops, roadblock_bfs
from tests.navsim_eval.pdm.golden_cache import golden_scene, golden_tokens, intermediates

BOSTON = "us-ma-boston"


@pytest.fixture(scope="module")
def boston(golden_dir):
    return load_map(golden_dir / "maps", BOSTON)


def _lane_start_pose(map_api, lane_id, index=5):
    return map_api.get_lane(lane_id).baseline_path.discrete_path[index].copy()


def test_route_lane_ids_match_golden_for_all_scenes(golden_dir):
    mismatches = []
    for token in golden_tokens(golden_dir):
        scene, map_api = golden_scene(golden_dir, token)
        frame = scene.current_frame
        _, route = build_route(map_api, frame.roadblock_ids, ego_state_of_frame(frame)[:3])
        golden = intermediates(golden_dir, token)
        for version in ("v1", "v2"):
            if [str(i) for i in golden[f"{version}_route_lane_ids"]] != route.lane_ids:
                mismatches.append((token, version))
    assert mismatches == []


def test_load_route_deduplicates_and_collects_interior_lanes(boston):
    route = load_route(boston, ["1001", "1026", "1001", "1016"])
    assert route.roadblock_ids == ["1001", "1026", "1016"]
    expected = [lane for block in ("1001", "1026", "1016")
                for lane in boston.get_roadblock_or_connector(block).interior_edge_ids]
    assert route.lane_ids == expected
    with pytest.raises(UnknownMapObjectError, match="424242"):
        load_route(boston, ["1001", "424242"])


def test_gap_between_route_elements_is_filled(boston):
    pose = _lane_start_pose(boston, "1002")
    corrected = correct_route(boston, pose, load_route(boston, ["1001", "1016"]))
    connector = boston.get_roadblock_connector("1026")
    assert connector.incoming_edge_ids == ("1001",) and connector.outgoing_edge_ids == ("1016",)
    assert corrected == ["1001", "1026", "1016"]


def test_off_route_start_prepends_backward_search_path(boston):
    pose = _lane_start_pose(boston, "1002")  # ego on roadblock 1001, route starts after the junction
    corrected = correct_route(boston, pose, load_route(boston, ["1016"]))
    assert corrected == ["1001", "1026", "1016"]


def test_bfs_paths_are_connected_and_ordered(boston):
    path, found = roadblock_bfs(boston, "1001", ["1016"], max_depth=30, forward=True)
    assert found and [b.id for b in path] == ["1001", "1026", "1016"]
    backward, found = roadblock_bfs(boston, "1016", ["1001"], max_depth=30, forward=False)
    assert found and [b.id for b in backward] == ["1001", "1026", "1016"]
    _, found = roadblock_bfs(boston, "1001", ["1016"], max_depth=2, forward=True)
    assert not found


def test_loop_removal_truncates_at_overlapping_connector(boston):
    connectors = boston.get_all_map_objects(MapLayer.ROADBLOCK_CONNECTOR)
    pairs = [(a, b) for a in connectors for b in connectors
             if a is not b and a.polygon.intersection(b.polygon).area > 1.0]
    disjoint = [(a, b) for a in connectors for b in connectors
                if a is not b and a.polygon.intersection(b.polygon).area == 0.0]
    assert pairs and disjoint
    first, second = pairs[0]
    roadblock = boston.get_roadblock("1001")
    assert [b.id for b in remove_route_loops([first, roadblock, second, roadblock])] == [first.id, roadblock.id]
    a, b = disjoint[0]
    assert [x.id for x in remove_route_loops([a, roadblock, b])] == [a.id, roadblock.id, b.id]


def test_correction_keeps_a_consistent_route(boston):
    pose = _lane_start_pose(boston, "1002")
    corrected = correct_route(boston, pose, load_route(boston, ["1001", "1026", "1016"]))
    assert corrected == ["1001", "1026", "1016"]
    for previous, current in zip(corrected, corrected[1:]):
        assert previous in boston.get_roadblock_or_connector(current).incoming_edge_ids
    assert np.isfinite(pose).all()
