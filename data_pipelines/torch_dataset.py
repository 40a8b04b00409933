"""PyTorch dataset over a SceneLoader: (token, agent input, target trajectory) items for training."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
from torch.utils.data import Dataset

from data_pipelines.scene import future_trajectory_from_frame_dicts
from data_pipelines.scene_loader import SceneLoader
from data_pipelines.types import DEFAULT_SAMPLING, AgentInput


class SceneDataset(Dataset):
    """Items ``{"token": str, "agent_input": AgentInput, "target_poses": float32 (num_poses, 3)}``.

    `agent_input` carries the cameras of the loader's SensorConfig (float32 ego statuses, as the devkit's
    loader). `target_poses` are the next `num_target_poses` poses in the current rear-axle frame. With
    ``cache_agent_inputs=True`` decoded inputs are kept in memory per worker process (off by default: images
    of a real split do not fit in memory). `transform` (item -> item, picklable) runs inside ``__getitem__``, so
    with a ``DataLoader(num_workers > 0)`` image decoding and any resize it does happen in the worker processes.
    """

    def __init__(
        self,
        loader: SceneLoader,
        num_target_poses: int = DEFAULT_SAMPLING.num_poses,
        tokens: Optional[Sequence[str]] = None,
        cache_agent_inputs: bool = False,
        transform: Optional[Callable[[dict[str, Any]], dict[str, Any]]] = None,
    ):
        self.loader = loader
        self.num_target_poses = int(num_target_poses)
        self.tokens = list(tokens) if tokens is not None else loader.tokens
        for token in self.tokens:
            loader.get_scene_frame_dicts(token)  # UnknownTokenError for tokens the loader lacks
        self.cache_agent_inputs = cache_agent_inputs
        self._cache: dict[str, AgentInput] = {}
        self.transform = transform

    def __len__(self) -> int:
        return len(self.tokens)

    def agent_input(self, token: str) -> AgentInput:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        agent_input = self.loader.get_agent_input_from_token(token)
        if self.cache_agent_inputs:
            self._cache[token] = agent_input
        return agent_input

    def target_poses(self, token: str) -> np.ndarray:
        """(num_target_poses, 3) float32 future poses, computed from the ego poses only (no sensors)."""
        trajectory = future_trajectory_from_frame_dicts(
            self.loader.get_scene_frame_dicts(token), self.loader.scene_filter.num_history_frames, self.num_target_poses
        )
        return trajectory.poses.astype(np.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        token = self.tokens[index]
        item = {"token": token, "agent_input": self.agent_input(token), "target_poses": self.target_poses(token)}
        return self.transform(item) if self.transform is not None else item


def collate_scenes(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch items: lists of tokens and AgentInputs (not stacked), target poses stacked to float32 (B, N, 3)."""
    return {
        "tokens": [item["token"] for item in items],
        "agent_inputs": [item["agent_input"] for item in items],
        "target_poses": np.stack([item["target_poses"] for item in items]).astype(np.float32),
    }
