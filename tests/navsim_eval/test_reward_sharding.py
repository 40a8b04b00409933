"""The scoring path of a DIPOLE round sharded over two processes (gloo, CPU): every scene scored exactly once.

Each process takes its shard of the round's scenes as the round loop does (``SceneBatcher.shard`` of
``round_scenes``), scores it with ``score_candidates`` through a ``PDMReward`` over a metric-cache folder, and the
shards are gathered with ``all_gather_object``. The union must be the round's scenes, without repeats, with the
scores of a single-process run.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from navsim_eval.pdm.metric_cache import MetricCacheStore
from navsim_eval.reward import PDMReward
from tests.navsim_eval.pdm.scorer_golden import candidate_poses, golden_cache, scenes_info

WORLD_SIZE = 2
NAMES = ["human", "brake", "swerve_oncoming"]
SCENES_PER_ROUND = 7  # odd: the two shards differ in size
ROUND_INDEX = 1
JOIN_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _score_shard(rank: int, port: int, tokens: list, poses: np.ndarray, cache_dir: str, results, errors) -> None:
    import torch.distributed as dist

    from vla.training.data import SceneBatcher
    from vla.training.rollout import score_candidates

    try:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
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
        dist.destroy_process_group()
    except BaseException as err:  # reported to the parent; a hung peer is ended by the join timeout
        errors.put(f"rank {rank}: {type(err).__name__}: {err}")
        raise


@pytest.mark.slow
def test_round_scoring_sharded_over_two_processes_scores_every_scene_once(golden_dir, tmp_path):
    import torch.multiprocessing as mp

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

    context = mp.get_context("spawn")
    results, errors = context.SimpleQueue(), context.SimpleQueue()
    port = _free_port()
    procs = [context.Process(target=_score_shard, args=(rank, port, tokens, poses, str(tmp_path), results, errors))
             for rank in range(WORLD_SIZE)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=JOIN_TIMEOUT_S)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    assert not messages, "\n".join(messages)
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]

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
