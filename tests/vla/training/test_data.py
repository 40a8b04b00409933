"""The trainer's data path: batches loaded by DataLoader workers equal in-process ones (the trained model too),
and each process of a run loads only its own shard of logs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch.utils.data import get_worker_info

from data_pipelines.configuration import load_config
from vla.testing import tiny_model
from vla.training import TrainConfig, Trainer
from vla.training.data import SceneBatcher
from vla.training.errors import TrainingError

from tests.launch.conftest import load_launch_script
from tests.vla.training.helpers import DistanceReward, generate_tiny_world, make_items, split_items

RUN = ["stages=[il,ewr]", "il.steps=2", "il.batch_size=4", "il.optim.warmup_steps=1", "ewr.rounds=1",
       "ewr.steps_per_round=2", "ewr.batch_size=2", "ewr.rollout.num_candidates=2", "ewr.rollout.num_steps=2",
       "ewr.rollout.batch_size=4", "ewr.optim.warmup_steps=0", "eval.enabled=false", "tensorboard=false",
       "progress_bars=false", "log_every=1", "model.preset=tiny-florence2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_tiny_world(tmp_path_factory.mktemp("tiny_world"))


class WorkerRecordingProcessor:
    """The model's processor, marking each batch with whether a DataLoader worker built it."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, agent_inputs, target_poses=None):
        batch = dict(self.processor(agent_inputs, target_poses=target_poses))
        batch["built_in_worker"] = get_worker_info() is not None
        return batch


def test_stream_batches_from_workers_equal_in_process_batches_in_order():
    items = make_items(7, seed=2)
    processor = WorkerRecordingProcessor(tiny_model("tiny-florence2").processor)
    index_lists = [[3, 1], [0, 6, 2], [5], [4, 4]]
    results = {}
    for workers in (0, 2):
        batcher = SceneBatcher(items, processor, "cpu", seed=0, num_workers=workers)
        with batcher.stream(index_lists, with_targets=True) as batches:
            results[workers] = [batches.take(indices) for indices in index_lists]
    for in_process, from_workers in zip(results[0], results[2]):
        assert not in_process.pop("built_in_worker") and from_workers.pop("built_in_worker")
        assert in_process.keys() == from_workers.keys()
        assert all(torch.equal(in_process[k], from_workers[k]) for k in in_process)
    batcher = SceneBatcher(items, processor, "cpu", seed=0, num_workers=2)
    with batcher.stream(index_lists) as batches, pytest.raises(TrainingError, match="out of order"):
        batches.take([1, 3])


class CountingItems(list):
    """A list of scene items that counts how often each is loaded."""

    def __init__(self, items):
        super().__init__(items)
        self.loads = [0] * len(items)

    def __getitem__(self, index):
        self.loads[index] += 1
        return super().__getitem__(index)


def test_cached_batches_equal_processed_ones_and_skip_loading_seen_scenes():
    items = make_items(6, seed=4)
    processor = tiny_model("tiny-florence2").processor
    plain = SceneBatcher(items, processor, "cpu", seed=0)
    counted = CountingItems(items)
    cached = SceneBatcher(counted, processor, "cpu", seed=0, input_cache_max_mb=64.0)
    index_lists = [[3, 1], [1, 5, 3], [4, 4], [0, 2]]
    for with_targets in (False, True):  # rows built for targets-free rollouts serve the targets of training
        with cached.stream(index_lists, with_targets=with_targets) as batches:
            got = [batches.take(indices) for indices in index_lists]
        for indices, batch in zip(index_lists, got):
            want = plain.batch(indices, with_targets=with_targets)
            assert batch.keys() == want.keys() and ("target_poses" in batch) == with_targets
            assert all(torch.equal(batch[k], want[k]) for k in want)
    assert counted.loads == [1] * 6 and len(cached.input_cache) == 6  # each scene processed once
    assert torch.equal(cached.batch([5, 0])["pixel_values"], plain.batch([5, 0])["pixel_values"])
    assert counted.loads == [1] * 6
    with pytest.raises(TrainingError, match="input_cache_max_mb"):
        SceneBatcher(items, processor, "cpu", seed=0, input_cache_max_mb=-1.0)


def test_cached_batches_from_workers_equal_in_process_ones_and_odd_processor_outputs_are_refused():
    items = make_items(5, seed=5)
    processor = tiny_model("tiny-florence2").processor
    index_lists = [[2, 0], [0, 2], [4, 1, 3]]
    results = []
    for workers in (0, 2):
        batcher = SceneBatcher(items, processor, "cpu", seed=0, num_workers=workers, input_cache_max_mb=64.0)
        with batcher.stream(index_lists) as batches:
            results.append([batches.take(indices) for indices in index_lists])
    for in_process, from_workers in zip(*results):
        assert all(torch.equal(in_process[k], from_workers[k]) for k in in_process)
    odd = SceneBatcher(items, WorkerRecordingProcessor(processor), "cpu", seed=0, input_cache_max_mb=64.0)
    with pytest.raises(TrainingError, match="'built_in_worker'"):
        odd.batch([0, 1])


def _train(out, items, workers):
    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, None, [f"output_dir={out}", f"data.num_workers={workers}"] + RUN)
    trainer = Trainer(cfg, Accelerator(cpu=True), items, train_reward=DistanceReward(items))
    trainer.run()
    return trainer


def test_training_on_a_tiny_world_is_identical_with_0_and_2_loader_workers(world, tmp_path):
    _, _, items = split_items(world, "synthetic_train", max_scenes=6, cache_agent_inputs=False)
    runs = {workers: _train(tmp_path / f"workers{workers}", items, workers) for workers in (0, 2)}
    losses = {w: [(row["step"], k, v) for row in t.history for k, v in row.items() if k.endswith("/loss")]
              for w, t in runs.items()}
    assert len(losses[0]) == 4 and losses[0] == losses[2]  # 2 IL + 2 EWR steps (EWR reads scene batches)
    models = {w: load_file(tmp_path / f"workers{w}" / "model" / "model.safetensors") for w in runs}
    assert models[0].keys() == models[2].keys()
    assert all(torch.equal(models[0][k], models[2][k]) for k in models[0])


def test_two_processes_each_load_only_their_shard_of_logs(world):
    finetune = load_launch_script("finetune")
    cfg = load_config(TrainConfig, None, [f"data.data_root={world}"])
    paths = finetune.resolve_data(cfg, SimpleNamespace(is_local_main_process=True))
    _, everything = finetune.load_items(cfg, paths, cfg.data.train_split, None)
    shards = [finetune.load_items(cfg, paths, cfg.data.train_split, None,
                                  SimpleNamespace(process_index=rank, num_processes=2))[1] for rank in (0, 1)]
    logs = [set(shard.loader.get_tokens_list_per_log()) for shard in shards]
    assert logs[0] and logs[1] and not logs[0] & logs[1]
    assert logs[0] | logs[1] == set(everything.loader.get_tokens_list_per_log())
    tokens = [t for shard in shards for t in shard.tokens]
    assert len(tokens) == len(set(tokens)) and set(tokens) == set(everything.tokens)
    # each process draws its samples and rollout scenes from its own scenes only, all of them over a round
    for rank, shard in enumerate(shards):
        batcher = SceneBatcher(shard, None, "cpu", seed=0, num_processes=2, process_index=rank)
        assert batcher.stream_indices(3, 4).max() < len(shard)
        assert list(batcher.shard(batcher.round_scenes(0, None))) == list(range(len(shard)))
        assert len(batcher.round_scenes(0, 3)) == 2  # ceil(3 / 2) per process
    with pytest.raises(TrainingError, match="log shard"):
        SceneBatcher(shards[1], None, "cpu", seed=0, num_processes=2, process_index=0)
    # max_train_scenes is shared out: ceil(5 / 2) per process
    limited = finetune.load_items(cfg, paths, cfg.data.train_split, 5, SimpleNamespace(process_index=0,
                                                                                       num_processes=2))[1]
    assert len(limited) == 3
    assert np.isfinite(limited.target_poses(limited.tokens[0])).all()


def test_stream_repeats_give_each_scene_its_count_per_epoch_and_ones_keep_the_plain_order():
    batcher = SceneBatcher(make_items(5, seed=1), None, "cpu", seed=3)
    plain = np.concatenate([batcher.stream_indices(m, 5) for m in range(2)])
    assert sorted(plain[:5]) == sorted(plain[5:]) == list(range(5))
    ones = batcher.repeated_scenes(np.ones(5, dtype=int))
    assert np.array_equal(plain, np.concatenate([batcher.stream_indices(m, 5, epoch_scenes=ones) for m in range(2)]))
    repeats = np.array([1, 3, 1, 1, 2])
    scenes = batcher.repeated_scenes(repeats)
    epoch = np.concatenate([batcher.stream_indices(m, 4, epoch_scenes=scenes) for m in range(2)])  # 8 = one epoch
    assert np.bincount(epoch, minlength=5).tolist() == repeats.tolist()
    for bad in (np.array([1, 0, 1, 1, 1]), np.ones(4, dtype=int)):
        with pytest.raises(TrainingError, match="repeats"):
            batcher.repeated_scenes(bad)
