"""PDMReward: (B, K) scores equal to the per-scene scorer, invalid candidates flagged, never scored 0."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from navsim_eval.names import SCORE_SHORT_NAME, short_name
from navsim_eval.pdm.errors import ScoringError
from navsim_eval.pdm.metric_cache import MetricCacheStore
from navsim_eval.pdm.scorer import score_trajectories
from navsim_eval.reward import PDMReward
from tests.navsim_eval.pdm.scorer_golden import candidate_poses, golden_cache, scenes_info

NAMES = ["human", "accelerate", "brake", "swerve_oncoming"]
WORKER_EXIT_TIMEOUT_S = 5.0  # "within a few seconds" of the parent's death


@pytest.fixture(scope="module")
def scenes(golden_dir):
    log = list(scenes_info(golden_dir)["logs"].values())[5]
    return log["tokens"][:3]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_reward_matches_scorer_and_flags_invalid(golden_dir, scenes, version):
    caches = {t: golden_cache(golden_dir, t, version) for t in scenes}
    poses = np.stack([candidate_poses(golden_dir, t, NAMES) for t in scenes])
    poses[1, 2, 4, 1] = np.nan
    poses[2, 0, 3, 0] = 1e9
    result = PDMReward(caches, version=version)(list(scenes), poses)
    assert result.scores.shape == (3, 4) and result.valid.sum() == 10
    assert not result.valid[2, 0] and scenes[2] in result.errors
    assert np.isnan(result.scores[1, 2]) and not result.valid[1, 2] and scenes[1] in result.errors
    for b, token in enumerate(scenes):
        ok = result.valid[b]
        expected = score_trajectories(caches[token], poses[b][ok], version)
        np.testing.assert_allclose(result.scores[b][ok], expected.score)
        for name, values in expected.metrics.items():
            np.testing.assert_allclose(result.sub_metrics[short_name(name, version)][b][ok], values)
    assert SCORE_SHORT_NAME[version] in result.sub_metrics


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_chunked_rewards_equal_per_scene_rewards(golden_dir, version):
    """Scenes scored several per `score_trajectories_batch` call give the per-scene results; a scene whose
    cache is missing or unusable fails alone, the rest of its chunk is scored."""
    log = list(scenes_info(golden_dir)["logs"].values())[5]
    tokens = log["tokens"][:5]
    caches = {t: golden_cache(golden_dir, t, version) for t in tokens}
    other = "v2" if version == "v1" else "v1"
    caches[tokens[3]] = golden_cache(golden_dir, tokens[3], other)  # scoring it raises inside the batch
    poses = np.stack([candidate_poses(golden_dir, t, NAMES) for t in tokens])
    poses[0, 1, 2, 0] = np.nan
    asked = tokens + ["missing_token"]
    poses = np.concatenate([poses, poses[:1]])
    per_scene = PDMReward(caches, version=version, scenes_per_call=1)(asked, poses)
    assert per_scene.valid[[0, 1, 2, 4]].sum() == 4 * len(NAMES) - 1
    assert {tokens[0], tokens[3], "missing_token"} == set(per_scene.errors)
    assert not per_scene.valid[3].any() and not per_scene.valid[5].any()
    for scenes_per_call in (2, 4, 8):
        chunked = PDMReward(caches, version=version, scenes_per_call=scenes_per_call)(asked, poses)
        np.testing.assert_array_equal(chunked.valid, per_scene.valid)
        assert chunked.errors == per_scene.errors
        np.testing.assert_allclose(chunked.scores, per_scene.scores, rtol=0, atol=1e-12, equal_nan=True)
        for name, values in per_scene.sub_metrics.items():
            np.testing.assert_allclose(chunked.sub_metrics[name], values, rtol=0, atol=1e-12, equal_nan=True)
    with pytest.raises(ScoringError):
        PDMReward(caches, version=version, scenes_per_call=0)


def test_reward_from_cache_folder_in_worker_processes(golden_dir, scenes, tmp_path):
    store = MetricCacheStore(tmp_path)
    for token in scenes[:2]:
        store.save(golden_cache(golden_dir, token, "v1"))
    poses = np.stack([candidate_poses(golden_dir, t, NAMES) for t in scenes])
    reward = PDMReward(tmp_path, version="v1", num_workers=2)
    try:
        result = reward(list(scenes), poses)
    finally:
        reward.close()
    assert result.valid[:2].all() and not result.valid[2].any()
    assert "no cache entry" in result.errors[scenes[2]]
    expected = score_trajectories(golden_cache(golden_dir, scenes[0], "v1"), poses[0], "v1")
    np.testing.assert_allclose(result.scores[0], expected.score)


def test_reward_rejects_bad_shapes():
    reward = PDMReward({}, version="v1")
    with pytest.raises(ScoringError):
        reward(["a"], np.zeros((1, 4, 7, 3)))
    with pytest.raises(ScoringError):
        PDMReward({}, version="v3")


def test_reward_over_a_split_rebuilds_stale_caches(golden_dir, scenes, tmp_path):
    from data_pipelines.maps import DEFAULT_MAP_VERSION
    from navsim_eval.pdm.metric_cache import MetricCacheProvider
    from tests.navsim_eval.pdm.golden_cache import golden_loader

    stale = copy.copy(golden_cache(golden_dir, scenes[0], "v1"))  # the golden cache is shared between tests
    stale.source_fingerprint = {**stale.source_fingerprint, "scene": "built from an older log"}
    store = MetricCacheStore(tmp_path)
    store.save(stale)
    provider = MetricCacheProvider("v1", golden_loader(golden_dir), maps_root=golden_dir / "maps",
                                   map_version=DEFAULT_MAP_VERSION, store=tmp_path)
    reward = PDMReward(provider, version="v1")
    poses = candidate_poses(golden_dir, scenes[0], NAMES)[None]
    result = reward([scenes[0]], poses)
    assert result.valid.all()
    fresh = store.load(scenes[0], provider.expected_fingerprint(provider.scene(scenes[0])))
    assert fresh.source_fingerprint["scene"] != "built from an older log"
    np.testing.assert_allclose(result.scores[0], score_trajectories(fresh, poses[0], "v1").score)


PARENT_SCRIPT = """
import os, sys, time
from navsim_eval.reward import PDMReward

reward = PDMReward({}, version="v1", num_workers=2)
pool = reward._executor()
pids = set()
while len(pids) < 2:  # until both workers have answered
    pids |= {f.result() for f in [pool.submit(os.getpid) for _ in range(8)]}
print(" ".join(map(str, sorted(pids))), flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_reward_workers_exit_when_their_parent_is_killed():
    repo_root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", PARENT_SCRIPT], cwd=repo_root, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(repo_root)})
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_running(pid) for pid in workers)
    finally:
        parent.kill()  # SIGKILL: no cleanup code of the parent runs
        parent.wait()
    deadline = time.monotonic() + WORKER_EXIT_TIMEOUT_S
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _running(pid)]
    for pid in survivors:  # do not leave them behind if the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_shaped_reward_reweights_the_average_and_logs_the_official_score(golden_dir, scenes, version):
    caches = {t: golden_cache(golden_dir, t, version) for t in scenes}
    poses = np.stack([candidate_poses(golden_dir, t, NAMES) for t in scenes])
    official = PDMReward(caches, version=version)(list(scenes), poses)
    same = PDMReward(caches, version=version, weights={"EP": 5.0})(list(scenes), poses)  # the official EP weight
    np.testing.assert_allclose(same.scores, official.scores)
    shaped = PDMReward(caches, version=version, weights={"EP": 0.0})(list(scenes), poses)
    score = SCORE_SHORT_NAME[version]
    np.testing.assert_array_equal(shaped.sub_metrics[score], official.scores)  # logged: the official score
    subs = official.sub_metrics
    if version == "v1":
        expected = subs["NC"] * subs["DAC"] * (5 * subs["TTC"] + 2 * subs["C"]) / 7
    else:
        expected = (subs["NC"] * subs["DAC"] * subs["DDC"] * subs["TLC"]
                    * (5 * subs["TTC"] + 2 * subs["LK"] + 2 * subs["HC"]) / 9)
    np.testing.assert_allclose(shaped.scores, expected)
    assert not np.allclose(shaped.scores, official.scores)  # the candidates' progress differs


def test_shaped_reward_rejects_unknown_metrics_and_negative_weights():
    with pytest.raises(ScoringError, match="'NC' is not a weighted v1 metric"):
        PDMReward({}, version="v1", weights={"NC": 1.0})
    with pytest.raises(ScoringError, match="EP must be a finite weight >= 0"):
        PDMReward({}, version="v1", weights={"EP": -1.0})
