"""Deterministic, process-sharded batches of scenes for training, rollouts and evaluation.

Scenes are items ``{"token", "agent_input", "target_poses" (8, 3)}`` (what
``data_pipelines.torch_dataset.SceneDataset`` yields). The order of training samples is a pure function of
(seed, position in the sample stream), so a resumed run sees exactly the batches an uninterrupted run sees,
with no data-loader state to save.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vla.training.errors import EmptyDataError


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


class SceneBatcher:
    """Turns scene items into model batches (via the model's processor) for one process of a run."""

    def __init__(self, items: Sequence[dict], processor, device, seed: int, num_processes: int = 1,
                 process_index: int = 0, name: str = "scenes"):
        if len(items) == 0:
            raise EmptyDataError(f"{name}: no scenes")
        self.items = items
        self.processor = processor
        self.device = device
        self.seed = int(seed)
        self.num_processes = int(num_processes)
        self.process_index = int(process_index)
        self.name = name
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

    def batch(self, indices: Sequence[int], with_targets: bool = True) -> dict:
        items = [self.items[int(i)] for i in indices]
        agent_inputs = [it["agent_input"] for it in items]
        targets = np.stack([np.asarray(it["target_poses"], np.float32) for it in items]) if with_targets else None
        batch = self.processor(agent_inputs, target_poses=targets) if with_targets else self.processor(agent_inputs)
        return {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in dict(batch).items()}

    # orders ----------------------------------------------------------------------------------------------
    def _epoch_permutation(self, epoch: int, salt: int = 0) -> np.ndarray:
        rng = np.random.default_rng([self.seed, salt, epoch])
        return rng.permutation(len(self.items))

    def stream_indices(self, micro_step: int, batch_per_process: int, salt: int = 0) -> np.ndarray:
        """This process's scene indices for global micro-step ``micro_step`` of an endless shuffled stream."""
        global_batch = batch_per_process * self.num_processes
        start = micro_step * global_batch + self.process_index * batch_per_process
        positions = np.arange(start, start + batch_per_process)
        n = len(self.items)
        out = np.empty(batch_per_process, dtype=np.int64)
        for epoch in np.unique(positions // n):
            sel = positions // n == epoch
            out[sel] = self._epoch_permutation(int(epoch), salt)[positions[sel] % n]
        return out

    def shard(self, indices: Sequence[int]) -> np.ndarray:
        """This process's share of ``indices`` (round-robin; every process gets a disjoint part)."""
        return np.asarray(indices, dtype=np.int64)[self.process_index::self.num_processes]

    def round_scenes(self, round_index: int, count) -> np.ndarray:
        """Scenes rolled out in a round (all scenes, or a fresh random subset per round), before sharding."""
        n = len(self.items)
        if count is None or count >= n:
            return np.arange(n)
        return np.sort(self._epoch_permutation(round_index, salt=7919)[:count])  # 7919: any fixed salt


def chunks(indices: Sequence[int], size: int):
    indices = list(indices)
    for i in range(0, len(indices), size):
        yield indices[i:i + size]
