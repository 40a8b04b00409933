"""Observation container and the ground-truth observation (spec §3.5, §3.6)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from navsim_eval.pdm.errors import ObservationError
from navsim_eval.pdm.observation import Observation, UniqueObject, build_ground_truth_observation, red_light_token
from tests.navsim_eval.pdm.scorer_golden import golden_cache, intermediates, scenes_info


def _box(x, y, length=4.0, width=2.0):
    return shapely.box(x - length / 2, y - width / 2, x + length / 2, y + width / 2)


def test_container_query_matches_same_step_only():
    unique = {"a": UniqueObject("a", "vehicle", True, 0.0, np.array([1.0, 0.0]))}
    observation = Observation([["a"], [], ["a", red_light_token(7)]],
                              [[_box(0, 0)], [], [_box(10, 0), _box(20, 0)]], unique)
    ego = np.array([_box(0.5, 0), _box(0.5, 0), _box(10.5, 0)], dtype=object)
    query, entry = observation.query(ego, np.array([0, 1, 2]))
    assert sorted(zip(query.tolist(), observation.flat().tokens[entry].tolist())) == [(0, "a"), (2, "a")]
    corners = np.array([np.asarray(p.exterior.coords)[:4] for p in ego])
    q2, e2 = observation.query_corners(corners, np.array([0, 1, 2]))
    assert sorted(q2.tolist()) == sorted(query.tolist())
    flat = observation.flat()
    assert flat.is_red_light.tolist() == [False, False, True]


def test_container_rejects_inconsistent_input():
    with pytest.raises(ObservationError):
        Observation([["a"]], [[]], {})
    with pytest.raises(ObservationError, match="unique object"):
        Observation([["ghost"]], [[_box(0, 0)]], {}).flat()


def test_ground_truth_observation_of_golden_scenes(golden_dir):
    """Lengths, red lights (v2) equal to the golden per-step connector lists, single-frame tracks everywhere."""
    logs = list(scenes_info(golden_dir)["logs"].values())
    red_steps = 0
    for log in logs:
        token = log["tokens"][4]
        v1 = golden_cache(golden_dir, token, "v1").observation
        v2 = golden_cache(golden_dir, token, "v2").observation
        assert v1.num_steps == 51 and v2.num_steps == 41
        golden_red = intermediates(golden_dir, token)["v2_red_light_connectors_per_step"]
        for step in range(41):
            ours = sorted(t[len("red_light_"):] for t in v2.tokens(step) if t.startswith("red_light_"))
            expected = sorted(x for x in str(golden_red[step]).split(",") if x)
            assert ours == expected, (token, step)
            red_steps += bool(ours)
        assert not any(t.startswith("red_light_") for k in range(51) for t in v1.tokens(k))
    assert red_steps > 0


def test_v2_removes_tracks_touching_the_ego_at_step_zero(golden_dir):
    from data_pipelines.maps import load_map
    from tests.navsim_eval.pdm.scorer_golden import _loader

    token = next(iter(scenes_info(golden_dir)["logs"].values()))["tokens"][0]
    scene = _loader(golden_dir).get_scene_from_token(token)
    map_api = load_map(golden_dir / "maps", scene.scene_metadata.map_name)
    # Put a copy of an annotated box onto the ego footprint: v1 keeps it, v2 removes it.
    frame = scene.current_frame
    annotations = frame.annotations
    annotations.boxes = np.concatenate([annotations.boxes, [[1.5, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]]])
    annotations.names = list(annotations.names) + ["vehicle"]
    annotations.velocity_3d = np.concatenate([annotations.velocity_3d, [[0.0, 0.0, 0.0]]])
    annotations.track_tokens = list(annotations.track_tokens) + ["on_ego"]
    annotations.instance_tokens = list(annotations.instance_tokens) + ["on_ego"]
    v1 = build_ground_truth_observation(scene, "v1", map_api=map_api)
    v2 = build_ground_truth_observation(scene, "v2", map_api=map_api)
    assert all("on_ego" in v1.tokens(k) for k in range(51))  # single-frame track: present at every step
    assert not any("on_ego" in v2.tokens(k) for k in range(41))
