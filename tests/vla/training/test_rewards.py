"""The reward contract: results are checked and passed on under the reward's own names (vla knows no PDM names)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from vla.training.errors import RewardError
from vla.training.rewards import call_reward


@dataclass
class Result:
    scores: np.ndarray
    sub_metrics: dict
    valid: np.ndarray
    errors: dict = field(default_factory=dict)


def test_sub_metrics_keep_the_reward_names_and_invalid_entries_are_masked():
    scores = np.array([[0.5, np.inf], [0.25, 1.0]])
    valid = np.array([[True, True], [False, True]])
    reward = lambda tokens, poses: Result(scores, {"lateral": np.ones((2, 2)), "total": scores}, valid,  # noqa: E731
                                          {"b": "no data"})
    scored = call_reward(reward, ["a", "b"], np.zeros((2, 2, 8, 3)))
    assert list(scored.sub_metrics) == ["lateral", "total"]  # nothing renamed, nothing added
    assert scored.valid.tolist() == [[True, False], [False, True]]  # a non-finite score is a failure
    assert np.isnan(scored.sub_metrics["lateral"][1, 0]) and np.isnan(scored.scores[0, 1])
    assert scored.errors == {"b": "no data"}


def test_sub_metric_of_the_wrong_shape_is_an_error():
    reward = lambda tokens, poses: Result(np.zeros((1, 2)), {"x": np.zeros(3)}, np.ones((1, 2), bool))  # noqa: E731
    with pytest.raises(RewardError, match="'x'"):
        call_reward(reward, ["a"], np.zeros((1, 2, 8, 3)))
