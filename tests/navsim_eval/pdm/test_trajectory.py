"""Submitted poses -> 41 tracker reference poses (spec §4) against the golden intermediates."""

from __future__ import annotations

import numpy as np
import pytest

from navsim_eval.pdm.errors import TrajectoryError
from navsim_eval.pdm.trajectory import (
    reference_trajectory_to_reference,
    sample_time_us,
    submitted_poses_to_reference,
    validate_poses,
)
from tests.navsim_eval.pdm.scorer_golden import candidate_poses, intermediates, scenes_info

TOLERANCE = 1e-6


def _tokens(golden_dir, every: int = 3):
    tokens = [t for log in scenes_info(golden_dir)["logs"].values() for t in log["tokens"]]
    return tokens[::every]


def test_interpolated_inputs_match_golden(golden_dir):
    for token in _tokens(golden_dir):
        data = intermediates(golden_dir, token)
        poses = candidate_poses(golden_dir, token, list(data["trajectory_names"]))
        ours = submitted_poses_to_reference(data["initial_ego_state"], int(data["initial_time_us"]), poses)
        for version in ("v1", "v2"):
            error = np.abs(ours - data[f"{version}_input_states_xyh"])
            error[..., 2] = np.abs(np.arctan2(np.sin(error[..., 2]), np.cos(error[..., 2])))
            assert error.max() <= TOLERANCE, token
            reference = reference_trajectory_to_reference(
                data[f"{version}_pdm_trajectory_states"], data[f"{version}_pdm_trajectory_time_us"],
                int(data["initial_time_us"]))
            np.testing.assert_allclose(reference, data[f"{version}_pdm_reference_input_states"], atol=TOLERANCE)


def test_first_sample_is_the_current_pose_and_times_are_truncated():
    state = np.zeros(11)
    state[:3] = [100.0, -5.0, 0.3]
    poses = np.zeros((8, 3))
    poses[:, 0] = np.arange(1, 9) * 2.0
    ours = submitted_poses_to_reference(state, 1_620_025_204_500_000, poses)
    assert ours.shape == (1, 41, 3)
    np.testing.assert_allclose(ours[0, 0], state[:3])
    times = sample_time_us(1_620_025_204_500_000)
    assert times.dtype == np.int64 and len(times) == 41
    assert np.all(np.diff(times) > 99_990) and np.all(np.diff(times) <= 100_001)


@pytest.mark.parametrize(
    "poses, message",
    [
        (np.zeros((7, 3)), "expected 8 poses"),
        (np.zeros((8, 2)), "shape"),
        (np.full((8, 3), np.nan), "non-finite"),
        (np.array([[np.inf, 0, 0]] * 8), "non-finite"),
        ([["a", "b", "c"]] * 8, "not numeric"),
        ([[1e7, 0.0, 0.0]] * 8, "beyond"),
    ],
)
def test_bad_poses_raise_clear_errors(poses, message):
    with pytest.raises(TrajectoryError, match=message) as info:
        validate_poses(poses, token="tok", name="agent")
    assert "tok" in str(info.value) and "agent" in str(info.value)
