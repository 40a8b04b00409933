"""Audit: ground-truth observation timing and v2 scene types (spec §3.5, §7.10, §8.3).

The devkit places the i-th observed frame at i * 0.5 s (frame index, not timestamp difference), so logs whose
timestamps are not exactly 500,000 µs apart give the same observation. v2 synthetic scenes (17-character
tokens) have no human filter and do not take part in two-frame extended comfort pairing.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import shapely

from navsim_eval.pdm.constants import is_synthetic_token
from navsim_eval.pdm.observation import build_ground_truth_observation
from navsim_eval.pdm.scorer import score_trajectories
from navsim_eval.scoring import TokenResult, previous_scenes
from tests.navsim_eval.pdm.scorer_golden import _loader, golden_cache, scenes_info


def _scene(golden_dir, log_index: int = 0, scene_index: int = 2):
    log = list(scenes_info(golden_dir)["logs"].values())[log_index]
    return _loader(golden_dir).get_scene_from_token(log["tokens"][scene_index])


def _with_timestamps(scene, offsets_us: dict[int, int]):
    """Deep copy of the scene with frame i's timestamp moved by offsets_us[i] (relative frame index)."""
    jittered = copy.deepcopy(scene)
    current = jittered.current_frame_index
    for relative, offset in offsets_us.items():
        frame = jittered.frames[current + relative]
        jittered.frames[current + relative] = dataclasses.replace(frame, timestamp=frame.timestamp + offset)
    return jittered


def _same_observation(a, b) -> None:
    assert a.num_steps == b.num_steps
    for step in range(a.num_steps):
        assert list(a.tokens(step)) == list(b.tokens(step)), step
        for pa, pb in zip(a.polygons(step), b.polygons(step)):
            assert shapely.equals_exact(pa, pb, tolerance=1e-9), step
    for token, obj in a.unique_objects.items():
        assert obj.heading == pytest.approx(b.unique_objects[token].heading, abs=1e-12)
        np.testing.assert_allclose(obj.velocity, b.unique_objects[token].velocity, atol=1e-12)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_observation_uses_frame_index_times_not_timestamps(golden_dir, version):
    """Timestamp jitter (a few µs to 0.1 s) must not change which tracks are present or where they are."""
    from data_pipelines.maps import load_map

    scene = _scene(golden_dir)
    map_api = load_map(golden_dir / "maps", scene.scene_metadata.map_name)
    last = 10 if version == "v1" else 8
    jitter = {1: 37, 2: -25, 5: 100_000, last - 1: 12, last: -40}
    reference = build_ground_truth_observation(scene, version, map_api=map_api)
    shifted = build_ground_truth_observation(_with_timestamps(scene, jitter), version, map_api=map_api)
    # Tracks observed up to the last frame stay present at the last step (5.0 s / 4.0 s) despite the
    # earlier timestamp of that frame.
    assert len(reference.tokens(reference.num_steps - 1)) > 0
    _same_observation(reference, shifted)


def test_synthetic_token_rule():
    assert is_synthetic_token("a" * 17)
    assert not is_synthetic_token("0123456789abcdef")


def test_v2_synthetic_scene_has_no_human_filter(golden_dir):
    """Same cache under a 17-character token: the human filter (which fires on this scene) is not applied."""
    filtered_token = None
    for log in scenes_info(golden_dir)["logs"].values():
        for token in log["tokens"]:
            cache = golden_cache(golden_dir, token, "v2")
            table = score_trajectories(cache, np.zeros((1, 8, 3)))
            if any(value == 0.0 for name, value in table.human_metrics.items()):
                filtered_token = token
                break
        if filtered_token:
            break
    assert filtered_token is not None, "no golden scene where the human scores 0 on a sub-metric"
    cache = golden_cache(golden_dir, filtered_token, "v2")
    poses = np.zeros((1, 8, 3))
    original = score_trajectories(cache, poses)
    synthetic = score_trajectories(dataclasses.replace(cache, token=filtered_token + "s"), poses)
    assert synthetic.human_metrics == {}
    for name, raw in original.raw_metrics.items():
        np.testing.assert_array_equal(synthetic.metrics[name], raw)  # unfiltered = raw
    zero = [name for name, value in original.human_metrics.items() if value == 0.0]
    assert any(original.metrics[name][0] != synthetic.metrics[name][0] or original.raw_metrics[name][0] == 1.0
               for name in zero)


def test_synthetic_scenes_are_not_paired_for_extended_comfort():
    def result(token, t_us):
        r = TokenResult(token, "log", t_us, ["a"])
        r.table = object()  # only presence matters for pairing
        return r

    originals = [result("0" * 16, 0), result("1" * 16, 500_000)]
    synthetic = [result("s" * 17, 250_000)]
    assert previous_scenes(originals) == {"1" * 16: "0" * 16}
    # A synthetic scene between two originals neither pairs nor breaks the original pair.
    assert previous_scenes(originals + synthetic) == {"1" * 16: "0" * 16}
