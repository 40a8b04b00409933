"""Rollouts of the current guided policy, their PDM scores and G, kept in a per-process buffer.

One buffer per process holds a round's data: each process rolls out and scores its own shard of scenes
(specs/dipole.md §6 steps 2-4). The buffer is saved inside checkpoints so a resumed round trains on the
same samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from vla.training.advantages import compute_advantage
from vla.training.rewards import RewardFn, Scored, call_reward


@dataclass
class RolloutBuffer:
    """K scored candidates for each of N scenes (one process's shard of one round)."""

    round_index: int
    tokens: list[str]
    scene_indices: np.ndarray  # (N,) indices into the training scene list
    poses: np.ndarray  # (N, K, 8, 3) float32, current rear-axle frame
    rewards: np.ndarray  # (N, K) float64, NaN where scoring failed
    valid: np.ndarray  # (N, K) bool
    sub_metrics: dict[str, np.ndarray] = field(default_factory=dict)  # short name -> (N, K)
    human_rewards: Optional[np.ndarray] = None  # (N,) score of the logged trajectory (G4 / anchor)
    human_valid: Optional[np.ndarray] = None
    advantages: Optional[np.ndarray] = None  # (N, K) float32, 0 where unusable
    usable: Optional[np.ndarray] = None  # (N, K) bool
    errors: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def num_candidates(self) -> int:
        return int(self.poses.shape[1]) if self.poses.ndim == 4 else 0

    def compute_advantages(self, kind: str) -> None:
        g, usable = compute_advantage(
            kind,
            torch.from_numpy(np.nan_to_num(self.rewards)),
            torch.from_numpy(self.valid),
            None if self.human_rewards is None else torch.from_numpy(np.nan_to_num(self.human_rewards)),
            None if self.human_valid is None else torch.from_numpy(self.human_valid),
        )
        self.advantages = g.numpy()
        self.usable = usable.numpy()

    def with_extra_candidate(self, poses: np.ndarray, rewards: np.ndarray, valid: np.ndarray) -> "RolloutBuffer":
        """A buffer with one more candidate per scene (e.g. the logged trajectory), sub-metrics padded NaN."""
        pad = lambda a, v: np.concatenate([a, np.asarray(v, a.dtype).reshape(-1, 1)], axis=1)  # noqa: E731
        return RolloutBuffer(
            round_index=self.round_index, tokens=self.tokens, scene_indices=self.scene_indices,
            poses=np.concatenate([self.poses, poses[:, None].astype(self.poses.dtype)], axis=1),
            rewards=pad(self.rewards, np.where(valid, rewards, np.nan)), valid=pad(self.valid, valid),
            sub_metrics={n: pad(v, np.full(len(self), np.nan)) for n, v in self.sub_metrics.items()},
            human_rewards=self.human_rewards, human_valid=self.human_valid, errors=self.errors,
        )

    def trainable_rows(self) -> np.ndarray:
        """Buffer rows (scenes) with at least one usable candidate."""
        if self.usable is None:
            raise RuntimeError("compute_advantages() first")
        return np.nonzero(self.usable.any(axis=1))[0]

    # persistence ---------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        arrays = {
            "round_index": np.asarray(self.round_index),
            "tokens": np.asarray(self.tokens, dtype=str),
            "scene_indices": self.scene_indices,
            "poses": self.poses,
            "rewards": self.rewards,
            "valid": self.valid,
            "error_tokens": np.asarray(list(self.errors.keys()), dtype=str),
            "error_messages": np.asarray(list(self.errors.values()), dtype=str),
        }
        for name, values in self.sub_metrics.items():
            arrays[f"sub/{name}"] = values
        for name in ("human_rewards", "human_valid", "advantages", "usable"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: Path) -> "RolloutBuffer":
        with np.load(path, allow_pickle=False) as data:
            get = lambda k: data[k] if k in data.files else None  # noqa: E731
            return cls(
                round_index=int(data["round_index"]),
                tokens=[str(t) for t in data["tokens"]],
                scene_indices=data["scene_indices"],
                poses=data["poses"],
                rewards=data["rewards"],
                valid=data["valid"],
                sub_metrics={k[4:]: data[k] for k in data.files if k.startswith("sub/")},
                human_rewards=get("human_rewards"),
                human_valid=get("human_valid"),
                advantages=get("advantages"),
                usable=get("usable"),
                errors=dict(zip((str(t) for t in data["error_tokens"]), (str(m) for m in data["error_messages"]))),
            )


def score_candidates(
    reward_fn: RewardFn, tokens: Sequence[str], poses: np.ndarray, human_poses: Optional[np.ndarray] = None
) -> tuple[Scored, Optional[np.ndarray], Optional[np.ndarray]]:
    """Score every candidate in one call (the reward function parallelises over its workers).

    With ``human_poses`` (N, 8, 3) the logged trajectory is scored in the same call as candidate K+1.
    Returns (scores of the K candidates, human scores (N,) or None, human validity or None).
    """
    if human_poses is None:
        return call_reward(reward_fn, tokens, poses), None, None
    joint = np.concatenate([poses, np.asarray(human_poses, dtype=poses.dtype)[:, None]], axis=1)
    scored = call_reward(reward_fn, tokens, joint)
    k = poses.shape[1]
    cand = Scored(
        scores=scored.scores[:, :k], valid=scored.valid[:, :k],
        sub_metrics={n: v[:, :k] for n, v in scored.sub_metrics.items()}, errors=scored.errors,
    )
    return cand, scored.scores[:, k], scored.valid[:, k]
