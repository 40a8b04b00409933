"""NativeScorer with a metric-cache folder: stale entries are rebuilt from the scene, or reported."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from navsim_eval.evaluation.scorers import NativeScorer
from navsim_eval.pdm.metric_cache import MetricCacheError, MetricCacheStore, StaleMetricCacheError
from navsim_eval.pdm.scorer import score_trajectories
from tests.navsim_eval.pdm.golden_cache import golden_scene, representative_tokens
from tests.navsim_eval.pdm.scorer_golden import candidate_poses, golden_cache

NAMES = ["human", "brake"]


def test_stale_cache_is_rebuilt_when_the_scene_has_its_map(golden_dir, tmp_path):
    token = representative_tokens(golden_dir)[4]
    scene, map_api = golden_scene(golden_dir, token)
    stale = copy.copy(golden_cache(golden_dir, token, "v1"))  # the golden cache is shared between tests
    stale.source_fingerprint = {**stale.source_fingerprint, "map": "an older map file"}
    store = MetricCacheStore(tmp_path / "v1")
    store.save(stale)
    poses = candidate_poses(golden_dir, token, NAMES)

    without_map = copy.copy(scene)
    without_map.map_api = None
    assert len(NativeScorer(tmp_path).score(without_map, poses, "v1")) == 2  # frames match; map not checkable
    moved = copy.deepcopy(without_map)
    moved.current_frame.ego_status.ego_pose[1] += 0.5
    with pytest.raises(StaleMetricCacheError, match=f"{token}.*scene window's frames") as error:
        NativeScorer(tmp_path).score(moved, poses, "v1")  # no map to rebuild with
    assert error.value.changed == ["scene"]
    with pytest.raises(MetricCacheError, match="no cache entry"):
        NativeScorer(tmp_path).score(without_map, poses, "v2")

    with_map = copy.copy(scene)
    with_map.map_api = map_api
    rows = NativeScorer(tmp_path).score(with_map, poses, "v1")
    expected = score_trajectories(golden_cache(golden_dir, token, "v1"), poses, "v1").score
    np.testing.assert_allclose([row["score"] for row in rows], expected)
    assert store.load(token).source_fingerprint["map"] != "an older map file"


def test_build_missing_builds_each_cache_once_into_the_store(golden_dir, tmp_path):
    token = representative_tokens(golden_dir)[4]
    scene, map_api = golden_scene(golden_dir, token)
    scene = copy.copy(scene)
    scene.map_api = map_api
    poses = candidate_poses(golden_dir, token, NAMES)
    scorer = NativeScorer(tmp_path, build_missing=True)
    first = scorer.score(scene, poses, "v1")
    assert scorer.provider("v1").num_built == 1 and token in MetricCacheStore(tmp_path / "v1")
    again = scorer.score(scene, poses, "v1")
    assert scorer.provider("v1").num_built == 1  # read back from the store, not rebuilt
    assert [row["score"] for row in again] == [row["score"] for row in first]
    with pytest.raises(MetricCacheError, match="no cache entry"):
        NativeScorer(tmp_path).score(scene, poses, "v2")  # without build_missing a missing entry is an error
