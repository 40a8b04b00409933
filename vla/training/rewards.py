"""The reward-function contract the trainer consumes.

The trainer never imports a scorer: any callable ``reward(tokens, poses) -> result`` works, where ``poses`` is
(B, K, 8, 3) in each scene's current rear-axle frame and ``result`` has ``scores`` (B, K), ``sub_metrics``
{name: (B, K)} (logged and tabulated under the names and in the order the reward gives them, its score
included), ``valid`` (B, K) bool and ``errors`` {token: message}. Failed scores are ``valid = False``; the
trainer masks them and never treats them as reward 0 (specs/dipole.md §8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from vla.training.errors import RewardError


class RewardResultLike(Protocol):
    scores: np.ndarray
    sub_metrics: Mapping[str, np.ndarray]
    valid: np.ndarray
    errors: Mapping[str, str]


RewardFn = Callable[[Sequence[str], np.ndarray], RewardResultLike]


@dataclass
class Scored:
    """A reward result checked and converted to plain arrays (sub-metrics keyed as the reward named them)."""

    scores: np.ndarray  # (B, K) float64, NaN where invalid
    valid: np.ndarray  # (B, K) bool
    sub_metrics: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (B, K)
    errors: dict[str, str] = field(default_factory=dict)


def call_reward(reward_fn: RewardFn, tokens: Sequence[str], poses: np.ndarray) -> Scored:
    """Call ``reward_fn`` and validate its shapes; non-finite scores are masked as failures."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 4 or poses.shape[0] != len(tokens) or poses.shape[2:] != (8, 3):
        raise RewardError(f"poses must be (B={len(tokens)}, K, 8, 3); got {poses.shape}")
    result = reward_fn(list(tokens), poses)
    expected = poses.shape[:2]
    scores = np.asarray(result.scores, dtype=np.float64)
    valid = np.asarray(result.valid, dtype=bool)
    if scores.shape != expected or valid.shape != expected:
        raise RewardError(
            f"reward function returned scores {scores.shape} / valid {valid.shape}; expected {expected}"
        )
    valid = valid & np.isfinite(scores)
    scores = np.where(valid, scores, np.nan)
    subs = {}
    for name, values in dict(result.sub_metrics).items():
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != expected:
            raise RewardError(f"sub-metric {name!r} has shape {arr.shape}; expected {expected}")
        subs[name] = np.where(valid, arr, np.nan)
    return Scored(scores=scores, valid=valid, sub_metrics=subs, errors=dict(result.errors or {}))
