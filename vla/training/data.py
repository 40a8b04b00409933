"""Deterministic, process-sharded batches of scenes for training, rollouts and evaluation.

Scenes are items ``{"token", "agent_input", "target_poses" (8, 3)}`` (what
``data_pipelines.torch_dataset.SceneDataset`` yields). The order of training samples is a pure function of
(seed, position in the sample stream), so a resumed run sees exactly the batches an uninterrupted run sees,
with no data-loader state to save.

Either every process holds every scene (a plain list, or a SceneDataset over all logs) and the processes take
disjoint parts of one shared order, or each process holds only its own shard of logs (a SceneDataset over a
``SceneLoader(shard=(process_index, num_processes))``, what ``launch/finetune.py`` builds) and draws its own order
over its own scenes. Batches are decoded, resized and collated by the model's processor in ``num_workers``
torch DataLoader worker processes (0: in this process); the batches and their order do not depend on it. With
``input_cache_max_mb > 0`` each scene's processed row is kept (least recently used evicted), so later epochs skip
decoding, resizing and tokenizing; the batches do not depend on that either.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from data_pipelines.lru_cache import ByteBoundedLRU
from vla.modeling_dipole import BEV_TARGET_KEY
from vla.training.errors import EmptyDataError, TrainingError

ROUND_SCENES_SALT = 7919  # sample-stream salt of the per-round scene subsets (any fixed value)
INDICES_KEY = "scene_indices"  # the scene indices a collated batch was built from (checked by BatchStream.take)


def item_tokens(items: Sequence[dict]) -> list[str]:
    """Scene tokens without loading sensors (uses ``items.tokens`` when the dataset has it)."""
    tokens = getattr(items, "tokens", None)
    return list(tokens) if tokens is not None else [it["token"] for it in items]


def item_targets(items: Sequence[dict]) -> np.ndarray:
    """(N, 8, 3) logged trajectories without loading sensors (uses ``items.target_poses(token)`` if present)."""
    target_fn = getattr(items, "target_poses", None)
    if callable(target_fn):
        return np.stack([np.asarray(target_fn(t), np.float32) for t in item_tokens(items)])
    return np.stack([np.asarray(it["target_poses"], np.float32) for it in items])


def item_ego_inputs(items: Sequence[dict]) -> list:
    """Agent inputs with their ego statuses, without decoding sensors (``items.ego_agent_input(token)`` if the
    dataset has it; a plain list's own inputs otherwise)."""
    ego_fn = getattr(items, "ego_agent_input", None)
    if callable(ego_fn):
        return [ego_fn(t) for t in item_tokens(items)]
    return [it["agent_input"] for it in items]


def items_shard(items: Sequence[dict]) -> Optional[tuple[int, int]]:
    """(index, count) of the log shard the items were loaded from (a SceneDataset over a sharded SceneLoader);
    None when they hold the whole split."""
    return getattr(getattr(items, "loader", None), "shard", None)


class ProcessorCollate:
    """collate_fn: scene indices -> the processor's batch (+ the scene indices). Runs in the DataLoader workers,
    so image decoding (the dataset) and resizing (the processor) stay off the training process.

    With a ``cache`` (:class:`ByteBoundedLRU`) each scene's processed row (every batch tensor's slice, the logged
    trajectory included) is kept, so a scene seen again is stacked from memory instead of being decoded, resized
    and tokenized again; the batch is the same either way (the processor treats rows independently). In
    DataLoader workers each worker fills its own copy of the cache.
    """

    def __init__(self, items: Sequence[dict], processor, with_targets: bool, cache: Optional[ByteBoundedLRU] = None):
        self.items = items
        self.processor = processor
        self.with_targets = with_targets
        self.cache = cache

    def process(self, indices: Sequence[int], with_targets: bool) -> dict:
        """The processor's batch of the scenes ``indices`` (loaded from the items)."""
        items = [self.items[i] for i in indices]
        agent_inputs = [it["agent_input"] for it in items]
        if with_targets:
            targets = np.stack([np.asarray(it["target_poses"], np.float32) for it in items])
            batch = dict(self.processor(agent_inputs, target_poses=targets))
        else:
            batch = dict(self.processor(agent_inputs))
        if BEV_TARGET_KEY in items[0]:  # items of a BevTargetItems (the auxiliary BEV decoder's target)
            batch[BEV_TARGET_KEY] = torch.as_tensor(np.stack([it[BEV_TARGET_KEY] for it in items]))
        return batch

    def cached_batch(self, indices: Sequence[int]) -> dict:
        rows = {i: self.cache.get(i) for i in indices}
        missing = list(dict.fromkeys(i for i, row in rows.items() if row is None))
        if missing:
            built = self.process(missing, with_targets=True)  # rows keep the targets for every later caller
            for key, value in built.items():
                if not (torch.is_tensor(value) and value.shape[:1] == (len(missing),)):
                    raise TrainingError(f"processed-input cache: batch entry {key!r} is not a tensor with one row "
                                        "per scene; turn the cache off (data.model_input_cache_max_mb=0)")
            for position, index in enumerate(missing):
                row = {key: value[position].clone() for key, value in built.items()}
                rows[index] = row
                self.cache.put(index, row, sum(v.numel() * v.element_size() for v in row.values()))
        keys = [k for k in rows[indices[0]] if self.with_targets or k != "target_poses"]
        return {k: torch.stack([rows[i][k] for i in indices]) for k in keys}

    def __call__(self, indices: Sequence[int]) -> dict:
        indices = [int(i) for i in indices]
        if self.cache is None:
            batch = self.process(indices, self.with_targets)
        else:
            batch = self.cached_batch(indices)
        batch[INDICES_KEY] = np.asarray(indices, dtype=np.int64)
        return batch


class BatchStream:
    """The batches of a known sequence of index lists, in order, loaded ahead by DataLoader workers.

    ``take(indices)`` returns the next batch, checked to hold exactly ``indices`` (a caller that asks out of
    order gets a TrainingError, never another batch). Workers start at the first ``take``; ``close`` (or the
    ``with`` block's end) stops them. With ``num_workers=0`` each batch is built in this process on demand.
    """

    def __init__(self, batcher: "SceneBatcher", index_lists: Iterable[Sequence[int]], with_targets: bool):
        self.batcher = batcher
        self.index_lists = index_lists
        self.collate = ProcessorCollate(batcher.items, batcher.processor, with_targets, batcher.input_cache)
        self._iterator = None

    def _start(self):
        workers = self.batcher.num_workers
        lists = ([int(i) for i in indices] for indices in self.index_lists)
        if workers == 0:
            return (self.collate(indices) for indices in lists)
        # the "dataset" is the scene indices: the collate function loads (or finds cached) what it needs;
        # its own generator: starting workers must not draw from the global torch RNG (the training noise)
        loader = DataLoader(range(len(self.batcher.items)), batch_sampler=lists, collate_fn=self.collate,
                            num_workers=workers, generator=torch.Generator().manual_seed(self.batcher.seed))
        return iter(loader)

    def take(self, indices: Sequence[int]) -> dict:
        if self._iterator is None:
            self._iterator = self._start()
        try:
            batch = next(self._iterator)
        except StopIteration:
            raise TrainingError(f"{self.batcher.name}: asked for scenes {list(indices)[:4]}... after the last "
                                "batch of the stream") from None
        got = batch.pop(INDICES_KEY)
        if not np.array_equal(got, np.asarray(indices, dtype=np.int64)):
            raise TrainingError(f"{self.batcher.name}: the batch stream holds scenes {got[:4].tolist()}..., "
                                f"asked for {list(indices)[:4]}... (batches requested out of order)")
        return self.batcher.to_device(batch)

    def close(self) -> None:
        self._iterator = None  # a DataLoader iterator shuts its workers down when released

    def __enter__(self) -> "BatchStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SceneBatcher:
    """Turns scene items into model batches (via the model's processor) for one process of a run; processed rows
    are cached up to ``input_cache_max_mb`` (0: off) for every stream and one-off batch of this batcher."""

    def __init__(self, items: Sequence[dict], processor, device, seed: int, num_processes: int = 1,
                 process_index: int = 0, name: str = "scenes", num_workers: int = 0, input_cache_max_mb: float = 0.0):
        if len(items) == 0:
            raise EmptyDataError(f"{name}: no scenes")
        if num_workers < 0:
            raise TrainingError(f"{name}: num_workers must be >= 0, got {num_workers}")
        if input_cache_max_mb < 0:
            raise TrainingError(f"{name}: input_cache_max_mb must be >= 0, got {input_cache_max_mb}")
        shard = items_shard(items)
        if shard is not None and tuple(shard) != (int(process_index), int(num_processes)):
            raise TrainingError(f"{name}: the scenes were loaded as log shard {tuple(shard)}, but this is process "
                                f"{process_index} of {num_processes}")
        self.items = items
        self.processor = processor
        self.device = device
        self.seed = int(seed)
        self.num_processes = int(num_processes)
        self.process_index = int(process_index)
        self.name = name
        self.num_workers = int(num_workers)
        self.input_cache = ByteBoundedLRU(input_cache_max_mb) if input_cache_max_mb > 0 else None
        self.local = shard is not None and self.num_processes > 1  # each process holds only its own scenes
        self._targets = None
        self._tokens = None

    def __len__(self) -> int:
        return len(self.items)

    def token(self, index: int) -> str:
        if self._tokens is None:
            self._tokens = item_tokens(self.items)
        return self._tokens[int(index)]

    def target_poses(self, indices=None) -> np.ndarray:
        """(N, 8, 3) logged trajectories (all scenes, or the given indices)."""
        if self._targets is None:
            self._targets = item_targets(self.items)
        return self._targets if indices is None else self._targets[np.asarray(indices, dtype=np.int64)]

    def to_device(self, batch: dict) -> dict:
        return {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in dict(batch).items()}

    def batch(self, indices: Sequence[int], with_targets: bool = True) -> dict:
        """One batch built in this process (for one-off batches; loops use :meth:`stream`)."""
        batch = ProcessorCollate(self.items, self.processor, with_targets, self.input_cache)(indices)
        batch.pop(INDICES_KEY)
        return self.to_device(batch)

    def stream(self, index_lists: Iterable[Sequence[int]], with_targets: bool = True) -> BatchStream:
        """The batches of ``index_lists`` (any iterable, endless too), loaded ahead by the workers."""
        return BatchStream(self, index_lists, with_targets)

    # orders ----------------------------------------------------------------------------------------------
    def _epoch_permutation(self, epoch: int, salt: int = 0, size: Optional[int] = None) -> np.ndarray:
        key = [self.seed, salt, epoch] + ([self.process_index] if self.local else [])
        return np.random.default_rng(key).permutation(len(self.items) if size is None else size)

    def repeated_scenes(self, repeats: Sequence[int]) -> np.ndarray:
        """The scenes of one epoch of a stream where scene i comes ``repeats[i]`` (>= 1) times, for
        :meth:`stream_indices`; built once per stage, not per micro-step."""
        repeats = np.asarray(repeats, dtype=np.int64)
        if repeats.shape != (len(self.items),) or (repeats < 1).any():
            raise TrainingError(f"{self.name}: repeats must hold one count >= 1 per scene ({len(self.items)}), "
                                f"got shape {repeats.shape}, min {repeats.min() if repeats.size else None}")
        return np.repeat(np.arange(len(self.items)), repeats)

    def stream_indices(self, micro_step: int, batch_per_process: int, salt: int = 0,
                       epoch_scenes: Optional[np.ndarray] = None) -> np.ndarray:
        """This process's scene indices for global micro-step ``micro_step`` of an endless shuffled stream.
        ``epoch_scenes`` (:meth:`repeated_scenes`): what one epoch holds; None: every scene once."""
        if self.local:
            start = micro_step * batch_per_process
        else:
            start = micro_step * batch_per_process * self.num_processes + self.process_index * batch_per_process
        positions = np.arange(start, start + batch_per_process)
        n = len(self.items) if epoch_scenes is None else len(epoch_scenes)
        out = np.empty(batch_per_process, dtype=np.int64)
        for epoch in np.unique(positions // n):
            sel = positions // n == epoch
            drawn = self._epoch_permutation(int(epoch), salt, n)[positions[sel] % n]
            out[sel] = drawn if epoch_scenes is None else epoch_scenes[drawn]
        return out

    def shard(self, indices: Sequence[int]) -> np.ndarray:
        """This process's share of ``indices`` (round-robin; every process gets a disjoint part; all of them when
        the process holds only its own scenes)."""
        indices = np.asarray(indices, dtype=np.int64)
        return indices if self.local else indices[self.process_index::self.num_processes]

    def round_scenes(self, round_index: int, count) -> np.ndarray:
        """Scenes rolled out in a round (all scenes, or a fresh random subset per round), before sharding.
        ``count`` is over all processes: a process holding only its own scenes takes ceil(count / processes)."""
        n = len(self.items)
        if count is not None and self.local:
            count = math.ceil(count / self.num_processes)
        if count is None or count >= n:
            return np.arange(n)
        return np.sort(self._epoch_permutation(round_index, salt=ROUND_SCENES_SALT)[:count])


def chunks(indices: Sequence[int], size: int):
    indices = list(indices)
    for i in range(0, len(indices), size):
        yield indices[i:i + size]
