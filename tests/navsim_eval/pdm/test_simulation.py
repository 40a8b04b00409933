"""Batched LQR tracker + kinematic bicycle (spec §5) against the golden simulated states."""

from __future__ import annotations

import numpy as np

from navsim_eval.pdm.constants import StateIndex
from navsim_eval.pdm.simulation import simulate
from navsim_eval.pdm.trajectory import submitted_poses_to_reference
from tests.navsim_eval.pdm.scorer_golden import intermediates, scenes_info

TOLERANCE = 1e-6


def _max_error(ours: np.ndarray, golden: np.ndarray) -> float:
    error = np.abs(ours - golden)
    error[..., StateIndex.HEADING] = np.abs(np.arctan2(np.sin(error[..., 2]), np.cos(error[..., 2])))
    return float(error.max())


def test_simulated_states_match_golden(golden_dir):
    tokens = [t for log in scenes_info(golden_dir)["logs"].values() for t in log["tokens"]]
    for token in tokens[::2]:
        data = intermediates(golden_dir, token)
        for version in ("v1", "v2"):
            references = np.concatenate([data[f"{version}_input_states_xyh"],
                                         data[f"{version}_pdm_reference_input_states"][None]])
            states = simulate(references, data["initial_ego_state"])
            assert _max_error(states[:-1], data[f"{version}_sim_states"]) <= TOLERANCE, (token, version)
            assert _max_error(states[-1], data[f"{version}_pdm_reference_sim_states"]) <= TOLERANCE
        human = submitted_poses_to_reference(data["initial_ego_state"], int(data["initial_time_us"]),
                                             data["v2_human_trajectory_poses"])
        assert _max_error(simulate(human, data["initial_ego_state"])[0], data["v2_human_sim_states"]) <= TOLERANCE


def test_rows_are_independent_and_lateral_acceleration_is_zero(golden_dir):
    token = scenes_info(golden_dir)["logs"][next(iter(scenes_info(golden_dir)["logs"]))]["tokens"][1]
    data = intermediates(golden_dir, token)
    references = data["v1_input_states_xyh"]
    batch = simulate(references, data["initial_ego_state"])
    single = simulate(references[5:6], data["initial_ego_state"])
    np.testing.assert_allclose(batch[5], single[0], atol=1e-12)
    assert np.all(batch[..., StateIndex.ACCELERATION_Y] == 0.0)
    assert np.all(batch[..., StateIndex.VELOCITY_Y][:, 1:] == 0.0)
    np.testing.assert_array_equal(batch[:, 0], np.broadcast_to(data["initial_ego_state"], batch[:, 0].shape))


def test_full_stop_from_speed_brakes_but_still_moves():
    """Spec §9: the stopping branch engages only below 0.2 m/s, so the car travels a few metres."""
    state = np.zeros(11)
    state[StateIndex.VELOCITY_X] = 8.0
    reference = np.zeros((1, 41, 3))
    states = simulate(reference, state)
    assert 1.0 < states[0, -1, StateIndex.X] < 30.0
    assert states[0, :, StateIndex.ACCELERATION_X].min() < -3.0


def test_sideways_poses_with_heading_zero_are_tracked_partially():
    """Spec §9: a lateral offset with heading 0 is only partly followed."""
    state = np.zeros(11)
    state[StateIndex.VELOCITY_X] = 5.0
    reference = np.zeros((1, 41, 3))
    reference[0, :, 0] = 5.0 * 0.1 * np.arange(41)
    reference[0, :, 1] = np.linspace(0.0, 2.5, 41)
    states = simulate(reference, state)
    assert 0.2 * 2.5 < states[0, -1, StateIndex.Y] < 2.5
