"""The scoring path of a DIPOLE round sharded over two processes (gloo, CPU): every scene scored exactly once.

Each process takes its shard of the round's scenes as the round loop does (``SceneBatcher.shard`` of
``round_scenes``), scores it with ``score_candidates`` through a ``PDMReward`` over a metric-cache folder, and the
shards are gathered with ``all_gather_object``. The union must be the round's scenes, without repeats, with the
scores of a single-process run.
"""

from __future__ import annotations

import numpy as np
import pytest

from navsim_eval.pdm.metric_cache import MetricCacheStore
from navsim_eval.reward import PDMReward
from tests.gloo_processes import SPAWN, run_in_gloo_processes
from tests.navsim_eval.pdm.scorer_golden import candidate_poses, golden_cache, scenes_info

WORLD_SIZE = 2
NAMES = ["human", "brake", "swerve_oncoming"]
SCENES_PER_ROUND = 7  # odd: the two shards differ in size
ROUND_INDEX = 1
JOIN_TIMEOUT_S = 600


def _score_shard(rank: int, tokens: list, poses: np.ndarray, cache_dir: str, results) -> None:
    import torch.distributed as dist

    from vla.training.data import SceneBatcher
    from vla.training.rollout import score_candidates

    batcher = SceneBatcher([{"token": t} for t in tokens], processor=None, device="cpu", seed=0,
                           num_processes=WORLD_SIZE, process_index=rank)
    scenes = batcher.shard(batcher.round_scenes(ROUND_INDEX, SCENES_PER_ROUND))
    shard_tokens = [batcher.token(i) for i in scenes]
    reward = PDMReward(cache_dir, version="v1")
    scored, _, _ = score_candidates(reward, shard_tokens, poses[scenes])
    gathered = [None] * WORLD_SIZE
    dist.all_gather_object(gathered, (rank, shard_tokens, scored.scores, scored.errors))
    if rank == 0:
        results.put(gathered)


@pytest.mark.slow
def test_round_scoring_sharded_over_two_processes_scores_every_scene_once(golden_dir, tmp_path):
    from vla.training.data import SceneBatcher

    logs = list(scenes_info(golden_dir)["logs"].values())
    tokens = logs[0]["tokens"] + logs[5]["tokens"][:3]  # 10 scenes; the round scores 7 of them
    store = MetricCacheStore(tmp_path)
    caches = {t: golden_cache(golden_dir, t, "v1") for t in tokens}
    for cache in caches.values():
        store.save(cache)
    poses = np.stack([candidate_poses(golden_dir, t, NAMES) for t in tokens])
    round_scenes = SceneBatcher([{"token": t} for t in tokens], None, "cpu", seed=0).round_scenes(
        ROUND_INDEX, SCENES_PER_ROUND)

    results = SPAWN.SimpleQueue()
    run_in_gloo_processes(_score_shard, (tokens, poses, str(tmp_path), results), world_size=WORLD_SIZE,
                          timeout_s=JOIN_TIMEOUT_S)

    gathered = results.get()
    shard_tokens = [shard for _, shard, _, _ in gathered]
    assert all(len(shard) > 0 for shard in shard_tokens)
    scored_tokens = [t for shard in shard_tokens for t in shard]
    assert len(scored_tokens) == len(set(scored_tokens)) == SCENES_PER_ROUND  # none twice
    assert set(scored_tokens) == {tokens[i] for i in round_scenes}  # none missed
    assert all(not errs for _, _, _, errs in gathered)
    reference = PDMReward(caches, version="v1")(tokens, poses)
    row_of = {t: i for i, t in enumerate(tokens)}
    for _, shard, scores, _ in gathered:
        assert np.isfinite(scores).all()
        np.testing.assert_array_equal(scores, reference.scores[[row_of[t] for t in shard]])
